"""M3P-style code-switching: a bilingual word list from parallel data, and the augmentation.

**Word list.** :func:`induce_lexicon` scores every (source word, target word) pair that occurs in
aligned sentence pairs by the Dice coefficient of their sentence frequencies::

    dice(s, t) = 2 * c(s, t) / (c(s) + c(t))

where ``c(s)`` counts the pairs whose source side contains ``s`` and ``c(s, t)`` those that contain
both. Pairs seen fewer than ``min_count`` times or below ``min_dice`` are dropped; ties (e.g.
function words present in every sentence) are broken by the mean distance of the words' relative
positions (a diagonal prior, as fast_align's), then by count. With ``mutual=True`` a pair is kept
only if ``s`` is also the best source word of ``t``.

Limitations (it is a co-occurrence heuristic, not an aligner): one word maps to one word, so
compounds (de: "Fussball" ~ "soccer ball"), multi-word expressions and phrasal verbs are missed
or mapped to one part; inflection splits the counts of a lemma (de: "ein/eine/einen"); polysemy is
ignored (one list for every sense); frequent function words co-occur with everything and get
noisy translations; rare words (below ``min_count``) are not covered. Words are lowercased
``\\w+`` runs, so punctuation and apostrophes split words. Precision is good for frequent content
words of caption-like data, which is what code-switching needs; check the list before use.

**Augmentation.** :class:`CodeSwitcher` replaces each word of a caption that has an entry with a
translation, with probability ``prob`` (default 0: off), in a language drawn uniformly among the
word lists that have the word (M3P mixes several languages).
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter, defaultdict
from typing import Dict, Hashable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

_WORD = re.compile(r"\w+")

Lexicon = Dict[str, List[str]]  # source word -> translations, best first


def words(sentence: str) -> List[str]:
    """Lowercased ``\\w+`` words of a sentence (punctuation dropped)."""
    return _WORD.findall(sentence.lower())


class WordPair(NamedTuple):
    """A scored candidate translation.

    Attributes:
        src, tgt: the two words.
        dice: Dice coefficient of their sentence frequencies.
        count: number of sentence pairs containing both.
        diag: mean absolute difference of their relative positions (0 = same place).
    """

    src: str
    tgt: str
    dice: float
    count: int
    diag: float


def _first_positions(ws: List[str]) -> Dict[str, float]:
    """word -> relative position (centre of its first occurrence) in [0, 1]."""
    pos: Dict[str, float] = {}
    for i, w in enumerate(ws):
        pos.setdefault(w, (i + 0.5) / len(ws))
    return pos


def score_word_pairs(src_sents: Sequence[str], tgt_sents: Sequence[str], min_count: int = 2,
                     max_len: int = 80) -> List[WordPair]:
    """Score all co-occurring word pairs of aligned sentences.

    Args:
        src_sents, tgt_sents: aligned sentences (``src_sents[i]`` translates ``tgt_sents[i]``).
        min_count: least number of sentence pairs a word pair must occur in.
        max_len: sentence pairs with a side longer than this (in words) are skipped.

    Returns:
        The pairs with ``count >= min_count``, unsorted.
    """
    if len(src_sents) != len(tgt_sents):
        raise ValueError(f"parallel data differ in length: {len(src_sents)} vs {len(tgt_sents)}")
    pairs = [(words(s), words(t)) for s, t in zip(src_sents, tgt_sents)]
    pairs = [(s, t) for s, t in pairs if s and t and len(s) <= max_len and len(t) <= max_len]
    c_src: Counter = Counter()
    c_tgt: Counter = Counter()
    for s, t in pairs:
        c_src.update(set(s))
        c_tgt.update(set(t))
    # a pair cannot reach min_count if one of its words is rarer: skip those before pairing
    co: Counter = Counter()
    dist: Dict[Tuple[str, str], float] = defaultdict(float)
    for s, t in pairs:
        ps, pt = _first_positions(s), _first_positions(t)
        ps = {w: p for w, p in ps.items() if c_src[w] >= min_count}
        pt = {w: p for w, p in pt.items() if c_tgt[w] >= min_count}
        for ws, p in ps.items():
            for wt, q in pt.items():
                co[ws, wt] += 1
                dist[ws, wt] += abs(p - q)
    out = [WordPair(ws, wt, 2.0 * n / (c_src[ws] + c_tgt[wt]), n, dist[ws, wt] / n)
           for (ws, wt), n in co.items() if n >= min_count]
    logger.info("scored %d word pairs from %d sentence pairs", len(out), len(pairs))
    return out


def _rank_key(p: WordPair, other: str):
    return (-p.dice, p.diag, -p.count, other)


def induce_lexicon(src_sents: Sequence[str], tgt_sents: Sequence[str], min_count: int = 2,
                   min_dice: float = 0.3, max_translations: int = 1, mutual: bool = True,
                   max_len: int = 80) -> Lexicon:
    """Derive a bilingual word list from parallel sentences (see the module docstring).

    Args:
        src_sents, tgt_sents: aligned sentences.
        min_count: least co-occurrence count of a kept pair.
        min_dice: least Dice coefficient of a kept pair.
        max_translations: translations kept per source word, best first.
        mutual: keep a pair only if the source word is the best one of the target word too.
        max_len: longer sentence pairs are skipped.

    Returns:
        source word -> its translations, best first (lowercased).
    """
    scored = [p for p in score_word_pairs(src_sents, tgt_sents, min_count, max_len) if p.dice >= min_dice]
    best_src: Dict[str, WordPair] = {}
    by_src: Dict[str, List[WordPair]] = defaultdict(list)
    for p in scored:
        by_src[p.src].append(p)
        b = best_src.get(p.tgt)
        if b is None or _rank_key(p, p.src) < _rank_key(b, b.src):
            best_src[p.tgt] = p
    lexicon: Lexicon = {}
    for src, cands in by_src.items():
        cands.sort(key=lambda p: _rank_key(p, p.tgt))
        if mutual:
            cands = [p for p in cands if best_src[p.tgt].src == src]
        if cands:
            lexicon[src] = [p.tgt for p in cands[:max_translations]]
    logger.info("induced %d entries (min_count=%d, min_dice=%.2f, mutual=%s)",
                len(lexicon), min_count, min_dice, mutual)
    return lexicon


def save_lexicon(path: str, lexicon: Mapping[str, Sequence[str]]) -> None:
    """Write ``source<TAB>translation`` lines (one per translation, best first)."""
    with open(path, "w", encoding="utf-8") as f:
        for src in sorted(lexicon):
            for tgt in lexicon[src]:
                f.write(f"{src}\t{tgt}\n")


def load_lexicon(path: str) -> Lexicon:
    """Read a file written by :func:`save_lexicon` (or any ``source<TAB>translation`` list)."""
    lexicon: Lexicon = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2:
                raise ValueError(f"{path}:{n}: expected 'source<TAB>translation', got {line.strip()!r}")
            lexicon[parts[0].lower()].append(parts[1])
    return dict(lexicon)


def _match_case(template: str, word: str) -> str:
    if len(template) > 1 and template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


class CodeSwitcher:
    """Replace words of a caption by translations (M3P code-switching).

    Args:
        lexicons: language -> word list (lowercased source word -> translations).
        prob: probability to switch each word that has an entry (0 = off, the default).
        seed: seed of the sequential generator and of per-sample generators (``key``).

    Example::

        cs = CodeSwitcher({"de": induce_lexicon(en, de)}, prob=0.3, seed=1)
        cs("A dog runs.", key=(epoch, index))   # e.g. "A Hund runs."
    """

    def __init__(self, lexicons: Mapping[str, Mapping[str, Sequence[str]]], prob: float = 0.0, seed: int = 0):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.lexicons = {lang: {k.lower(): list(v) for k, v in lex.items() if v} for lang, lex in lexicons.items()}
        self.prob = prob
        self.seed = seed
        self._rng = random.Random(seed)

    @property
    def enabled(self) -> bool:
        return self.prob > 0 and any(self.lexicons.values())

    def switch(self, sentence: str, rng: Optional[random.Random] = None) -> Tuple[str, int]:
        """Return the switched sentence and the number of words replaced.

        Spacing and punctuation are kept; a replaced word takes the case pattern of the original
        (capitalised or all caps). Words without an entry are never replaced.
        """
        if not self.enabled:
            return sentence, 0
        rng = rng or self._rng
        n = 0

        def repl(m: "re.Match[str]") -> str:
            nonlocal n
            w = m.group(0)
            langs = [lang for lang, lex in self.lexicons.items() if w.lower() in lex]
            if not langs or rng.random() >= self.prob:
                return w
            lang = langs[rng.randrange(len(langs))]
            options = self.lexicons[lang][w.lower()]
            n += 1
            return _match_case(w, options[rng.randrange(len(options))])

        return _WORD.sub(repl, sentence), n

    def __call__(self, sentence: str, key: Optional[Hashable] = None) -> str:
        """Switch one sentence; with ``key`` (e.g. ``(epoch, index)``) the result depends only on
        ``(seed, key, sentence)``, not on the order of calls (safe with data-loader workers)."""
        rng = random.Random(f"{self.seed}:{key!r}") if key is not None else None
        return self.switch(sentence, rng)[0]

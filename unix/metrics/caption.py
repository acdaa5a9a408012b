"""Captioning metrics: CIDEr-D, BLEU-1..4, METEOR and ROUGE-L with pycocoevalcap.

Everything is scored the way the COCO caption evaluation does it: captions are lowercased and
tokenized by the Stanford PTB tokenizer of pycocoevalcap (a Java program; java must be on the
PATH) and punctuation is removed; then pycocoevalcap's own scorers run. Scores are on
pycocoevalcap's scale (CIDEr-D of a good model is about 0.5-1.2); callers that print for people
multiply by 100.

CIDEr-D weighs n-grams by their document frequency over the references of the *whole* evaluated
set, so a per-batch average is not the corpus score. :class:`CorpusCiderD` fixes the document
frequencies from the full reference set once; per-image scores from any batch then average to
exactly pycocoevalcap's corpus CIDEr-D (used for validation during training).
"""

import contextlib
import io
import logging
import math
import shutil
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np

from unix.metrics.meteor import MeteorStatistics
from unix.metrics.references import MissingReferenceError, check_references  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

SPICE_SKIPPED = ("skipped: pycocoevalcap's SPICE downloads Stanford CoreNLP models on first use, "
                 "and there is no network here")
METEOR_ENGLISH_ONLY = ("skipped: pycocoevalcap runs METEOR 1.5 with English resources only "
                       "(-l en: English paraphrases, stemmer and synonyms)")
ROUGE_ENGLISH_ONLY = "skipped: reported for English only (issue #3: non-English gets BLEU and CIDEr)"


def _one_line(s: str) -> str:
    """Collapse every kind of whitespace (``\\r``, tabs, U+2028, ...) into single spaces.

    The Java PTB tokenizer reads one caption a line and treats ``\\r`` and friends as line
    breaks, which would silently shift every later caption onto the wrong image.
    """
    return " ".join(s.split())


def ptb_tokenize(sentences: Sequence[str]) -> List[str]:
    """Lowercase + PTB-tokenize + drop punctuation, exactly as the COCO caption evaluation.

    Args:
        sentences: raw captions (any language; UTF-8 is kept).

    Returns:
        One tokenized string per input, in order (``""`` for an empty or punctuation-only one).

    Raises:
        RuntimeError: if java is missing or the tokenizer loses lines.
    """
    if not sentences:
        return []
    if shutil.which("java") is None:
        raise RuntimeError("the PTB tokenizer of pycocoevalcap needs java on the PATH (apt-get install default-jre)")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    captions = {i: [{"caption": _one_line(s)}] for i, s in enumerate(sentences)}
    out = PTBTokenizer().tokenize(captions)
    if len(out) != len(sentences) or any(len(v) != 1 for v in out.values()):
        raise RuntimeError(f"PTB tokenizer returned {len(out)} of {len(sentences)} captions")
    return [out[i][0] for i in range(len(sentences))]


def ptb_tokenize_groups(groups: Sequence[Sequence[str]]) -> List[List[str]]:
    """Tokenize lists of captions (e.g. the references of each image) in one Java call."""
    flat = [s for g in groups for s in g]
    tok = iter(ptb_tokenize(flat))
    return [[next(tok) for _ in g] for g in groups]


def _as_coco(hyps: Sequence[str], refs: Sequence[Sequence[str]]):
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference sets")
    res = {i: [h] for i, h in enumerate(hyps)}
    gts = {i: list(r) for i, r in enumerate(refs)}
    return gts, res


def cider_d(hyps: Sequence[str], refs: Sequence[Sequence[str]], tokenize: bool = True):
    """Corpus CIDEr-D of pycocoevalcap.

    Args:
        hyps: one caption per image.
        refs: the reference captions of each image (at least one each).
        tokenize: PTB-tokenize first (False: inputs are tokenized already).

    Returns:
        ``(score, per_image)``: the corpus score (mean of ``per_image``, an (I,) array).
    """
    from pycocoevalcap.cider.cider import Cider

    check_references(refs)
    if tokenize:
        hyps = ptb_tokenize(hyps)
        refs = ptb_tokenize_groups(refs)
    gts, res = _as_coco(hyps, refs)
    score, scores = Cider().compute_score(gts, res)
    return float(score), np.asarray(scores, dtype=np.float64)


class _CorpusSize(list):
    """A list of cooked references whose ``len`` is the size of the whole reference corpus.

    pycocoevalcap's ``CiderScorer.compute_cider`` takes ``log(len(self.crefs))`` as the log of the
    number of documents in the IDF; it iterates over the list for the scores themselves.
    """

    def __init__(self, items, corpus_size: int):
        super().__init__(items)
        self.corpus_size = corpus_size

    def __len__(self) -> int:
        return self.corpus_size


class CorpusCiderD:
    """CIDEr-D with document frequencies fixed from a whole reference corpus.

    Args:
        corpus_refs: PTB-tokenized references of every image of the evaluated set.
        n: largest n-gram order.
        sigma: width of the length penalty.

    Example::

        cider = CorpusCiderD(all_refs_tok)
        s = cider.image_scores(batch_hyps_tok, batch_refs_tok)  # (B,), averages to the corpus score
    """

    def __init__(self, corpus_refs: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0):
        from pycocoevalcap.cider.cider_scorer import CiderScorer

        check_references(corpus_refs, "reference corpus")
        scorer = CiderScorer(n=n, sigma=sigma)
        for refs in corpus_refs:
            scorer.cook_append(None, list(refs))
        scorer.compute_doc_freq()
        self.document_frequency = scorer.document_frequency
        self.num_images = len(corpus_refs)
        self.n, self.sigma = n, sigma

    def image_scores(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
        """Per-image CIDEr-D (I,) of tokenized ``hyps`` against tokenized ``refs``."""
        from pycocoevalcap.cider.cider_scorer import CiderScorer

        if not hyps:
            return np.zeros(0)
        check_references(refs)
        if len(hyps) != len(refs):
            raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference sets")
        scorer = CiderScorer(n=self.n, sigma=self.sigma)
        for h, r in zip(hyps, refs):
            scorer.cook_append(h, list(r))
        scorer.document_frequency = defaultdict(float, self.document_frequency)
        scorer.crefs = _CorpusSize(scorer.crefs, self.num_images)
        scores = np.asarray(scorer.compute_cider(), dtype=np.float64)
        if not np.all(np.isfinite(scores)):
            raise FloatingPointError("non-finite CIDEr-D")
        return scores


def sentence_bleu(hyps: Sequence[str], refs: Sequence[Sequence[str]], n: int = 4) -> np.ndarray:
    """BLEU-``n`` of every caption on its own, as pycocoevalcap's ``BleuScorer`` computes it per sentence.

    Its sentence-level smoothing (a tiny count added to every n-gram precision, so a caption
    without a matching 4-gram scores about 1e-5, not 0) and the brevity penalty against the
    reference length closest to the caption (``option="closest"``, as ``Bleu.compute_score``).

    Args:
        hyps: (N,) PTB-tokenized captions (:func:`ptb_tokenize`).
        refs: (N,) lists of PTB-tokenized references of each caption's image.

    Returns:
        (N,) float64 sentence BLEU-``n`` in [0, 1].
    """
    # BleuScorer's per-sentence score is its corpus arithmetic applied to that sentence's statistics
    return np.asarray([corpus_bleu(row, n)[n - 1] for row in bleu_statistics(hyps, refs, n)], dtype=np.float64)


def bleu_statistic_names(n: int = 4) -> tuple:
    """Names of the columns of :func:`bleu_statistics`: testlen, reflen, guess1..n, correct1..n."""
    return ("testlen", "reflen") + tuple(f"guess{k}" for k in range(1, n + 1)) + tuple(
        f"correct{k}" for k in range(1, n + 1))


def bleu_statistics(hyps: Sequence[str], refs: Sequence[Sequence[str]], n: int = 4) -> np.ndarray:
    """The sufficient statistics of pycocoevalcap's corpus BLEU, one row per caption.

    Row ``i``: caption length, the reference length closest to it (pycocoevalcap's
    ``option="closest"``), the number of its 1..n-grams (``guess``) and of those clipped-matched
    by a reference (``correct``). Rows of any batches sum to the statistics of their union, and
    :func:`corpus_bleu` of the sum is exactly ``Bleu(n).compute_score`` on the union; this is how
    validation reports corpus BLEU over several batches (or workers).

    Args:
        hyps: (N,) PTB-tokenized captions.
        refs: (N,) lists of PTB-tokenized references of each caption's image.
        n: largest n-gram order.

    Returns:
        (N, 2 + 2n) float64: testlen, reflen, guess_1..n, correct_1..n.
    """
    from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test

    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} captions but {len(refs)} reference lists")
    check_references(refs)
    out = np.zeros((len(hyps), 2 + 2 * n), dtype=np.float64)
    for i, (h, r) in enumerate(zip(hyps, refs)):
        c = cook_test(h, cook_refs(list(r), n=n), n=n)
        testlen = c["testlen"]
        out[i, 0] = testlen
        out[i, 1] = min((abs(length - testlen), length) for length in c["reflen"])[1]
        out[i, 2:2 + n] = c["guess"]
        out[i, 2 + n:] = c["correct"]
    return out


def corpus_bleu(stats: np.ndarray, n: int = 4) -> List[float]:
    """BLEU-1..n from summed :func:`bleu_statistics` (2 + 2n,), with pycocoevalcap's arithmetic."""
    stats = np.asarray(stats, dtype=np.float64)
    if stats.shape != (2 + 2 * n,):
        raise ValueError(f"BLEU statistics of shape {stats.shape}, ({2 + 2 * n},) expected for n={n}")
    small, tiny = 1e-9, 1e-15  # pycocoevalcap's constants
    testlen, reflen = stats[0], stats[1]
    guess, correct = stats[2:2 + n], stats[2 + n:]
    bleus, bleu = [], 1.0
    for k in range(n):
        bleu *= (float(correct[k]) + tiny) / (float(guess[k]) + small)
        bleus.append(bleu ** (1.0 / (k + 1)))
    ratio = (testlen + tiny) / (reflen + small)
    if ratio < 1:
        bleus = [b * math.exp(1 - 1 / ratio) for b in bleus]
    return [float(b) for b in bleus]


def coco_scores(hyps: Sequence[str], refs: Sequence[Sequence[str]], lang: str = "en",
                meteor: Optional[bool] = None, tokenize: bool = True, meteor_scorer=None) -> Dict[str, object]:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of pycocoevalcap on PTB-tokenized captions.

    Non-English gets BLEU and CIDEr only: pycocoevalcap's METEOR has English resources only.

    Args:
        hyps: one generated caption per image.
        refs: reference captions of each image.
        lang: language code of the captions.
        meteor: force METEOR on/off (default: English only).
        tokenize: PTB-tokenize first (False: inputs are tokenized already, as :func:`cider_d`).
        meteor_scorer: an open :class:`unix.metrics.meteor.MeteorStatistics` to use (and leave open)
            instead of starting a METEOR process for this call.

    Returns:
        dict metric name -> score (pycocoevalcap scale), plus ``"skipped"``: metric -> reason,
        ``"images"`` and ``"refs_per_image"``.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    check_references(refs)
    english = lang == "en"
    if tokenize:
        hyps, refs = ptb_tokenize(hyps), ptb_tokenize_groups(refs)
    gts, res = _as_coco(hyps, refs)
    out: Dict[str, object] = {"images": len(hyps), "refs_per_image": float(np.mean([len(r) for r in refs]))}
    skipped: Dict[str, str] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocoevalcap's BLEU prints its statistics
        bleu, _ = Bleu(4).compute_score(gts, res)
    for k, b in enumerate(bleu, start=1):
        out[f"BLEU-{k}"] = float(b)
    use_meteor = english if meteor is None else meteor
    if use_meteor:
        m = meteor_scorer or MeteorStatistics()
        try:  # the jar's own corpus aggregate, as pycocoevalcap's Meteor().compute_score
            out["METEOR"] = m.exact_corpus(m.statistics(hyps, refs))
        finally:
            if meteor_scorer is None:
                m.close()
    else:
        skipped["METEOR"] = METEOR_ENGLISH_ONLY
    if english:
        out["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    else:
        skipped["ROUGE-L"] = ROUGE_ENGLISH_ONLY
    out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    skipped["SPICE"] = SPICE_SKIPPED
    out["skipped"] = skipped
    if not all(math.isfinite(v) for k, v in out.items() if isinstance(v, float)):
        raise FloatingPointError(f"non-finite score in {out}")
    return out

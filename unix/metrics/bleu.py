"""BLEU two ways: comparable with the published Multi30K tables, and sacreBLEU.

(a) *tokenized BLEU*: hypotheses and references lowercased, punctuation-normalised and Moses-
    tokenised exactly as the Multi30K ``tok/*.lc.norm.tok.*`` release (this pipeline reproduces
    the release's test_2016_flickr references: de 1000/1000, en 1000/1000, fr 999/1000 lines),
    then BLEU-4 on those tokens with no further tokenisation (as fairseq's ``--scoring bleu`` or
    multi-bleu.perl on the release). This is how the MMT papers' 41.02 / 41.96 were computed.
(b) *sacreBLEU* on raw true-case text, with its signature: the modern standard, not comparable
    with (a).

A system trained in the published protocol itself (``unix-prepare-multi30k --protocol
tok-bpe``) outputs tokenized lowercase text once BPE is removed: :func:`pretokenized_bleu` scores
it as it is, against the ``tok/`` references (what fairseq-generate's ``BLEU4`` computes).

:func:`score` scores a saved ``fairseq-generate`` output both ways (``unix-score-mmt``).
"""

from typing import Dict, List, Sequence

from unix.data import generate_output
from unix.data.bpe import multi30k_tokenize  # noqa: F401  (re-exported: the tokenization of (a))
from unix.data.tokenizer import read_lines


def tokenized_bleu(hyps: Sequence[str], refs_tok: Sequence[str], lang: str) -> Dict:
    """(a): BLEU-4 of raw hypotheses, tokenised like the release, against tokenised references."""
    _check(hyps, refs_tok)
    return pretokenized_bleu([multi30k_tokenize(h, lang) for h in hyps], refs_tok)


def pretokenized_bleu(hyps_tok: Sequence[str], refs_tok: Sequence[str]) -> Dict:
    """(a) of hypotheses that are already tokenized like the references: BLEU-4 on their tokens as
    they are (no lowercasing, no tokenization; as fairseq's ``--scoring bleu`` or multi-bleu.perl)."""
    import sacrebleu

    _check(hyps_tok, refs_tok)
    bleu = sacrebleu.corpus_bleu([h.strip() for h in hyps_tok], [[r.strip() for r in refs_tok]], tokenize="none",
                                 force=True)
    return {"bleu": round(bleu.score, 2), "detail": str(bleu), "n": len(hyps_tok)}


def sacre_bleu(hyps: Sequence[str], refs: Sequence[str], lowercase: bool = False) -> Dict:
    """(b): sacreBLEU (13a tokenisation, case-sensitive unless ``lowercase``) on raw text, with its signature."""
    import sacrebleu

    _check(hyps, refs)
    metric = sacrebleu.BLEU(lowercase=lowercase)
    bleu = metric.corpus_score(list(hyps), [list(refs)])
    return {"bleu": round(bleu.score, 2), "detail": str(bleu), "signature": str(metric.get_signature()),
            "n": len(hyps)}


def _check(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    if not hyps:
        raise ValueError("nothing to score")


def read_generate_output(path: str, prefix: str = "D") -> Dict[int, str]:
    """Sentence id -> the best hypothesis of a ``fairseq-generate`` output: detokenised (``D``) or
    tokenized (``H``); read by :func:`unix.data.generate_output.read_generate_output`."""
    out: Dict[int, str] = {}
    for sid, sample in generate_output.read_generate_output(path).items():
        if sample.hyps:
            text = sample.hyps[0].detok if prefix == "D" else sample.hyps[0].text
            if text is not None:
                out[sid] = text
    return out


def ordered(hyps: Dict[int, str], n: int, source: str = "") -> List[str]:
    """Hypotheses 0..n-1 in order; a missing id (fairseq skipped a sentence) or an id >= n is an error."""
    extra = sorted(i for i in hyps if not 0 <= i < n)
    if extra:
        raise ValueError(f"{source}: {len(hyps)} hypotheses (ids up to {extra[-1]}) but {n} references: "
                         "the output is not of this test set")
    missing = [i for i in range(n) if i not in hyps]
    if missing:
        raise ValueError(f"{source}: {len(missing)} of {n} sentences have no hypothesis (first: id {missing[0]})")
    return [hyps[i] for i in range(n)]


def score(generate_output, ref, lang, ref_tok=None, subset_image_list=None, tokenized=False):
    """Scores of a fairseq-generate output (see the module doc); ``tokenized``: (a) only, hypotheses as they are."""
    if tokenized:
        return score_tokenized(generate_output, ref_tok, subset_image_list)
    refs = read_lines(ref)
    hyps = ordered(read_generate_output(generate_output), len(refs), generate_output)
    refs_tok = read_lines(ref_tok) if ref_tok else None
    keep = image_rows(subset_image_list, len(refs))
    pick = lambda xs: [xs[i] for i in keep]  # noqa: E731
    out = {"n": len(keep), "sacrebleu": sacre_bleu(pick(hyps), pick(refs))}
    if refs_tok is not None:
        if len(refs_tok) != len(refs):
            raise ValueError(f"{ref_tok}: {len(refs_tok)} lines, {ref}: {len(refs)}")
        out["tokenized_bleu"] = tokenized_bleu(pick(hyps), pick(refs_tok), lang)
    return out


def image_rows(subset_image_list, n):
    """Rows 0..n-1, or those whose line in the image list is not empty."""
    if not subset_image_list:
        return list(range(n))
    names = read_lines(subset_image_list)
    if len(names) != n:
        raise ValueError(f"{subset_image_list}: {len(names)} lines for {n} references")
    return [i for i, name in enumerate(names) if name]


def score_tokenized(generate_output, ref_tok, subset_image_list=None):
    """(a) of already tokenized hypotheses against the tokenized references: ``{"n", "tokenized_bleu"}``."""
    refs_tok = read_lines(ref_tok)
    hyps = ordered(read_generate_output(generate_output), len(refs_tok), generate_output)
    keep = image_rows(subset_image_list, len(refs_tok))
    return {"n": len(keep), "tokenized_bleu": pretokenized_bleu([hyps[i] for i in keep], [refs_tok[i] for i in keep])}

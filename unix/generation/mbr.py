"""Minimum Bayes-risk (MBR) reranking of a beam's candidates.

Beam search returns the candidate the model finds most probable; the metrics reward the caption
that agrees most with what *other* plausible captions say (n-gram consensus). MBR decoding
(Kumar & Byrne, 2004; for captions, the consensus reranking of Devlin et al., 2015) picks, among
the ``K`` candidates of a photo, the one of highest expected utility against the candidates
themselves, weighted by the model's posterior over the n-best list:

    EU(h) = sum_e w_e u(h, e),    w = softmax(alpha * log p(e))   (alpha = 0: uniform)

Utilities here work on word lists (lowercased, punctuation dropped: :func:`words`):

* ``bleu``: sentence BLEU-4 with add-one smoothing of the 2..4-gram precisions (Lin & Och, 2004)
  and the brevity penalty against the evidence caption;
* ``cider``: CIDEr-D's n-gram arithmetic (clipped count vectors, cosine, Gaussian length penalty,
  n = 1..4, x10) without document frequencies, which a single photo's candidates cannot provide.

The candidate itself is part of the evidence (``u(h, h)`` is the maximum), so with ``alpha > 0``
a probable candidate keeps an edge. Everything is plain Python on at most a few dozen candidates.

Example::

    cands = [words(c) for c in ["a dog runs .", "a dog runs on the grass .", "a brown dog ."]]
    order, eu = mbr_order(cands, logprobs=[-3.1, -5.0, -4.2], utility="bleu", alpha=1.0)
    best = cands[order[0]]
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> List[str]:
    """Lowercased word tokens of a caption, punctuation dropped (close to the PTB tokens scored)."""
    return _WORD.findall(text.lower())


def ngram_counts(tokens: Sequence[str], n: int = 4) -> List[Counter]:
    """``[Counter of 1-grams, ..., Counter of n-grams]`` of ``tokens``."""
    return [Counter(tuple(tokens[i:i + k]) for i in range(len(tokens) - k + 1)) for k in range(1, n + 1)]


def bleu_utility(hyp: List[Counter], hyp_len: int, ev: List[Counter], ev_len: int) -> float:
    """Sentence BLEU-4 of ``hyp`` against one evidence caption, add-one smoothed for n >= 2.

    Args:
        hyp, ev: :func:`ngram_counts` of the candidate and of the evidence caption.
        hyp_len, ev_len: their lengths in words.

    Returns:
        BLEU in [0, 1] (0 for an empty candidate or no unigram match).
    """
    if hyp_len == 0:
        return 0.0
    log_p = 0.0
    for k, (h, e) in enumerate(zip(hyp, ev)):
        match = sum(min(c, e[g]) for g, c in h.items())
        total = sum(h.values())
        if k == 0:
            if match == 0:
                return 0.0
            log_p += math.log(match / total)
        else:
            log_p += math.log((match + 1.0) / (total + 1.0))
    bp = min(0.0, 1.0 - ev_len / hyp_len)
    return math.exp(bp + log_p / len(hyp))


def cider_utility(hyp: List[Counter], hyp_len: int, ev: List[Counter], ev_len: int, sigma: float = 6.0) -> float:
    """CIDEr-D of ``hyp`` against one evidence caption with all document frequencies equal.

    As pycocoevalcap's ``CiderScorer``: per n, ``sum_g min(h_g, e_g) e_g / (|h| |e|)``, times
    ``exp(-(len_h - len_e)^2 / (2 sigma^2))``, averaged over n and multiplied by 10.
    """
    total = 0.0
    for h, e in zip(hyp, ev):
        norm = math.sqrt(sum(c * c for c in h.values())) * math.sqrt(sum(c * c for c in e.values()))
        if norm > 0:
            total += sum(min(c, e[g]) * e[g] for g, c in h.items() if g in e) / norm
    penalty = math.exp(-((hyp_len - ev_len) ** 2) / (2.0 * sigma ** 2))
    return 10.0 * penalty * total / len(hyp)


UTILITIES: Dict[str, Callable[..., float]] = {"bleu": bleu_utility, "cider": cider_utility}


def evidence_weights(logprobs: Sequence[float], alpha: float) -> np.ndarray:
    """``softmax(alpha * logprobs)``, (K,); uniform for ``alpha = 0``."""
    lp = np.asarray(logprobs, dtype=np.float64) * alpha
    if not np.all(np.isfinite(lp)):
        raise ValueError(f"non-finite candidate log-probabilities: {list(logprobs)}")
    w = np.exp(lp - lp.max())
    return w / w.sum()


def utility_matrix(candidates: Sequence[Sequence[str]], utility: str = "bleu",
                   evidence: Optional[Sequence[Sequence[str]]] = None) -> np.ndarray:
    """``U[i, j] = u(candidate i, evidence j)``: (K, M), the candidates themselves by default (K, K)."""
    if utility not in UTILITIES:
        raise ValueError(f"unknown MBR utility {utility!r}; choose from {', '.join(UTILITIES)}")
    fn = UTILITIES[utility]
    cand = [(ngram_counts(list(c)), len(c)) for c in candidates]
    ev = cand if evidence is None else [(ngram_counts(list(e)), len(e)) for e in evidence]
    U = np.zeros((len(cand), len(ev)))
    for i, (hg, hl) in enumerate(cand):
        for j, (eg, el) in enumerate(ev):
            U[i, j] = fn(hg, hl, eg, el)
    return U


def mbr_order(candidates: Sequence[Sequence[str]], logprobs: Sequence[float], utility: str = "bleu",
              alpha: float = 1.0, evidence: Optional[Sequence[Sequence[str]]] = None,
              evidence_logprobs: Optional[Sequence[float]] = None) -> Tuple[List[int], np.ndarray]:
    """Rank candidates by expected utility, best first.

    Args:
        candidates: (K,) word lists (:func:`words`), in the model's order (best first).
        logprobs: (K,) total log-probabilities of the candidates (the evidence weights when the
            candidates are their own evidence).
        utility: a key of :data:`UTILITIES`.
        alpha: scale of the log-probabilities in the weights (0: uniform).
        evidence: (M,) other word lists to take the expectation over (e.g. sampled captions, which
            estimate it without the bias of beam search; use ``alpha = 0`` for samples drawn from
            the model); default: the candidates.
        evidence_logprobs: (M,) their log-probabilities (default: all equal).

    Returns:
        ``(order, expected_utility)``: indices best first (ties keep the model's order) and the (K,)
        expected utilities.
    """
    if len(candidates) != len(logprobs):
        raise ValueError(f"{len(candidates)} candidates but {len(logprobs)} log-probabilities")
    if not candidates:
        return [], np.zeros(0)
    if evidence is None:
        weights = evidence_weights(logprobs, alpha)
    else:
        if not evidence:
            raise ValueError("empty evidence")
        if evidence_logprobs is not None and len(evidence_logprobs) != len(evidence):
            raise ValueError(f"{len(evidence)} evidence captions but {len(evidence_logprobs)} log-probabilities")
        weights = evidence_weights(evidence_logprobs if evidence_logprobs is not None else [0.0] * len(evidence),
                                   alpha)
    eu = utility_matrix(candidates, utility, evidence) @ weights  # (K,)
    order = sorted(range(len(candidates)), key=lambda i: (-round(float(eu[i]), 12), i))
    return order, eu


def mbr_rerank(hypos: List[Dict], texts: Sequence[str], utility: str, alpha: float = 1.0,
               weights: str = "logprob") -> List[Dict]:
    """One sentence's beam hypotheses in MBR order (:func:`mbr_order`).

    Args:
        hypos: (K,) hypotheses as beam search returns them, dicts with ``score`` (the
            length-normalised score) and ``positional_scores`` (T,) (per-token log-probabilities).
        texts: (K,) their detokenized text; compared as :func:`words`.
        utility: a key of :data:`UTILITIES`.
        alpha: scale of the log-probabilities in the evidence weights.
        weights: ``"logprob"``: the total log-probability (sum of the positional scores, nats);
            ``"score"``: beam search's length-normalised score.

    Returns:
        the same dicts, best first (a list of fewer than two is returned as is).
    """
    if len(hypos) < 2:
        return hypos
    if len(texts) != len(hypos):
        raise ValueError(f"{len(hypos)} hypotheses but {len(texts)} texts")
    if weights == "score":
        logprobs = [float(h["score"]) for h in hypos]
    else:
        logprobs = [float(h["positional_scores"].float().sum()) for h in hypos]
    order, _ = mbr_order([words(t) for t in texts], logprobs, utility, alpha)
    return [hypos[i] for i in order]

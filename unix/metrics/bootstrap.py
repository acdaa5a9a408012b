"""Bootstrap intervals of corpus caption metrics, resampling the images (Koehn 2004, Efron and Tibshirani).

Every metric is resampled on the same draws: ``resample_indices(N, R, seed)`` is an (R, N) array of
image indices drawn with replacement, and each row is one resampled test set. The corpus score of a
resample is computed the way the metric defines its corpus score, not as a mean of sentence scores:

- BLEU: :func:`unix.metrics.caption.corpus_bleu` of the summed :func:`bleu_statistics` rows (exact).
- METEOR 1.5: the jar's score of the drawn images' summed sufficient statistics, which is what
  pycocoevalcap's corpus METEOR is (exact; :class:`MeteorStatistics`).
- CIDEr-D: the mean of per-image scores with document frequencies fixed from the whole test set
  (pycocoevalcap's corpus CIDEr-D is exactly that mean; only the IDF is not re-estimated per
  resample, the usual approximation).

With a ``baseline`` (another system's captions of the same images) every function returns the
paired difference on the same draws, which is what decides whether one system is better than another.
"""

import logging
from typing import Optional, Sequence

import numpy as np

from unix.metrics.caption import _start_meteor, check_references, corpus_bleu

logger = logging.getLogger(__name__)


def resample_indices(num_images: int, resamples: int, seed: int = 0) -> np.ndarray:
    """(resamples, num_images) int64 image indices drawn with replacement (seeded)."""
    if num_images < 1 or resamples < 1:
        raise ValueError(f"need at least one image and one resample, got {num_images} and {resamples}")
    return np.random.default_rng(seed).integers(0, num_images, size=(resamples, num_images))


def _check_baseline(values, baseline, what: str):
    if baseline is not None and np.shape(baseline) != np.shape(values):
        raise ValueError(f"baseline {what} {np.shape(baseline)} != {np.shape(values)}")


def bootstrap_bleu(stats: np.ndarray, resamples: int = 1000, seed: int = 0, n: int = 4,
                   baseline: Optional[np.ndarray] = None) -> np.ndarray:
    """Corpus BLEU-``n`` (x100) of ``resamples`` bootstrap resamples of the images.

    Args:
        stats: (N, 2 + 2n) :func:`unix.metrics.caption.bleu_statistics` of N captions.
        resamples: number of resamples (N images drawn with replacement each).
        seed: seed of the resampling.
        n: BLEU order reported.
        baseline: (N, 2 + 2n) statistics of another system's captions of the same images: then
            the paired difference (``stats`` minus ``baseline``) on the same resamples.

    Returns:
        (resamples,) float64 BLEU-n x100 (or differences).
    """
    stats = np.asarray(stats, dtype=np.float64)
    _check_baseline(stats, baseline, "statistics")
    out = np.empty(resamples, dtype=np.float64)
    for r, idx in enumerate(resample_indices(len(stats), resamples, seed)):
        out[r] = 100.0 * corpus_bleu(stats[idx].sum(axis=0), n)[n - 1]
        if baseline is not None:
            out[r] -= 100.0 * corpus_bleu(baseline[idx].sum(axis=0), n)[n - 1]
    return out


def bootstrap_mean(scores: np.ndarray, resamples: int = 1000, seed: int = 0,
                   baseline: Optional[np.ndarray] = None, scale: float = 100.0) -> np.ndarray:
    """``scale`` x the mean of per-image ``scores`` (N,) over resamples (CIDEr-D, document frequencies fixed).

    Returns:
        (resamples,) float64 means (or paired differences against ``baseline`` (N,)).
    """
    scores = np.asarray(scores, dtype=np.float64)
    _check_baseline(scores, baseline, "scores")
    diff = scores if baseline is None else scores - np.asarray(baseline, dtype=np.float64)
    return scale * diff[resample_indices(len(diff), resamples, seed)].mean(axis=1)


class MeteorStatistics:
    """METEOR 1.5 sufficient statistics per caption, and the corpus METEOR of any multiset of captions.

    One pycocoevalcap METEOR process (``-l en -norm``, English only) is kept open. A caption's
    statistics are the jar's ``SCORE`` answer, a vector of counts (lengths, function words, matches
    per stage, chunks, matched words). The jar's corpus score (``EVAL``, what pycocoevalcap reports)
    adds these vectors up, except that a caption matched entirely in one chunk adds no chunk (it
    has no fragmentation); :meth:`summed` applies that rule, so the jar's score of the sum is the
    corpus METEOR, and :meth:`scores` scores many sums in one request (what makes a bootstrap
    cheap). :meth:`exact_corpus` asks the jar to aggregate the captions itself; :func:`bootstrap_meteor`
    checks the two agree before it trusts the sums.

    Example::

        meteor = MeteorStatistics()
        stats = meteor.statistics(ptb_tokenize(hyps), ptb_tokenize_groups(refs))  # (N, K)
        whole = meteor.corpus(stats)
        draws = bootstrap_meteor(meteor, stats, resamples=1000)
        meteor.close()
    """

    def __init__(self):
        self._meteor = _start_meteor()

    def _process(self):
        if self._meteor is None:
            raise RuntimeError("MeteorStatistics was closed")
        return self._meteor

    def statistics(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
        """(N, K) float64 METEOR statistics of PTB-tokenized ``hyps`` (N,) against their references."""
        if len(hyps) != len(refs):
            raise ValueError(f"{len(hyps)} captions but {len(refs)} reference lists")
        if not hyps:
            raise ValueError("no captions to score")
        check_references(refs)
        meteor = self._process()
        with meteor.lock:  # pycocoevalcap's own per-caption SCORE request, as in its compute_score
            lines = [meteor._stat(h, list(r)) for h, r in zip(hyps, refs)]
        rows = [np.array(line.split(), dtype=np.float64) for line in lines]
        if len({len(r) for r in rows}) != 1:
            raise RuntimeError(f"METEOR returned statistics of different lengths: {sorted({len(r) for r in rows})}")
        return np.stack(rows)

    @staticmethod
    def summed(stats: np.ndarray, idx: Optional[np.ndarray] = None) -> np.ndarray:
        """Sum of caption statistics (N, K) -> (K,), or of the rows ``idx`` (R, N) -> (R, K), as the jar aggregates.

        Columns: 0 and 1 are the caption and reference lengths, the last three the chunks and the
        matched caption and reference words. A caption matched whole in one chunk adds 0 chunks.
        """
        stats = np.array(stats, dtype=np.float64)
        whole = (stats[:, -3] == 1) & (stats[:, -2] == stats[:, 0]) & (stats[:, -1] == stats[:, 1])
        stats[whole, -3] = 0.0
        return stats.sum(axis=0) if idx is None else stats[idx].sum(axis=-2)

    def _request(self, rows: np.ndarray) -> np.ndarray:
        """The jar's ``EVAL`` of the rows (M, K): (M + 1,) scores, one per row and then their aggregate."""
        rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        if rows.shape[0] == 0:
            raise ValueError("no METEOR statistics to score")
        meteor = self._process()
        proc = meteor.meteor_p
        request = "EVAL ||| " + " ||| ".join(" ".join(repr(float(v)) for v in row) for row in rows) + "\n"
        with meteor.lock:
            proc.stdin.write(request.encode())
            proc.stdin.flush()
            lines = [proc.stdout.readline().strip() for _ in range(len(rows) + 1)]
        try:
            return np.array([float(line) for line in lines], dtype=np.float64)
        except ValueError:
            raise RuntimeError(f"METEOR answered {lines[0][:80]!r} instead of scores") from None

    def scores(self, sums: np.ndarray) -> np.ndarray:
        """(M,) METEOR (0-1) of each row of ``sums`` (M, K), every row a :meth:`summed` set of statistics."""
        return self._request(sums)[:-1]

    def corpus(self, stats: np.ndarray) -> float:
        """Corpus METEOR (pycocoevalcap scale, 0-1) of the captions whose statistics are the rows of ``stats``."""
        stats = np.asarray(stats, dtype=np.float64)
        if stats.ndim != 2 or stats.shape[0] == 0:
            raise ValueError(f"expected (N, K) METEOR statistics with N >= 1, got shape {stats.shape}")
        return float(self.scores(self.summed(stats))[0])

    def exact_corpus(self, stats: np.ndarray) -> float:
        """The jar's own aggregate of the captions' statistics (N, K), without :meth:`summed`."""
        return float(self._request(stats)[-1])

    def close(self) -> None:
        if self._meteor is not None:
            meteor, self._meteor = self._meteor, None
            del meteor

    def __del__(self):
        self.close()


def bootstrap_meteor(meteor: MeteorStatistics, stats: np.ndarray, resamples: int = 1000, seed: int = 0,
                     baseline: Optional[np.ndarray] = None) -> np.ndarray:
    """Corpus METEOR (x100) of ``resamples`` bootstrap resamples of the images (or paired differences).

    Args:
        meteor: an open :class:`MeteorStatistics`.
        stats: (N, K) :meth:`MeteorStatistics.statistics` of N captions.
        resamples, seed: as :func:`bootstrap_bleu` (same draws for the same N and seed).
        baseline: (N, K) statistics of another system's captions of the same images.

    Returns:
        (resamples,) float64.
    """
    stats = np.asarray(stats, dtype=np.float64)
    _check_baseline(stats, baseline, "statistics")
    idx = resample_indices(len(stats), resamples, seed)  # (R, N)
    systems = [stats] if baseline is None else [stats, np.asarray(baseline, dtype=np.float64)]
    for s in systems:  # the sums must reproduce the jar's own aggregate (whole set and a resample)
        for rows in (s, s[idx[0]]):
            summed, exact = meteor.corpus(rows), meteor.exact_corpus(rows)
            if abs(summed - exact) > 1e-9:
                raise RuntimeError(f"summed METEOR statistics score {summed} but the jar aggregates {exact}")
    out = 100.0 * meteor.scores(meteor.summed(stats, idx))  # (R, K) summed statistics, one request
    if baseline is not None:
        out -= 100.0 * meteor.scores(meteor.summed(systems[1], idx))
    return out


def interval(draws: np.ndarray, level: float = 0.95) -> tuple:
    """(low, high) percentile interval of bootstrap ``draws`` at confidence ``level``."""
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(draws, [tail, 100.0 - tail])
    return float(lo), float(hi)

"""Bootstrap intervals of corpus caption metrics, resampling the images (Koehn 2004, Efron and Tibshirani).

Every metric is resampled on the same draws: ``resample_indices(N, R, seed)`` is an (R, N) array of
image indices drawn with replacement, and each row is one resampled test set. The corpus score of a
resample is computed the way the metric defines its corpus score, not as a mean of sentence scores:

- BLEU: :func:`unix.metrics.caption.corpus_bleu` of the summed :func:`bleu_statistics` rows (exact).
- METEOR 1.5: the jar's score of the drawn images' summed sufficient statistics, which is what
  pycocoevalcap's corpus METEOR is (exact; :class:`unix.metrics.meteor.MeteorStatistics`).
- CIDEr-D: the mean of per-image scores with document frequencies fixed from the whole test set
  (pycocoevalcap's corpus CIDEr-D is exactly that mean; only the IDF is not re-estimated per
  resample, the usual approximation).

With a ``baseline`` (another system's captions of the same images) every function returns the
paired difference on the same draws, which is what decides whether one system is better than another.
"""

from typing import Optional

import numpy as np

from unix.metrics.caption import corpus_bleu
from unix.metrics.meteor import MeteorStatistics


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
        meteor.check_summed(s)
        meteor.check_summed(s[idx[0]])
    out = 100.0 * meteor.scores(meteor.summed(stats, idx))  # (R, K) summed statistics, one request
    if baseline is not None:
        out -= 100.0 * meteor.scores(meteor.summed(systems[1], idx))
    return out


def interval(draws: np.ndarray, level: float = 0.95) -> tuple:
    """(low, high) percentile interval of bootstrap ``draws`` at confidence ``level``."""
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(draws, [tail, 100.0 - tail])
    return float(lo), float(hi)

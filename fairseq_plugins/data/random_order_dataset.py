"""Training batches drawn from a fresh random order each epoch, not grouped by length."""

from typing import Optional

import numpy as np
from fairseq.data import BaseWrapperDataset


class RandomOrderDataset(BaseWrapperDataset):
    """Wraps a dataset so that ``ordered_indices`` is a random permutation, or a weighted draw.

    fairseq sorts samples by length before cutting batches (``batch_by_size``), so a batch holds
    samples of one length. When the length tells the kind of sample (VQA: "is there a red shape?"
    vs. "what color is the shape?"), a batch then holds one question type and its gradient pushes
    towards that type's answer prior. Here batches are cut from a permutation drawn under fairseq's
    ``numpy_seed(seed + epoch)``, and rebuilt every epoch (the epoch iterator is not reused).

    With ``weights``, an epoch is instead ``len(dataset)`` samples drawn with replacement with
    probability proportional to the weights (fresh each epoch; e.g. answer-balanced VQA training,
    :mod:`unix.data.answer_balance`).

    Args:
        dataset: the training dataset.
        weights: optional (N,) non-negative sampling weights, not all zero.
    """

    def __init__(self, dataset, weights: Optional[np.ndarray] = None):
        super().__init__(dataset)
        self.probs = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (len(dataset),):
                raise ValueError(f"{w.shape[0] if w.ndim else 0} sampling weights for {len(dataset)} samples")
            if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
                raise ValueError("sampling weights must be finite, non-negative and not all zero")
            self.probs = w / w.sum()

    def ordered_indices(self):
        if self.probs is None:
            return np.random.permutation(len(self))
        return np.random.choice(len(self), size=len(self), replace=True, p=self.probs)

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return False

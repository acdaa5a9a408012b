"""Training batches drawn from a fresh random permutation each epoch, not grouped by length."""

import numpy as np
from fairseq.data import BaseWrapperDataset


class RandomOrderDataset(BaseWrapperDataset):
    """Wraps a dataset so that ``ordered_indices`` is a random permutation.

    fairseq sorts samples by length before cutting batches (``batch_by_size``), so a batch holds
    samples of one length. When the length tells the kind of sample (VQA: "is there a red shape?"
    vs. "what color is the shape?"), a batch then holds one question type and its gradient pushes
    towards that type's answer prior. Here batches are cut from a permutation drawn under fairseq's
    ``numpy_seed(seed + epoch)``, and rebuilt every epoch (the epoch iterator is not reused).
    """

    def ordered_indices(self):
        return np.random.permutation(len(self))

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return False

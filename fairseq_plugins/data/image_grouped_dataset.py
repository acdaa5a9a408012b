"""Training batches that hold only sentences with an image or only sentences without one."""

import numpy as np
from fairseq.data import BaseWrapperDataset


class ImageGroupedDataset(BaseWrapperDataset):
    """Wraps a dataset so that ``ordered_indices`` lists the sentences without an image first,
    then those with one, each group in the wrapped dataset's own order (fairseq's shuffled,
    length-sorted order, or a random permutation with ``--random-batches``).

    fairseq cuts batches from consecutive indices, so every batch but the one at the boundary is
    all-text or all-image. A batch with any image builds visual tokens for all of its rows (rows
    without an image are masked), so on Multi30K, where about a quarter of the sentences have a
    photo here, almost every mixed batch pays for the visual tokens; grouped, only a quarter do.
    The batches are still shuffled across groups each epoch by fairseq's epoch iterator.

    Args:
        dataset: the training dataset (any wrapper of an ``ImagePairDataset``).
        has_image: (N,) bool, whether sentence ``i`` has an image.
    """

    def __init__(self, dataset, has_image: np.ndarray):
        super().__init__(dataset)
        if len(has_image) != len(dataset):
            raise ValueError(f"{len(has_image)} image flags for {len(dataset)} sentences")
        self.has_image = np.asarray(has_image, dtype=bool)

    def ordered_indices(self):
        order = np.asarray(self.dataset.ordered_indices())
        with_image = self.has_image[order]
        return np.concatenate([order[~with_image], order[with_image]])

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return self.dataset.can_reuse_epoch_itr_across_epochs

"""Training batches in which the samples that share an encoder input sit together."""

import numpy as np
from fairseq.data import BaseWrapperDataset


def grouped_order(lengths: np.ndarray, groups: np.ndarray, rng: np.random.RandomState = np.random) -> np.ndarray:
    """Sample order with the members of each group consecutive, groups sorted by their longest member.

    Groups of equal longest length come in random order; inside a group, members go shortest
    first. fairseq cuts batches from consecutive indices, so a batch holds whole groups (but the
    two at its ends) of similar lengths.

    Args:
        lengths: (N,) sample lengths (tokens).
        groups: (N,) group id of each sample (any non-negative ints).
        rng: random source (fairseq seeds ``np.random`` around ``ordered_indices``).

    Returns:
        (N,) permutation of ``range(N)``.
    """
    lengths, groups = np.asarray(lengths), np.asarray(groups)
    if lengths.shape != groups.shape:
        raise ValueError(f"{len(lengths)} lengths for {len(groups)} group ids")
    _, g = np.unique(groups, return_inverse=True)  # (N,) dense ids 0..G-1
    longest = np.zeros(g.max() + 1 if len(g) else 0, dtype=np.int64)
    np.maximum.at(longest, g, lengths)
    rank = rng.permutation(len(longest))  # random tie-break between groups
    return np.lexsort((lengths, g, rank[g], longest[g]))  # last key sorts first


class InputGroupedDataset(BaseWrapperDataset):
    """Wraps a training dataset so that ``ordered_indices`` keeps each group of samples together.

    For captioning, a group is the captions of one photo in one language: their encoder input
    (the photo and a language tag) is the same, so a batch of whole groups encodes each input
    once (``ImagePairDataset(input_groups=...)`` marks the repeats, the encoder skips them). The
    order is drawn afresh each epoch under fairseq's seed; fairseq's epoch iterator then
    shuffles the batches.

    Args:
        dataset: the training dataset (``num_tokens_vec`` gives the sample lengths).
        groups: (N,) group id of each sample.
    """

    def __init__(self, dataset, groups: np.ndarray):
        super().__init__(dataset)
        if len(groups) != len(dataset):
            raise ValueError(f"{len(groups)} group ids for {len(dataset)} samples")
        self.groups = np.asarray(groups)

    def ordered_indices(self):
        n = len(self.dataset)
        try:
            lengths = self.dataset.num_tokens_vec(np.arange(n))
        except NotImplementedError:  # most wrappers only forward num_tokens
            lengths = np.fromiter((self.dataset.num_tokens(i) for i in range(n)), dtype=np.int64, count=n)
        return grouped_order(lengths, self.groups)

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return False

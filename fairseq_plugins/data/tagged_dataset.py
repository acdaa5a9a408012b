"""Dataset wrappers that tag batches with their split or replace the language tag of every source.

:data:`SPLIT_KEY` is the batch key that names the split a batch comes from: a task scoring
generated text against the references of a split (``unix_caption --eval-metric cider``) and the
``unix_scst`` criterion read it, and neither needs to import the other.
"""

from fairseq.data import BaseWrapperDataset

SPLIT_KEY = "unix_split"  # batch key naming the split a batch comes from (CIDEr needs its references)


class SplitTaggedDataset(BaseWrapperDataset):
    """Adds the split name to every batch (``batch["unix_split"]``)."""

    def __init__(self, dataset, split: str):
        super().__init__(dataset)
        self.split = split

    def collater(self, samples):
        batch = self.dataset.collater(samples)
        if batch:
            batch[SPLIT_KEY] = self.split
        return batch


class TagOverrideDataset(BaseWrapperDataset):
    """Source dataset whose first token (the language tag) is replaced by ``tag``."""

    def __init__(self, dataset, tag: int):
        super().__init__(dataset)
        self.tag = tag

    def __getitem__(self, index):
        item = self.dataset[index].clone()
        item[0] = self.tag
        return item

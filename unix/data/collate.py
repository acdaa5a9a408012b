"""The one collater of unix: token sequences and optional images into a batch.

Every task (translation with images, captioning, VQA, pre-training streams) produces samples of
the same form: source tokens, target tokens and an optional image (pixels ``(3, H, W)`` or
precomputed features ``(N, C)``). fairseq's ``LanguagePairDataset`` collates the text; the image
part is :func:`collate_images`, shared by everything.
"""

from __future__ import annotations

from typing import Dict, Hashable, Optional, Sequence

import torch


def collate_tokens(seqs: Sequence[torch.Tensor], pad: int, left_pad: bool = False) -> torch.Tensor:
    """Pad 1-D sequences into (B, T_max)."""
    T = max((len(s) for s in seqs), default=0)
    out = seqs[0].new_full((len(seqs), T), pad) if seqs else torch.empty(0, 0, dtype=torch.long)
    for i, s in enumerate(seqs):
        if left_pad:
            out[i, T - len(s):] = s
        else:
            out[i, : len(s)] = s
    return out


def collate_images(items: Sequence[Optional[torch.Tensor]]):
    """Stack optional images (or feature tensors) of one batch.

    Args:
        items: B entries, each a tensor of one shape (``(3, H, W)`` or ``(N, C)``) or ``None``.

    Returns:
        ``(stacked, mask)``: ``stacked`` (B, ...) with zeros where an entry is ``None`` (``None``
        if all are), and ``mask`` (B,) bool, True where the sample has an image.

    Raises:
        ValueError: if the present entries differ in shape.
    """
    mask = torch.tensor([x is not None for x in items], dtype=torch.bool)
    present = [x for x in items if x is not None]
    if not present:
        return None, mask
    shape = present[0].shape
    for x in present:
        if x.shape != shape:
            raise ValueError(f"images of one batch differ in shape: {tuple(shape)} vs {tuple(x.shape)}")
    out = present[0].new_zeros((len(items),) + tuple(shape))
    for i, x in enumerate(items):
        if x is not None:
            out[i] = x
    return out, mask


def duplicate_index(keys: Sequence[Hashable]) -> torch.Tensor:
    """(B,) long: for each of B hashable keys, the position of the first row with the same key.

    Example: ``duplicate_index(["a", "b", "a"])`` is ``tensor([0, 1, 0])``.
    """
    first: Dict[Hashable, int] = {}
    return torch.tensor([first.setdefault(k, i) for i, k in enumerate(keys)], dtype=torch.long)


def add_images_to_batch(batch: Dict, images_by_id: Dict[int, Optional[torch.Tensor]], key: str,
                        inputs_by_id: Optional[Dict[int, Hashable]] = None) -> Dict:
    """Put the images of a collated fairseq batch into ``batch["net_input"]``, in batch order.

    Args:
        batch: a batch with ``id`` (B,) and ``net_input``.
        images_by_id: sample id -> image tensor or None.
        key: ``images`` (pixels) or ``image_features``.
        inputs_by_id: sample id -> a key that is equal for samples with the same encoder input
            (image and source); when the batch holds such repeats, ``net_input["duplicate_of"]``
            (B,) lets the encoder run once per distinct input.
    """
    if not batch or "id" not in batch:
        return batch
    ids = [int(i) for i in batch["id"]]
    stacked, mask = collate_images([images_by_id[i] for i in ids])
    if stacked is not None:
        batch["net_input"][key] = stacked
        batch["net_input"]["image_mask"] = mask
    if inputs_by_id is not None:
        dup = duplicate_index([inputs_by_id[i] for i in ids])
        if not torch.equal(dup, torch.arange(len(ids))):
            batch["net_input"]["duplicate_of"] = dup
    return batch

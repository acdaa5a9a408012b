"""What every unix task shares: image options, image loading, checks, evaluation batching.

:class:`ImageTaskMixin` loads images for any task (``unix_pretrain`` too). :class:`UnixImageTask`
is the base of the tasks on a text pair with an aligned image list (``unix_mmt``,
``unix_caption``, ``unix_vqa``): it loads a split (text pair + images, pixels or cached
features), puts the language tag in front of the sources, applies the image-required rule,
builds the model from the data, picks the beam-search stopping rule (``--beam-stop``) and
validates by generation (``--eval-metric``, :mod:`fairseq_plugins.tasks.validation`). A subclass
names its tag language, whether every sample needs an image, and hooks into loading
(:meth:`UnixImageTask.prepare_pair`, :meth:`UnixImageTask.finish_split`).
"""

import json
import logging
import os
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks.translation import TranslationConfig, TranslationTask, load_langpair_dataset

from fairseq_plugins.data.image_grouped_dataset import ImageGroupedDataset
from fairseq_plugins.data.input_grouped_dataset import InputGroupedDataset
from fairseq_plugins.data.image_pair_dataset import ImagePairDataset, ImageSource, load_image_source
from fairseq_plugins.data.random_order_dataset import RandomOrderDataset
from fairseq_plugins.generation.best_stop import generator_class
from fairseq_plugins.generation.ngram_block import fix_ngram_blocking
from fairseq_plugins.tasks.validation import UnixEvalConfig, ValidationMixin, meter_sum  # noqa: F401 (re-exported)
from unix.data.feature_cache import FeatureCache, check_feature_cache
from unix.data.images import ImageError, build_transform
from unix.data.tokenizer import check_lang_in_vocab
from unix.generation.beam_search import STOP_RULES, resolve_beam_stop

logger = logging.getLogger(__name__)


@dataclass
class UnixImageDataConfig:
    """Image options shared by every unix task."""

    image_root: Optional[str] = field(default=None, metadata={"help": "directory the image lists are relative to"})
    image_features: Optional[str] = field(default=None, metadata={
        "help": "feature cache directory (unix-build-features); used instead of pixels"})
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
    _train_transform = None
    # check a feature cache against the model's backbone and weights, and give a fine-tuned backbone
    # timm's train transform on the training split (unix_caption; off elsewhere, as before)
    backbone_checks = False

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

    def image_transform_getter(self, split: Optional[str] = None):
        """The pixel transform of ``split`` as a getter (set once the model is built)."""
        train = split is not None and split == getattr(self.cfg, "train_subset", None)

        def get():
            if train and self._train_transform is not None:
                return self._train_transform
            return self._image_transform

        get.is_getter = True
        return get

    def prepare_model_cfg(self, model_cfg) -> None:
        """Fill image settings of the model from the data (feature size), set the pixel transform.

        With :attr:`backbone_checks`: a feature cache must come from the model's backbone, weights
        and pooled stages, a fine-tuned backbone needs pixels, and gets timm's train transform on
        the training split.
        """
        backbone = getattr(model_cfg, "image_encoder", "") or ""
        finetune = not (getattr(model_cfg, "freeze_image_encoder", True)
                        and not getattr(model_cfg, "finetune_image_encoder", False))
        if self.backbone_checks and self.uses_images and self.cfg.image_features and backbone:
            if finetune:
                raise ValueError("a fine-tuned backbone needs pixels (--image-root without --image-features): "
                                 "cached features are computed once by a frozen backbone")
            self._feature_cache = check_feature_cache(self.cfg.image_features, backbone,
                                                      getattr(model_cfg, "image_weights", "") or "",
                                                      getattr(model_cfg, "image_pool_stages", "") or "")
        cache = self.feature_cache() if self.uses_images else None
        if cache is not None and cache.mean_pooled and getattr(model_cfg, "image_fusion", "") != "gated":
            raise ValueError(f"feature cache {cache.path} holds one mean-pooled vector per image (--mean-pool): "
                             "only --image-fusion gated reads it; give visual tokens a full cache")
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
            if self.backbone_checks and finetune:
                self._train_transform = build_transform(backbone, train=True)
                logger.info("fine-tuned backbone %s: timm's train transform for %s", backbone,
                            self.cfg.train_subset)

    def image_source(self, split: str, num_sentences: int) -> Optional[ImageSource]:
        if not self.uses_images:
            return None
        data_path = self.cfg.data.split(os.pathsep)[0]
        list_path = os.path.join(data_path, f"{split}.{self.cfg.image_list_suffix}")
        src = load_image_source(list_path, num_sentences, self.cfg.image_root, cache=self.feature_cache(),
                                transform=self.image_transform_getter(split), verify=not self.cfg.skip_image_check)
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


def check_nonempty(dataset, prefix: str, min_src: int = 1, allow_empty_source: bool = False) -> None:
    """Raise naming the first empty sentence (only ``</s>``, plus the language tag) of a split."""
    for side, sizes, min_len in (("source", dataset.src_sizes, min_src), ("target", dataset.tgt_sizes, 1)):
        if sizes is None or (side == "source" and allow_empty_source):
            continue
        empty = np.flatnonzero(np.asarray(sizes) <= min_len)
        if len(empty):
            raise ValueError(f"{prefix} ({side}): line {empty[0] + 1} is an empty sentence "
                             f"({len(empty)} empty in all); remove or fill them before binarizing")


def beam_stop_field(default: str):
    """``--beam-stop``, with the task's default rule."""
    return field(default=default, metadata={
        "help": "when beam search ends a sentence: 'fairseq' at its first `beam` finished hypotheses "
                "(fairseq's rule); 'best' keeps the `beam` best and goes on while a live hypothesis can "
                f"still beat the best (fairseq_plugins.generation.best_stop); default here: {default}"})


@dataclass
class UnixImageTaskConfig(TranslationConfig, UnixImageDataConfig, UnixEvalConfig):
    """Options of every :class:`UnixImageTask`: fairseq's translation options, the image options,
    ``--beam-stop`` and validation by generation (``--eval-metric``)."""

    beam_stop: ChoiceEnum(STOP_RULES) = beam_stop_field("fairseq")


class UnixImageTask(ImageTaskMixin, ValidationMixin, TranslationTask):
    """A text pair with an aligned image list (``<split>.<image-list-suffix>``, pixels or cached features).

    A subclass sets :attr:`image_required` (every sample needs an image; :attr:`sample_noun` and
    :attr:`missing_image` word its two errors, kept as the tests pin them), overrides :meth:`tag_lang` (the language whose tag goes in front of every source),
    the loading hooks :meth:`pair_options`, :meth:`prepare_pair`, :meth:`finish_split`, and sets
    the defaults of validation by generation (:class:`~fairseq_plugins.tasks.validation.ValidationMixin`).
    fairseq's own ``--eval-bleu`` is mapped onto ``--eval-metric bleu``.
    """

    task_name = "unix image task"  # for messages
    image_required = False  # every sample needs an image (one error for a missing one, see attach_images)
    sample_noun = "sample"  # what the image-required errors call a sample ("caption", "question")
    missing_image = "empty line, but every sample needs its image"  # after "<image list>:<line>: "
    beam_stop_default = "fairseq"  # the default of --beam-stop (the subclass's config field agrees)

    def __init__(self, cfg, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        lang = self.tag_lang()
        self.tag_idx = self.lang_tag_index(lang, src_dict) if lang else None
        self.eval_generator = None
        self.setup_validation(cfg)
        for flag, rule in (("best_beam_stop", "best"), ("fairseq_beam_stop", "fairseq")):
            if getattr(cfg, flag, False):
                logger.warning("--%s is deprecated and goes in the next release: use --beam-stop %s",
                               flag.replace("_", "-"), rule)
        self.beam_stop = resolve_beam_stop(getattr(cfg, "beam_stop", None), self.beam_stop_default,
                                           best_beam_stop=bool(getattr(cfg, "best_beam_stop", False)),
                                           fairseq_beam_stop=bool(getattr(cfg, "fairseq_beam_stop", False)))

    def tag_lang(self) -> Optional[str]:
        """The language whose tag is put in front of every source (``None``: no tag)."""
        return None

    def eval_generation_args(self) -> Optional[str]:
        """JSON generation options of validation-by-generation (``None``: validation does not generate)."""
        return self.eval_args if self.evaluators else None

    # -- data ------------------------------------------------------------------------------------
    def pair_options(self, split: str) -> dict:
        """Keyword arguments of fairseq's ``load_langpair_dataset`` that a subclass may change."""
        return dict(left_pad_target=self.cfg.left_pad_target, truncate_source=self.cfg.truncate_source,
                    shuffle=(split != "test"), prepend_bos_src=self.tag_idx)

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        """Load ``split``: the text pair (checked), then its images (see :meth:`attach_images`)."""
        if self.image_required and not self.uses_images and not self.cfg.no_images:
            raise ValueError(f"{self.task_name} needs an image for every {self.sample_noun}: give --image-root "
                             "(pixels) and/or --image-features (a feature cache), or --no-images for a "
                             "baseline without images")
        paths = self.cfg.data.split(os.pathsep)
        data_path = paths[(epoch - 1) % len(paths)] if split == self.cfg.train_subset else paths[0]
        src, tgt = self.cfg.source_lang, self.cfg.target_lang
        dataset = load_langpair_dataset(
            data_path, split, src, self.src_dict, tgt, self.tgt_dict, combine=combine,
            dataset_impl=self.cfg.dataset_impl, upsample_primary=self.cfg.upsample_primary,
            left_pad_source=self.cfg.left_pad_source, max_source_positions=self.cfg.max_source_positions,
            max_target_positions=self.cfg.max_target_positions, num_buckets=self.cfg.num_batch_buckets,
            pad_to_multiple=self.cfg.required_seq_len_multiple, **self.pair_options(split))
        prefix = os.path.join(data_path, f"{split}.{src}-{tgt}")
        check_nonempty(dataset, prefix, min_src=2 if self.tag_idx is not None else 1)
        dataset = self.prepare_pair(split, dataset, prefix)
        self.forget_split(split, dataset)
        self.datasets[split] = self.finish_split(split, dataset, self.attach_images(split, dataset))

    def prepare_pair(self, split: str, dataset, prefix: str):
        """Check or change the text pair of ``split`` (``prefix``: its binarized files); returns it."""
        return dataset

    def attach_images(self, split: str, dataset):
        """The pair with its images (as is without images); with :attr:`image_required`, every line
        of the image list must name one."""
        src = self.image_source(split, len(dataset))
        if src is None:
            return dataset
        missing = [i for i, p in enumerate(src.paths) if p is None] if self.image_required else []
        if missing:
            raise ImageError(f"{src.list_path}:{missing[0] + 1}: {self.missing_image} "
                             f"({len(missing)} lines without an image in all)")
        return ImagePairDataset(dataset, src)

    def finish_split(self, split: str, pair, dataset):
        """The dataset of ``split`` (``dataset``: ``pair`` with its images); by default ``dataset``."""
        return dataset

    # -- model and generation --------------------------------------------------------------------
    def build_model(self, cfg, from_checkpoint=False):
        """fairseq's model, with its image settings from the data, and the validation generator."""
        self.prepare_model_cfg(cfg)
        model = super(TranslationTask, self).build_model(cfg, from_checkpoint)  # not its --eval-bleu: ours
        args = self.eval_generation_args()
        if args is not None:
            self.eval_generator = self.build_generator([model], Namespace(**json.loads(args or "{}")))
        return model

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None,
                        prefix_allowed_tokens_fn=None):
        """fairseq's generator; plain beam search stops by :attr:`beam_stop` (``--beam-stop``)."""
        cls = generator_class(self.beam_stop == "best", args, seq_gen_cls, prefix_allowed_tokens_fn)
        return super().build_generator(models, args, cls, extra_gen_cls_kwargs, prefix_allowed_tokens_fn)

    # -- validation (TranslationTask's --eval-bleu is mapped onto --eval-metric bleu) ------------------
    def loss_sample(self, sample):
        """The sample whose validation loss is computed (by default ``sample``)."""
        return sample

    def valid_step(self, sample, model, criterion):
        loss, sample_size, logging_output = super(TranslationTask, self).valid_step(
            self.loss_sample(sample), model, criterion)
        if self.evaluators:
            logging_output.update(self.eval_statistics(sample, model))
        return loss, sample_size, logging_output

    def reduce_metrics(self, logging_outputs, criterion):
        super(TranslationTask, self).reduce_metrics(logging_outputs, criterion)
        self.reduce_eval_metrics(logging_outputs)

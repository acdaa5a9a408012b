"""Task ``unix_pretrain``: one ``fairseq-train`` run over several data streams and objectives.

Streams (``--streams``, see :mod:`unix.data.streams`) are directories of binarized data in the
formats of ``unix_caption`` (``tag-cap`` pairs + image lists) and ``unix_mmt`` (language pairs,
optional image lists), plus monolingual text for denoising, all with the one shared ``dict.txt``
of the task's data directory. Every batch comes from one stream, drawn with the stream ratios
(:class:`~fairseq_plugins.data.pretrain_dataset.StreamMixDataset`); the stream decides the
objectives the criterion ``unix_pretrain`` computes:

============  =============================================================================
caption        ``caption`` (image -> caption LM), ``itc`` (image-text contrastive), ``itm``;
               ``rc3`` instead of ``itc`` on a weakly-aligned caption stream (one whose
               directory has ``<split>.relevance``, see below)
translation    ``mt`` / ``mmt`` (translation, multimodal when the batch has images), ``xlc``
               (cross-lingual text-text contrastive)
denoise        ``denoise`` (BART text infilling -> original sentence)
============  =============================================================================

Each objective has a weight (``--itc-weight`` ...; 0 switches it off). Code-switching (M3P) of
the English captions the contrastive objectives embed is off unless ``--code-switch-prob > 0``;
its word lists come from ``--code-switch-lexicons`` or are induced from the parallel streams.

RC3 (``--rc3-weight > 0``, :mod:`unix.losses.rc3`): a caption stream whose directory holds
``<split>.relevance`` (one number in [0, 1] per sample, :mod:`unix.data.relevance`; written by
``unix-prepare-weak-captions``) is a stream of weakly-aligned pairs; its batches carry the
relevance and their image-text contrastive term becomes the relevance-regularized ``rc3`` loss.
With ``--rc3-weight 0`` the same batches get plain ``itc``: the two runs differ only in the loss.
"""

import glob
import inspect
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
from fairseq.data import LanguagePairDataset, data_utils
from fairseq.data.dictionary import Dictionary
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from fairseq.tasks.translation import load_langpair_dataset
from omegaconf import II

from fairseq_plugins.data.image_pair_dataset import ImagePairDataset, load_image_source
from fairseq_plugins.data.pretrain_dataset import DenoisingSourceDataset, PretrainStreamDataset, StreamMixDataset
from fairseq_plugins.tasks.base import ImageTaskMixin, UnixImageDataConfig, check_nonempty
from unix.data.code_switch import CodeSwitcher, induce_lexicon, load_lexicon
from unix.data.relevance import read_relevance, relevance_path
from unix.data.streams import (StreamError, check_parallel_langs, normalized_ratios, parallel_pairs,
                               parse_streams)
from unix.data.tokenizer import check_lang_in_vocab, is_lang_tag
from unix.losses import clamp_logit_scale_
from unix.losses.objectives import CONTRASTIVE_OBJECTIVES, OBJECTIVES_OF_KIND, SEQ_OBJECTIVES
from unix.metrics.references import SEP

logger = logging.getLogger(__name__)


@dataclass
class UnixPretrainConfig(FairseqDataclass, UnixImageDataConfig):
    data: Optional[str] = field(default=None, metadata={
        "help": "directory with the shared dict.txt; stream directories are relative to it"})
    streams: str = field(default="", metadata={
        "help": "comma-separated NAME:KIND:DIR:RATIO[:LANGS], KIND in caption, translation (LANGS=src-tgt), "
                "denoise (LANGS=lang); see unix/data/streams.py"})
    caption_weight: float = field(default=1.0, metadata={"help": "weight of captioning (0 = off)"})
    mt_weight: float = field(default=1.0, metadata={"help": "weight of text-only translation (0 = off)"})
    mmt_weight: float = field(default=1.0, metadata={"help": "weight of translation with images (0 = off)"})
    denoise_weight: float = field(default=1.0, metadata={"help": "weight of text denoising (0 = off)"})
    itc_weight: float = field(default=1.0, metadata={"help": "weight of image-text contrastive (0 = off)"})
    xlc_weight: float = field(default=1.0, metadata={"help": "weight of cross-lingual contrastive (0 = off)"})
    itm_weight: float = field(default=1.0, metadata={"help": "weight of image-text matching (0 = off)"})
    rc3_weight: float = field(default=0.0, metadata={
        "help": "weight of RC3's relevance-regularized image-text contrastive loss on weakly-aligned caption "
                "streams (those with <split>.relevance; they get plain itc when 0 = off)"})
    xlc_langs: Optional[str] = field(default=None, metadata={
        "help": "comma-separated languages aligned with en by the cross-lingual contrastive loss "
                "(default: every language paired with en in a translation stream)"})
    denoise_ratio: float = field(default=0.3, metadata={"help": "share of words masked for denoising"})
    denoise_poisson_lambda: float = field(default=3.0, metadata={"help": "mean masked span length"})
    code_switch_prob: float = field(default=0.0, metadata={
        "help": "M3P code-switching: probability to replace each English caption word with an entry (0 = off)"})
    code_switch_langs: Optional[str] = field(default=None, metadata={
        "help": "comma-separated languages to switch into (default: those paired with en)"})
    code_switch_lexicons: Optional[str] = field(default=None, metadata={
        "help": "comma-separated LANG=FILE word lists (en<TAB>word); default: induced from the parallel streams"})
    code_switch_max_pairs: int = field(default=50000, metadata={
        "help": "sentence pairs read per language to induce a word list"})
    spm_model: Optional[str] = field(default=None, metadata={
        "help": "sentencepiece model to re-encode code-switched captions (default: <data>/spm.model)"})
    max_source_positions: int = field(default=1024, metadata={"help": "longest source"})
    max_target_positions: int = field(default=1024, metadata={"help": "longest target"})
    left_pad_source: bool = field(default=True, metadata={"help": "pad the source on the left"})
    seed: int = II("common.seed")
    train_subset: str = II("dataset.train_subset")
    dataset_impl: Optional[str] = II("dataset.dataset_impl")


@register_task("unix_pretrain", dataclass=UnixPretrainConfig)
class UnixPretrainTask(ImageTaskMixin, FairseqTask):
    """Multi-stream, multi-objective pre-training (see the module docstring)."""

    def __init__(self, cfg, dictionary: Dictionary):
        super().__init__(cfg)
        if cfg.random_batches:
            raise StreamError("--random-batches does not apply to unix_pretrain: its batches are cut per "
                              "stream (one stream a batch, the same stream on every worker at a step)")
        if cfg.group_by_image:
            raise StreamError("--group-by-image does not apply to unix_pretrain: its batches are cut per stream")
        self.dictionary = dictionary
        self._tags: Dict[str, int] = {}
        self.streams = parse_streams(cfg.streams)
        for s in self.streams:
            if s.ratio == 0:
                logger.info("stream %s has ratio 0: not used for training", s.name)
        self.weights = {o: float(getattr(cfg, f"{o}_weight")) for o in SEQ_OBJECTIVES + CONTRASTIVE_OBJECTIVES
                        if o != "rc3"}
        self.weights["rc3"] = float(getattr(cfg, "rc3_weight", None) or 0.0)  # absent from older checkpoints
        for s in self.streams:
            if not any(self.weights[o] > 0 for o in OBJECTIVES_OF_KIND[s.kind]):
                raise StreamError(f"stream {s.name!r} ({s.kind}): every objective of it has weight 0 "
                                  f"({', '.join(OBJECTIVES_OF_KIND[s.kind])})")
            if s.kind == "caption" and not self.uses_images:
                raise StreamError(f"stream {s.name!r} is a caption stream: give --image-root (and "
                                  "optionally --image-features)")
        symbols = set(dictionary.symbols)
        for s in self.streams:
            for lang in (s.src, s.tgt):
                if lang is not None:
                    check_lang_in_vocab(lang, symbols, f"dictionary of {cfg.data}")
        if any(s.kind == "denoise" for s in self.streams) and "<mask>" not in dictionary.indices:
            raise StreamError(f"denoise streams need <mask> in the dictionary of {cfg.data}")
        paired = [b if a == "en" else a for a, b in parallel_pairs(self.streams) if "en" in (a, b)]
        self.xlc_streams = set()
        if self.weights["xlc"] > 0 and any(s.kind == "translation" for s in self.streams):
            langs = _split(cfg.xlc_langs) if cfg.xlc_langs else paired
            found = check_parallel_langs(langs, self.streams, "the cross-lingual contrastive objective (--xlc-langs)")
            self.xlc_streams = {s.name for s in self.streams if s.kind == "translation"
                                and {s.src, s.tgt} in [{"en", lang} for lang in found]}
        self.code_switch_langs = []
        if cfg.code_switch_prob > 0:
            self.code_switch_langs = _split(cfg.code_switch_langs) if cfg.code_switch_langs else paired
            if not cfg.code_switch_lexicons:
                check_parallel_langs(self.code_switch_langs, self.streams, "code-switching (word lists)")
            if not self.code_switch_langs:
                raise StreamError("--code-switch-prob > 0 but no language to switch into")
        self.code_switcher: Optional[CodeSwitcher] = None
        self.sep_idx = dictionary.index(SEP) if SEP in dictionary.indices else None

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        if not cfg.data:
            raise ValueError("give the data directory (with dict.txt) as the first argument")
        path = os.path.join(cfg.data, "dict.txt")
        if not os.path.exists(path):
            raise FileNotFoundError(f"shared dictionary not found: {path}")
        dictionary = cls.load_dictionary(path)
        logger.info("shared dictionary %s: %d types", path, len(dictionary))
        return cls(cfg, dictionary)

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary

    def max_positions(self):
        return self.cfg.max_source_positions, self.cfg.max_target_positions

    def stream_dir(self, spec) -> str:
        return spec.path if os.path.isabs(spec.path) else os.path.join(self.cfg.data, spec.path)

    def tag(self, lang: str) -> int:
        if lang not in self._tags:
            self._tags[lang] = self.dictionary.index(check_lang_in_vocab(lang, set(self.dictionary.symbols)))
        return self._tags[lang]

    # -- data ----------------------------------------------------------------------------------
    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        train = split == self.cfg.train_subset
        if train and self.cfg.code_switch_prob > 0 and self.code_switcher is None:
            self.code_switcher = self.build_code_switcher()
        streams = OrderedDict()
        for spec in self.streams:
            if train and spec.ratio == 0:
                continue
            ds = self.load_stream(spec, split, required=train)
            if ds is not None:
                streams[spec.name] = ds
        if not streams:
            raise FileNotFoundError(f"no stream has data for split {split!r}")
        if train and self.weights["rc3"] > 0 and not any(d.relevance is not None for d in streams.values()):
            raise StreamError(f"--rc3-weight > 0 but no caption stream has relevance ({split}.relevance beside "
                              "its data; see unix-prepare-weak-captions)")
        if train:
            ratios = normalized_ratios([s for s in self.streams if s.name in streams])
        else:
            ratios = normalized_ratios([s._replace(ratio=float(len(d))) for s, d in
                                        ((s, streams[s.name]) for s in self.streams if s.name in streams)])
        for (name, ds), r in zip(streams.items(), ratios):
            logger.info("%s: stream %s, %d samples, ratio %.3f", split, name, len(ds), r)
        self.datasets[split] = StreamMixDataset(streams, ratios, self.cfg.seed, resample=train)

    def _pair_prefix_exists(self, path, split, src, tgt) -> bool:
        return any(os.path.exists(os.path.join(path, f"{split}.{a}-{b}.{a}.idx")) for a, b in ((src, tgt), (tgt, src)))

    def load_stream(self, spec, split: str, required: bool) -> Optional[PretrainStreamDataset]:
        """One stream's split, or None when it has none and is not ``required``.

        Raises:
            StreamError: missing (when required) or empty data, missing image list.
        """
        path, d = self.stream_dir(spec), self.dictionary
        pad_opts = dict(left_pad_source=self.cfg.left_pad_source, left_pad_target=False,
                        max_source_positions=self.cfg.max_source_positions,
                        max_target_positions=self.cfg.max_target_positions)
        listeners = []
        if spec.kind == "denoise":
            prefix = os.path.join(path, f"{split}.{spec.src}-None.{spec.src}")
            if not os.path.exists(prefix + ".idx"):
                found = sorted(glob.glob(os.path.join(path, f"{split}.*-*.{spec.src}.idx")))
                prefix = found[0][: -len(".idx")] if found else None
            mono = data_utils.load_indexed_dataset(prefix, d, self.cfg.dataset_impl) if prefix else None
            if mono is None:
                return self._missing(spec, split, path, required)
            src = DenoisingSourceDataset(mono, self.tag(spec.src), d.index("<mask>"),
                                         [d.bos(), d.eos(), d.pad(), d.unk()] +
                                         [i for i, s in enumerate(d.symbols) if is_lang_tag(s)],
                                         self.cfg.denoise_ratio, self.cfg.denoise_poisson_lambda, self.cfg.seed)
            listeners.append(src)
            pair = LanguagePairDataset(src, src.sizes, d, mono, mono.sizes, d, shuffle=False,
                                       left_pad_source=self.cfg.left_pad_source, left_pad_target=False)
        else:
            src_l, tgt_l = ("tag", "cap") if spec.kind == "caption" else (spec.src, spec.tgt)
            if not self._pair_prefix_exists(path, split, src_l, tgt_l):
                return self._missing(spec, split, path, required)
            pair = load_langpair_dataset(
                path, split, src_l, d, tgt_l, d, combine=False, dataset_impl=self.cfg.dataset_impl,
                upsample_primary=1, shuffle=False,
                prepend_bos_src=self.tag(spec.tgt) if spec.kind == "translation" else None, **pad_opts)
        if len(pair) == 0:
            raise StreamError(f"stream {spec.name!r}: split {split} in {path} has no data")
        if spec.kind != "denoise":
            check_nonempty(pair, os.path.join(path, split), min_src=2 if spec.kind == "translation" else 1)
        list_path = os.path.join(path, f"{split}.{self.cfg.image_list_suffix}")
        if spec.kind != "denoise" and self.uses_images and (spec.kind == "caption" or os.path.exists(list_path)):
            pair = ImagePairDataset(pair, load_image_source(
                list_path, len(pair), self.cfg.image_root, cache=self.feature_cache(),
                transform=self.image_transform_getter(),
                verify=not getattr(self.cfg, "skip_image_check", not getattr(self.cfg, "verify_images", False))))
        if spec.kind == "translation":
            return PretrainStreamDataset(pair, spec.name, spec.kind, d.pad(), self.tag(spec.src), self.tag(spec.tgt))
        text_fn = self.caption_text if spec.kind == "caption" else None
        relevance = None
        if spec.kind == "caption" and os.path.exists(relevance_path(path, split)):
            relevance = read_relevance(relevance_path(path, split), len(pair))
            logger.info("stream %s: weakly-aligned (%s), mean relevance %.3f", spec.name,
                        relevance_path(path, split), sum(relevance) / len(relevance))
        return PretrainStreamDataset(pair, spec.name, spec.kind, d.pad(), text_fn=text_fn, epoch_listeners=listeners,
                                     relevance=relevance)

    @staticmethod
    def _missing(spec, split, path, required):
        if required:
            raise StreamError(f"stream {spec.name!r} ({spec.kind}): no {split} data in {path}")
        logger.info("stream %s has no %s split in %s: left out of it", spec.name, split, path)
        return None

    def caption_text(self, item, index: int, epoch: int) -> torch.Tensor:
        """Tag + caption of a caption sample (first reference; code-switched when enabled): (T,)."""
        tag, target = item["source"][0], item["target"]
        if self.sep_idx is not None and (target == self.sep_idx).any():
            cut = int((target == self.sep_idx).nonzero()[0])
            target = torch.cat([target[:cut], target.new_tensor([self.dictionary.eos()])])
            item["target"] = target
        cs = self.code_switcher
        if cs is not None and int(tag) == self.tag("en"):
            text = self.dictionary.string(target, "sentencepiece")
            switched = cs(text, key=(epoch, index))
            if switched != text:
                target = self.dictionary.encode_line(self._spm.encode_line(switched), add_if_not_exist=False,
                                                     append_eos=True).long()
        return torch.cat([target.new_tensor([int(tag)]), target])

    def build_code_switcher(self) -> CodeSwitcher:
        """Word lists en -> each of ``code_switch_langs``, from files or the parallel streams."""
        from unix.data.tokenizer import SpmTokenizer

        self._spm = SpmTokenizer(self.cfg.spm_model or os.path.join(self.cfg.data, "spm.model"))
        if self.cfg.code_switch_lexicons:
            files = dict(kv.split("=", 1) for kv in _split(self.cfg.code_switch_lexicons))
            lexicons = {lang: load_lexicon(files[lang]) for lang in self.code_switch_langs if lang in files}
        else:
            lexicons = {}
            for lang, spec in check_parallel_langs(self.code_switch_langs, self.streams, "code-switching").items():
                pair = load_langpair_dataset(self.stream_dir(spec), self.cfg.train_subset, spec.src, self.dictionary,
                                             spec.tgt, self.dictionary, combine=False,
                                             dataset_impl=self.cfg.dataset_impl, upsample_primary=1,
                                             left_pad_source=False, left_pad_target=False,
                                             max_source_positions=10 ** 6, max_target_positions=10 ** 6)
                n = min(len(pair), self.cfg.code_switch_max_pairs)
                side = {spec.src: pair.src, spec.tgt: pair.tgt}
                en = [self.dictionary.string(side["en"][i], "sentencepiece") for i in range(n)]
                xx = [self.dictionary.string(side[lang][i], "sentencepiece") for i in range(n)]
                lexicons[lang] = induce_lexicon(en, xx)
        for lang, lex in lexicons.items():
            logger.info("code-switching en -> %s: %d word-list entries", lang, len(lex))
        return CodeSwitcher(lexicons, prob=self.cfg.code_switch_prob, seed=self.cfg.seed)

    # -- model and training --------------------------------------------------------------------
    def uses_objective(self, name: str) -> bool:
        return self.weights[name] > 0 and any(name in OBJECTIVES_OF_KIND[s.kind] for s in self.streams)

    def build_model(self, cfg, from_checkpoint=False):
        self.prepare_model_cfg(cfg)
        contrastive = [o for o in ("itc", "itm", "rc3") if self.uses_objective(o)]
        contrastive += ["xlc"] if self.xlc_streams else []
        if contrastive and not getattr(cfg, "embed_proj_dim", 0):
            raise ValueError(f"objectives {', '.join(contrastive)} need pooled embeddings: set --embed-proj-dim "
                             f"(e.g. 256), or switch them off with --{contrastive[0]}-weight 0")
        if self.uses_objective("itm"):
            cfg.itm_head = True
        return super().build_model(cfg, from_checkpoint)

    def optimizer_step(self, optimizer, model, update_num):
        super().optimizer_step(optimizer, model, update_num)
        scale = getattr(model, "logit_scale", None)
        if scale is not None:
            clamp_logit_scale_(scale)
            for master in fp32_master_views(optimizer, scale):  # --fp16/--bf16 keep an fp32 copy
                clamp_logit_scale_(master)

    def get_batch_iterator(self, dataset, *args, **kwargs):
        """fairseq's iterator; over a stream mix, all data-parallel ranks take a batch of the same stream
        at every step (the contrastive objectives gather across ranks, the others do not).

        The mix lays its batches out in groups of ``num_shards`` of one stream; fairseq's epoch
        shuffle must then move whole groups (its ``grouped_shuffling``), or ranks would see
        different streams at the same step and wait for each other forever.
        """
        if not isinstance(dataset, StreamMixDataset):
            return super().get_batch_iterator(dataset, *args, **kwargs)
        bound = inspect.signature(FairseqTask.get_batch_iterator).bind(self, dataset, *args, **kwargs)
        bound.apply_defaults()
        dataset.num_shards = int(bound.arguments["num_shards"])
        if dataset.num_shards > 1:
            bound.arguments["grouped_shuffling"] = True
        arguments = dict(bound.arguments)
        del arguments["self"]
        return super().get_batch_iterator(**arguments)


def fp32_master_views(optimizer, param: torch.Tensor) -> List[torch.Tensor]:
    """The fp32 master copy of ``param`` kept by fairseq's ``FP16Optimizer`` (``--fp16``,
    ``--bf16``), as views that can be changed in place; ``[]`` for other optimizers.

    ``FP16Optimizer`` steps on the master copy and copies it back into the half-precision model
    after every update, so a parameter changed only on the model is overwritten at the next step.
    The flat master holds the parameters of each device in ``fp16_params`` order.
    """
    fp16_params = getattr(optimizer, "fp16_params", None)
    fp32_params = getattr(optimizer, "fp32_params", None)
    if fp16_params is None or fp32_params is None:
        return []
    if not getattr(optimizer, "has_flat_params", False):
        return [p32.data for p, p32 in zip(fp16_params, fp32_params) if p is param]
    offsets: Dict[object, int] = {}
    for p in fp16_params:
        device = p.device.index
        offset = offsets.get(device, 0)
        if p is param and device in fp32_params:
            return [fp32_params[device].data[offset:offset + p.numel()].view_as(p)]
        offsets[device] = offset + p.numel()
    return []


def _split(text: Optional[str]):
    return [t.strip() for t in (text or "").split(",") if t.strip()]

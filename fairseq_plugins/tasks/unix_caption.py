"""Task ``unix_caption``: image -> caption in the language named by a target-language tag.

Data (``scripts/prepare_captions.py``): a ``tag-cap`` pair binarized with the one shared
``dict.txt``. The source of a sample is only its language tag (``__de__``), so one model captions
in every language of the vocabulary; the target is the caption. Training splits have one sample
per (photo, caption); evaluation splits (``valid_en``, ``test_de``, ...) one sample per photo
whose target holds all its references joined by ``<sep>``. Every split has an image list
``<split>.images.txt`` (one photo per sample, no empty line), read as pixels (``--image-root``)
or as cached backbone features (``--image-features``; checked against the model's backbone).

Validation: the loss is computed on the first reference of each photo; with ``--eval-cider`` the
model also generates one caption per photo and logs ``cider`` (corpus CIDEr-D x100, pycocoevalcap)
and ``bleu4`` (corpus BLEU-4 x100, pycocoevalcap, from n-gram statistics summed over batches),
either usable as ``--best-checkpoint-metric cider --maximize-best-checkpoint-metric``; with
``--eval-meteor`` also ``meteor`` (corpus METEOR 1.5 x100 of the English photos, pycocoevalcap's,
from METEOR statistics summed over batches; one METEOR process is kept open).
"""

import json
import logging
import os
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from fairseq import metrics
from fairseq.data import BaseWrapperDataset
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask, load_langpair_dataset

from fairseq_plugins.generation.best_stop import generator_class
from fairseq_plugins.tasks.base import ImageTaskMixin, UnixImageDataConfig, check_nonempty, meter_sum
from unix.data.captions import first_reference, group_references, lang_of_source
from unix.data.feature_cache import FeatureCache, cache_key
from unix.data.images import ImageError, build_transform
from unix.data.tokenizer import is_lang_tag
from unix.generation.mbr import UTILITIES, mbr_order, words
from unix.metrics.caption import (CorpusCiderD, bleu_statistic_names, bleu_statistics, corpus_bleu, ptb_tokenize,
                                  ptb_tokenize_groups)
from unix.metrics.meteor import MeteorStatistics
from unix.metrics.references import SEP, split_references

logger = logging.getLogger(__name__)

# the corpus-BLEU statistics that validation sums over batches (unix.metrics.caption.bleu_statistics, n=4)
BLEU_STATS = bleu_statistic_names(4)

SRC, TGT = "tag", "cap"  # file suffixes of the binarized pair: <split>.tag-cap.{tag,cap}
SPLIT_KEY = "unix_split"  # batch key naming the split a batch comes from (CIDEr needs its references)
METEOR_KEY = "_meteor_"  # logging keys of the summed METEOR statistics: _meteor_n (photos), _meteor_0, ...


@dataclass
class UnixCaptionConfig(TranslationConfig, UnixImageDataConfig):
    caption_lang: Optional[str] = field(default=None, metadata={
        "help": "caption every photo in this language, replacing the tags of the data (e.g. to caption "
                "the test photos in fr); scores against the split's own references are then meaningless "
                "unless the split is in this language"})
    eval_cider: bool = field(default=False, metadata={
        "help": "generate on the validation sets and log 'cider' (CIDEr-D x100 against all references)"})
    eval_cider_args: str = field(default='{"beam": 1, "max_len_a": 0, "max_len_b": 40}', metadata={
        "help": "generation args for --eval-cider, as JSON"})
    best_beam_stop: bool = field(default=False, metadata={
        "help": "beam search keeps the `beam` best finished captions and ends a photo's search only when "
                "no live hypothesis can beat the best (fairseq_plugins.generation.best_stop, the default of "
                "unix_vqa); default: fairseq's rule (the first `beam` finished captions)"})
    group_by_photo: bool = field(default=False, metadata={
        "help": "training batches hold the captions of a photo in a language together, and the encoder "
                "runs once per (photo, language) of a batch instead of once per caption (they then share "
                "encoder dropout; with pixels, a photo is decoded once and its captions share its crop); "
                "pays with pixels, not with --image-features (examples/captioning); not for --criterion "
                "unix_scst, whose batches should be distinct photos"})
    eval_meteor: bool = field(default=False, metadata={
        "help": "with --eval-cider: also log 'meteor' (corpus METEOR x100 of the English validation photos; "
                "pycocoevalcap's METEOR 1.5 is English-only; needs java)"})
    mbr_utility: Optional[str] = field(default=None, metadata={
        "help": "rerank the beam's candidates of each photo by minimum Bayes risk: the caption of highest "
                "expected utility ('bleu' or 'cider', unix.generation.mbr) against all candidates, weighted "
                "by softmax(--mbr-alpha x log-probability); the candidates are the --beam finished "
                "hypotheses (default: off, fairseq's order)"})
    mbr_alpha: float = field(default=1.0, metadata={
        "help": "with --mbr-utility: scale of the candidates' log-probabilities in the evidence weights "
                "(0: every candidate counts the same)"})
    mbr_weights: ChoiceEnum(["logprob", "score"]) = field(default="logprob", metadata={
        "help": "with --mbr-utility: what --mbr-alpha scales, the candidate's total log-probability or "
                "beam search's length-normalised score"})
    eval_cider_print_samples: bool = field(default=False, metadata={
        "help": "log one generated caption and its references per validation batch"})


def check_feature_cache(path: str, backbone: str, weights: str, pool_stages: str = "") -> FeatureCache:
    """Open a feature cache, refusing it unless computed by ``backbone`` with ``weights`` (and stages).

    Raises:
        StaleCacheError: if the cache's backbone, weights fingerprint or transform differ.
    """
    from unix.models.image_encoder import parse_stages
    from unix.models.pretrained import resolve_weights

    resolved = resolve_weights(backbone, weights) if weights else ""
    if not resolved:
        logger.warning("the model's backbone %s is randomly initialised: cached features can only be checked "
                       "for backbone name and transform", backbone)
    return FeatureCache(path, expected_key=cache_key(backbone, resolved, build_transform(backbone, train=False),
                                                     parse_stages(pool_stages)))


def photo_language_groups(paths: List[str], sources) -> np.ndarray:
    """(N,) ids, equal for samples with the same photo and language tag (the same encoder input)."""
    keys = [(p, int(sources[i][0])) for i, p in enumerate(paths)]
    ids: Dict[Tuple[str, int], int] = {}
    return np.array([ids.setdefault(k, len(ids)) for k in keys], dtype=np.int64)


class _SplitTaggedDataset(BaseWrapperDataset):
    """Adds the split name to every batch (``batch["unix_split"]``)."""

    def __init__(self, dataset, split: str):
        super().__init__(dataset)
        self.split = split

    def collater(self, samples):
        batch = self.dataset.collater(samples)
        if batch:
            batch[SPLIT_KEY] = self.split
        return batch


class _TagOverrideDataset(BaseWrapperDataset):
    """Source dataset whose first token (the language tag) is replaced by ``tag``."""

    def __init__(self, dataset, tag: int):
        super().__init__(dataset)
        self.tag = tag

    def __getitem__(self, index):
        item = self.dataset[index].clone()
        item[0] = self.tag
        return item


@register_task("unix_caption", dataclass=UnixCaptionConfig)
class UnixCaptionTask(ImageTaskMixin, TranslationTask):
    """Multilingual image captioning (image + language tag -> caption)."""

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        if cfg.source_lang is None and cfg.target_lang is None:
            cfg.source_lang, cfg.target_lang = SRC, TGT
        return super().setup_task(cfg, **kwargs)

    def __init__(self, cfg, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.lang_tag_ids = {i for i, s in enumerate(src_dict.symbols) if is_lang_tag(s)}
        self.caption_lang_idx = None
        if cfg.caption_lang:
            self.caption_lang_idx = self.lang_tag_index(cfg.caption_lang, src_dict)
        self.sep_idx = tgt_dict.index(SEP) if SEP in tgt_dict.indices else None
        if cfg.eval_cider and self.sep_idx is None:
            raise ValueError(f"--eval-cider needs the reference separator {SEP} in the dictionary of {cfg.data}")
        if cfg.mbr_utility is not None and cfg.mbr_utility not in UTILITIES:
            raise ValueError(f"--mbr-utility {cfg.mbr_utility!r}: choose from {', '.join(UTILITIES)}")
        if cfg.eval_meteor and not cfg.eval_cider:
            raise ValueError("--eval-meteor needs --eval-cider (it scores the captions --eval-cider generates)")
        self._meteor: Optional[MeteorStatistics] = None
        self._pairs: Dict[str, object] = {}
        self._cider: Dict[str, Tuple[CorpusCiderD, List[List[str]]]] = {}
        self._train_transform = None
        self._loading_split: Optional[str] = None
        self.train_input_groups: Optional[np.ndarray] = None  # (N,) with --group-by-photo
        self.cider_generator = None

    # -- images ----------------------------------------------------------------------------------
    def prepare_model_cfg(self, model_cfg) -> None:
        """Check cached features against the model's backbone; pick the train transform when fine-tuning."""
        backbone = getattr(model_cfg, "image_encoder", "") or ""
        freeze = (getattr(model_cfg, "freeze_image_encoder", True)
                  and not getattr(model_cfg, "finetune_image_encoder", False))
        if self.uses_images and self.cfg.image_features and backbone:
            if not freeze:
                raise ValueError("a fine-tuned backbone needs pixels (--image-root without --image-features): "
                                 "cached features are computed once by a frozen backbone")
            self._feature_cache = check_feature_cache(self.cfg.image_features, backbone,
                                                      getattr(model_cfg, "image_weights", "") or "",
                                                      getattr(model_cfg, "image_pool_stages", "") or "")
        super().prepare_model_cfg(model_cfg)
        if self.uses_images and not self.cfg.image_features and backbone and not freeze:
            self._train_transform = build_transform(backbone, train=True)
            logger.info("fine-tuned backbone %s: timm's train transform for %s", backbone, self.cfg.train_subset)

    def image_source(self, split: str, num_sentences: int):
        self._loading_split = split
        try:
            return super().image_source(split, num_sentences)
        finally:
            self._loading_split = None

    def image_transform_getter(self):
        train = self._loading_split == self.cfg.train_subset

        def get():
            if train and self._train_transform is not None:
                return self._train_transform
            return self._image_transform

        get.is_getter = True
        return get

    # -- data ------------------------------------------------------------------------------------
    def check_sources(self, dataset, path: str) -> None:
        """Every source must be exactly one language tag of the dictionary (then ``</s>``)."""
        sizes = np.asarray(dataset.src_sizes)
        bad = np.flatnonzero(sizes != 2)
        if len(bad):
            raise ValueError(f"{path}: line {bad[0] + 1}: the source must be one language tag (e.g. __en__), "
                             f"got {sizes[bad[0]] - 1} tokens ({len(bad)} such lines)")
        known = ", ".join(sorted(self.src_dict[i][2:-2] for i in self.lang_tag_ids)) or "none"
        for i in range(len(dataset.src)):
            tok = int(dataset.src[i][0])
            if tok not in self.lang_tag_ids:
                raise ValueError(f"{path}: line {i + 1}: source {self.src_dict[tok]!r} is not a language tag "
                                 f"of the dictionary (languages known: {known}); a tag missing from the "
                                 "vocabulary is binarized as <unk>")

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        if not self.uses_images and not self.cfg.no_images:
            raise ValueError("unix_caption needs images: --image-root (pixels) and/or --image-features "
                             "(cached features); --no-images only for a blind baseline")
        paths = self.cfg.data.split(os.pathsep)
        data_path = paths[(epoch - 1) % len(paths)] if split == self.cfg.train_subset else paths[0]
        src, tgt = self.cfg.source_lang, self.cfg.target_lang
        dataset = load_langpair_dataset(
            data_path, split, src, self.src_dict, tgt, self.tgt_dict, combine=combine,
            dataset_impl=self.cfg.dataset_impl, upsample_primary=self.cfg.upsample_primary,
            left_pad_source=self.cfg.left_pad_source, left_pad_target=False,
            max_source_positions=self.cfg.max_source_positions, max_target_positions=self.cfg.max_target_positions,
            num_buckets=self.cfg.num_batch_buckets, shuffle=not split.startswith("test"),
            pad_to_multiple=self.cfg.required_seq_len_multiple,
        )
        prefix = os.path.join(data_path, f"{split}.{src}-{tgt}")
        check_nonempty(dataset, prefix)
        self.check_sources(dataset, f"{prefix}.{src}")
        if self.caption_lang_idx is not None:
            own = {int(dataset.src[i][0]) for i in range(min(len(dataset), 1000))}
            if own != {self.caption_lang_idx} and dataset.tgt is not None:
                logger.warning("%s: captioning in %s, but the targets are in %s: scores against them are "
                               "meaningless", split, self.cfg.caption_lang,
                               ", ".join(sorted(self.src_dict[t] for t in own)))
            dataset.src = _TagOverrideDataset(dataset.src, self.caption_lang_idx)
        self._pairs[split] = dataset
        self._cider.pop(split, None)
        wrapped = self.wrap_with_images(split, dataset)
        if wrapped is not dataset:
            missing = [i for i, p in enumerate(wrapped.images.paths) if p is None]
            if missing:
                raise ImageError(f"{wrapped.images.list_path}:{missing[0] + 1}: empty line, but every caption "
                                 f"needs its photo ({len(missing)} lines without one)")
            if self.cfg.group_by_photo and split == self.cfg.train_subset:
                self.train_input_groups = photo_language_groups(wrapped.images.paths, dataset.src)
                wrapped.set_input_groups(self.train_input_groups)
                logger.info("%s: --group-by-photo: %d captions of %d (photo, language) inputs", split,
                            len(dataset), self.train_input_groups.max() + 1)
        self.datasets[split] = _SplitTaggedDataset(wrapped, split)

    # -- model and validation ----------------------------------------------------------------------
    def build_model(self, cfg, from_checkpoint=False):
        self.prepare_model_cfg(cfg)
        model = super().build_model(cfg, from_checkpoint)
        if self.cfg.eval_cider:
            self.cider_generator = self.build_generator([model], Namespace(**json.loads(self.cfg.eval_cider_args)))
        return model

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None,
                        prefix_allowed_tokens_fn=None):
        """fairseq's generator; with ``--best-beam-stop``, plain beam search stops as in unix_vqa."""
        cls = generator_class(self.cfg.best_beam_stop, args, seq_gen_cls, prefix_allowed_tokens_fn)
        return super().build_generator(models, args, cls, extra_gen_cls_kwargs, prefix_allowed_tokens_fn)

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        """fairseq's inference step; with ``--mbr-utility``, each photo's hypotheses are reranked by MBR."""
        hypos = super().inference_step(generator, models, sample, prefix_tokens=prefix_tokens,
                                       constraints=constraints)
        if self.cfg.mbr_utility is None:
            return hypos
        return [self.mbr_rerank(h) for h in hypos]

    def mbr_rerank(self, hypos: List[Dict]) -> List[Dict]:
        """One photo's hypotheses (fairseq's dicts) in MBR order (:func:`unix.generation.mbr.mbr_order`).

        Captions are compared as words of the detokenized text (what fairseq-generate prints);
        the evidence weights use each hypothesis' total log-probability (sum of its positional
        scores, i.e. of the ensemble's averaged log-probabilities; nats), or with
        ``--mbr-weights score`` beam search's length-normalised score.
        """
        if len(hypos) < 2:
            return hypos
        cands = [words(self.tgt_dict.string(h["tokens"].int().cpu(), "sentencepiece")) for h in hypos]
        if self.cfg.mbr_weights == "score":
            logprobs = [float(h["score"]) for h in hypos]
        else:
            logprobs = [float(h["positional_scores"].float().sum()) for h in hypos]
        order, _ = mbr_order(cands, logprobs, self.cfg.mbr_utility, self.cfg.mbr_alpha)
        return [hypos[i] for i in order]

    def first_reference_sample(self, sample):
        """The sample with multi-reference targets cut to their first reference (for the loss)."""
        if self.sep_idx is None or sample.get("target") is None or not sample["target"].eq(self.sep_idx).any():
            return sample
        target, prev = first_reference(sample["target"], self.sep_idx, self.tgt_dict.eos(), self.tgt_dict.pad())
        out = dict(sample)
        out["net_input"] = dict(sample["net_input"], prev_output_tokens=prev)
        out["target"] = target
        out["ntokens"] = int(target.ne(self.tgt_dict.pad()).sum())
        return out

    def corpus_cider(self, split: str) -> Tuple[CorpusCiderD, List[List[str]]]:
        """CIDEr-D with the document frequencies of all references of ``split`` (computed once).

        The references of a sample are those of every sample with the same photo and language
        tag: the sample's own on an evaluation split (all references in one target), all the
        photo's captions in that language on a training split (one caption per sample; used by
        the ``unix_scst`` criterion). Returns the scorer and the tokenized references per sample.
        """
        if split not in self._cider:
            pair = self._pairs[split]
            refs = [split_references(self.tgt_dict.string(pair.tgt[i], "sentencepiece", escape_unk=True))
                    for i in range(len(pair))]
            empty = [i for i, r in enumerate(refs) if not r]
            if empty:
                raise ValueError(f"{split}: sample {empty[0]} (line {empty[0] + 1}) has no reference")
            images = getattr(self.datasets[split].dataset, "images", None)  # None: --no-images
            photos = images.paths if images is not None else None
            keys = [(photos[i] if photos is not None else i, int(pair.src[i][0])) for i in range(len(pair))]
            group_of, groups = group_references(keys, refs)
            tok = ptb_tokenize_groups(groups)
            self._cider[split] = (CorpusCiderD(tok), [tok[g] for g in group_of])
            logger.info("%s: CIDEr-D document frequencies from %d photo-language pairs, %.2f references each",
                        split, len(tok), sum(map(len, tok)) / max(len(tok), 1))
        return self._cider[split]

    def caption_langs(self, split: str, ids: List[int]) -> List[str]:
        """Language code of the tag of every sample ``ids`` of ``split`` (``"en"`` for ``__en__``)."""
        pair = self._pairs[split]
        return [lang_of_source(self.src_dict[int(pair.src[i][0])]) for i in ids]

    def cider_of_batch(self, sample, model) -> Dict[str, float]:
        """Generate one caption per photo of a validation batch and score it against all its references.

        Returns:
            logging entries: ``_cider_sum`` (sum of per-photo CIDEr-D), ``_cider_n`` (photos) and
            ``_bleu_<stat>`` (the batch's corpus-BLEU statistics, summed over its photos).
        """
        split = sample.get(SPLIT_KEY)
        if split is None or split not in self._pairs:
            raise RuntimeError("--eval-cider: batch without a known split (was it loaded by unix_caption?)")
        cider, refs_tok = self.corpus_cider(split)
        gen_out = self.inference_step(self.cider_generator, [model], sample, prefix_tokens=None)
        # decoded as fairseq-generate --post-process sentencepiece does, so both give the same CIDEr-D
        hyps = [self.tgt_dict.string(g[0]["tokens"].int().cpu(), "sentencepiece") for g in gen_out]
        ids = sample["id"].tolist()
        hyps_tok, refs = ptb_tokenize(hyps), [refs_tok[i] for i in ids]
        scores = cider.image_scores(hyps_tok, refs)
        if self.cfg.eval_cider_print_samples and hyps:
            logger.info("%s example: %r | references: %r", split, hyps[0], refs_tok[ids[0]])
        out = {"_cider_sum": float(scores.sum()), "_cider_n": len(ids)}
        bleu = bleu_statistics(hyps_tok, refs).sum(axis=0)  # (10,), zeros for an empty batch
        out.update({f"_bleu_{name}": float(v) for name, v in zip(BLEU_STATS, bleu)})
        if self.cfg.eval_meteor:
            out.update(self.meteor_statistics(split, ids, hyps_tok, refs))
        return out

    def meteor_scorer(self) -> MeteorStatistics:
        if self._meteor is None:
            self._meteor = MeteorStatistics()
        return self._meteor

    def meteor_statistics(self, split: str, ids: List[int], hyps_tok: List[str],
                          refs_tok: List[List[str]]) -> Dict[str, float]:
        """Summed METEOR statistics of the English photos of a batch (zeros, ``n`` 0, when it has none)."""
        english = [k for k, lang in enumerate(self.caption_langs(split, ids)) if lang == "en"]
        meteor = self.meteor_scorer()
        if not english:  # the same keys as an English batch: distributed workers sum them key by key
            out = {f"{METEOR_KEY}{j}": 0.0 for j in range(meteor.num_statistics())}
            out[f"{METEOR_KEY}n"] = 0
            return out
        stats = meteor.statistics([hyps_tok[k] for k in english], [refs_tok[k] for k in english])
        meteor.check_summed(stats)  # one more request per batch: the sums are what the jar would aggregate
        summed = meteor.summed(stats)
        out = {f"{METEOR_KEY}{j}": float(v) for j, v in enumerate(summed)}
        out[f"{METEOR_KEY}n"] = len(english)
        return out

    def valid_step(self, sample, model, criterion):
        loss, sample_size, logging_output = super().valid_step(self.first_reference_sample(sample), model, criterion)
        if self.cfg.eval_cider:
            logging_output.update(self.cider_of_batch(sample, model))
        return loss, sample_size, logging_output

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        if not self.cfg.eval_cider:
            return
        n = sum(log.get("_cider_n", 0) for log in logging_outputs)
        if n > 0:  # validation batches only
            for key in ["_cider_sum", "_cider_n"] + [f"_bleu_{name}" for name in BLEU_STATS]:
                metrics.log_scalar_sum(key, sum(log.get(key, 0) for log in logging_outputs))

            def cider(meters):
                return round(100.0 * meter_sum(meters, "_cider_sum") / max(meter_sum(meters, "_cider_n"), 1), 2)

            def bleu4(meters):
                stats = np.array([meter_sum(meters, f"_bleu_{name}") for name in BLEU_STATS], dtype=np.float64)
                return round(100.0 * corpus_bleu(stats, n=4)[3], 2)

            metrics.log_derived("cider", cider)
            metrics.log_derived("bleu4", bleu4)
        if sum(log.get(f"{METEOR_KEY}n", 0) for log in logging_outputs) > 0:
            columns = sorted({int(k[len(METEOR_KEY):]) for log in logging_outputs for k in log
                              if k.startswith(METEOR_KEY) and k[len(METEOR_KEY):].isdigit()})
            keys = [f"{METEOR_KEY}{j}" for j in columns]
            for key in keys:
                metrics.log_scalar_sum(key, sum(log.get(key, 0) for log in logging_outputs))

            def meteor(meters):
                summed = np.array([meter_sum(meters, key) for key in keys], dtype=np.float64)
                return round(100.0 * float(self.meteor_scorer().scores(summed)[0]), 2)

            metrics.log_derived("meteor", meteor)

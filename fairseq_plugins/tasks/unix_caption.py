"""Task ``unix_caption``: image -> caption in the language named by a target-language tag.

Data (``unix-prepare-captions``): a ``tag-cap`` pair binarized with the one shared
``dict.txt``. The source of a sample is only its language tag (``__de__``), so one model captions
in every language of the vocabulary; the target is the caption. Training splits have one sample
per (photo, caption); evaluation splits (``valid_en``, ``test_de``, ...) one sample per photo
whose target holds all its references joined by ``<sep>``. Every split has an image list
``<split>.images.txt`` (one photo per sample, no empty line), read as pixels (``--image-root``)
or as cached backbone features (``--image-features``; checked against the model's backbone).

Validation: the loss is computed on the first reference of each photo; with ``--eval-metric
cider,bleu4`` the model also generates one caption per photo (greedy, at most 40 tokens, unless
``--eval-args``) and logs ``cider`` (corpus CIDEr-D x100, pycocoevalcap, document frequencies of
the split) and ``bleu4`` (corpus BLEU-4 x100, pycocoevalcap), against all references of the photo
in its language, either usable as ``--best-checkpoint-metric cider --maximize-best-checkpoint-metric``;
``meteor`` adds corpus METEOR 1.5 x100 of the English photos (one METEOR process kept open).
Scores come from statistics summed over batches (:mod:`unix.metrics.evaluators`); the deprecated
``--eval-cider`` (``--eval-meteor``) means ``--eval-metric cider,bleu4`` (``,meteor``). Loading,
images, the model, ``--beam-stop`` and validation are :class:`~fairseq_plugins.tasks.base.UnixImageTask`'s.
"""

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task

from fairseq_plugins.data.tagged_dataset import SplitTaggedDataset, TagOverrideDataset
from fairseq_plugins.tasks.base import UnixImageTask, UnixImageTaskConfig
from unix.data.captions import check_tag_sources, first_reference, lang_of_source, photo_language_groups
from unix.data.tokenizer import is_lang_tag
from unix.generation.mbr import UTILITIES, mbr_rerank
from unix.metrics.caption import CorpusCiderD
from unix.metrics.evaluators import CiderEvaluator
from unix.metrics.references import SEP

logger = logging.getLogger(__name__)

SRC, TGT = "tag", "cap"  # file suffixes of the binarized pair: <split>.tag-cap.{tag,cap}


@dataclass
class UnixCaptionConfig(UnixImageTaskConfig):
    caption_lang: Optional[str] = field(default=None, metadata={
        "help": "caption every photo in this language, replacing the tags of the data (e.g. to caption "
                "the test photos in fr); scores against the split's own references are then meaningless "
                "unless the split is in this language"})
    eval_cider: bool = field(default=False, metadata={
        "help": "deprecated (goes in the next release): --eval-metric cider,bleu4"})
    eval_cider_args: Optional[str] = field(default=None, metadata={"help": "deprecated: --eval-args"})
    best_beam_stop: bool = field(default=False, metadata={
        "help": "deprecated (goes in the next release): --beam-stop best"})
    group_by_photo: bool = field(default=False, metadata={
        "help": "training batches hold the captions of a photo in a language together, and the encoder "
                "runs once per (photo, language) of a batch instead of once per caption (they then share "
                "encoder dropout; with pixels, a photo is decoded once and its captions share its crop); "
                "pays with pixels, not with --image-features (examples/captioning); not for --criterion "
                "unix_scst, whose batches should be distinct photos"})
    eval_meteor: bool = field(default=False, metadata={
        "help": "deprecated (goes in the next release): with --eval-cider, --eval-metric cider,bleu4,meteor"})
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
    eval_cider_print_samples: bool = field(default=False, metadata={"help": "deprecated: --eval-print-samples"})


@register_task("unix_caption", dataclass=UnixCaptionConfig)
class UnixCaptionTask(UnixImageTask):
    """Multilingual image captioning (image + language tag -> caption)."""

    task_name = "unix_caption"
    image_required = True
    sample_noun = "caption"
    missing_image = "empty line, but every caption needs its photo"
    backbone_checks = True
    eval_args_default = '{"beam": 1, "max_len_a": 0, "max_len_b": 40}'
    eval_unk = ("<unk>", "<<unk>>")

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
        if self.evaluators and self.sep_idx is None:
            raise ValueError(f"--eval-metric needs the reference separator {SEP} in the dictionary of {cfg.data}")
        if cfg.mbr_utility is not None and cfg.mbr_utility not in UTILITIES:
            raise ValueError(f"--mbr-utility {cfg.mbr_utility!r}: choose from {', '.join(UTILITIES)}")
        self.train_input_groups: Optional[np.ndarray] = None  # (N,) with --group-by-photo

    _pairs = property(lambda self: self.eval_pairs)  # the text pair of every split (after --caption-lang)
    cider_generator = property(lambda self: self.eval_generator,
                               lambda self, generator: setattr(self, "eval_generator", generator))

    # -- data ------------------------------------------------------------------------------------
    def pair_options(self, split):
        return dict(left_pad_target=False, shuffle=not split.startswith("test"))

    def prepare_pair(self, split, dataset, prefix):
        """Sources must be language tags; ``--caption-lang`` replaces them."""
        check_tag_sources(dataset.src_sizes, (int(dataset.src[i][0]) for i in range(len(dataset.src))),
                          self.lang_tag_ids, self.src_dict.symbols, f"{prefix}.{self.cfg.source_lang}")
        if self.caption_lang_idx is not None:
            own = {int(dataset.src[i][0]) for i in range(min(len(dataset), 1000))}
            if own != {self.caption_lang_idx} and dataset.tgt is not None:
                logger.warning("%s: captioning in %s, but the targets are in %s: scores against them are "
                               "meaningless", split, self.cfg.caption_lang,
                               ", ".join(sorted(self.src_dict[t] for t in own)))
            dataset.src = TagOverrideDataset(dataset.src, self.caption_lang_idx)
        return dataset

    def finish_split(self, split, pair, dataset):
        """``--group-by-photo`` groups of the training split; every batch names its split."""
        if dataset is not pair and self.cfg.group_by_photo and split == self.cfg.train_subset:
            self.train_input_groups = photo_language_groups(dataset.images.paths, pair.src)
            dataset.set_input_groups(self.train_input_groups)
            logger.info("%s: --group-by-photo: %d captions of %d (photo, language) inputs", split,
                        len(pair), self.train_input_groups.max() + 1)
        return SplitTaggedDataset(dataset, split)

    # -- generation and validation -----------------------------------------------------------------
    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        """fairseq's inference step; with ``--mbr-utility``, each photo's hypotheses are reranked by MBR
        (:func:`unix.generation.mbr.mbr_rerank` on the detokenized text fairseq-generate prints)."""
        hypos = super().inference_step(generator, models, sample, prefix_tokens=prefix_tokens,
                                       constraints=constraints)
        if self.cfg.mbr_utility is None:
            return hypos
        return [self.mbr_rerank(h) for h in hypos]

    def mbr_rerank(self, hypos: List[Dict]) -> List[Dict]:
        if len(hypos) < 2:
            return hypos
        texts = [self.tgt_dict.string(h["tokens"].int().cpu(), "sentencepiece") for h in hypos]
        return mbr_rerank(hypos, texts, self.cfg.mbr_utility, self.cfg.mbr_alpha, self.cfg.mbr_weights)

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

    loss_sample = first_reference_sample

    def eval_reference_keys(self, split):
        """(photo, language tag) of every sample: a caption is scored against all captions of its photo
        in its language (an evaluation sample holds them all; a training sample one of them)."""
        pair = self.eval_pairs[split]
        images = getattr(self.datasets[split].dataset, "images", None)  # None: --no-images
        photos = images.paths if images is not None else None
        return [(photos[i] if photos is not None else i, int(pair.src[i][0])) for i in range(len(pair))]

    def corpus_cider(self, split: str) -> Tuple[CorpusCiderD, List[List[str]]]:
        """CIDEr-D with the document frequencies of ``split``'s references (pooled per photo and language
        tag, PTB-tokenized) and the references of every sample, computed once (also the SCST reward's)."""
        cider = self.fit_evaluator(split, _CIDER)
        sets, set_of = self.eval_corpus(split, _CIDER)
        return cider.cider, [sets[g] for g in set_of]

    def caption_langs(self, split: str, ids: List[int]) -> List[str]:
        """Language code of the tag of every sample ``ids`` of ``split`` (``"en"`` for ``__en__``)."""
        pair = self.eval_pairs[split]
        return [lang_of_source(self.src_dict[int(pair.src[i][0])]) for i in ids]

    def eval_languages(self, split, ids):
        return self.caption_langs(split, ids) if split is not None else None


_CIDER = CiderEvaluator()  # unfitted: fit_evaluator gives each split its own

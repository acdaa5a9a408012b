"""Validation by generation for every :class:`~fairseq_plugins.tasks.base.UnixImageTask`.

One option set (:class:`UnixEvalConfig`): ``--eval-metric`` names the evaluators of
:mod:`unix.metrics.evaluators` (comma-separated, e.g. ``cider,bleu4``), ``--eval-args`` the
generation options (JSON; default: the task's), ``--eval-post-process`` how generated tokens
become text, ``--eval-print-samples`` logs an example per batch. Each validation batch is
generated once; every evaluator adds its statistics to the batch's logging output, and
:meth:`ValidationMixin.reduce_eval_metrics` logs each score under the evaluator's name from the
statistics summed over batches and workers (``--best-checkpoint-metric cider
--maximize-best-checkpoint-metric``).

References: when a batch names its split (``batch["unix_split"]``, unix_caption's), the
references of a sample are those of its split, pooled over the samples with the same
:meth:`ValidationMixin.eval_reference_keys` (a photo and a language), tokenized once per split;
an evaluator that needs the whole corpus (CIDEr-D's document frequencies) is fit on them once
per split. Otherwise they are the sample's own target, split at ``<sep>``.

The per-task flags of the last release map onto these options with a warning and go in the next
release (:data:`DEPRECATED`).
"""

import json
import logging
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from fairseq import metrics, utils

from fairseq_plugins.data.tagged_dataset import SPLIT_KEY
from unix.data.captions import group_references
from unix.metrics.evaluators import EVALUATORS, Evaluator, get_evaluator, parse_metrics
from unix.metrics.references import split_references

logger = logging.getLogger(__name__)


@dataclass
class UnixEvalConfig:
    """Options of validation by generation, shared by every unix image task."""

    eval_metric: str = field(default="none", metadata={
        "help": "generate on the validation sets and log these metrics, comma-separated, each under its "
                f"name (usable as --best-checkpoint-metric NAME --maximize-best-checkpoint-metric): "
                f"{', '.join(EVALUATORS)} (unix.metrics.evaluators); 'none': the loss only"})
    eval_args: Optional[str] = field(default=None, metadata={
        "help": "generation options of --eval-metric, as JSON (default: the task's; greedy with at most 40 "
                "tokens for unix_caption, {\"beam\": 5} for unix_vqa, {} for unix_mmt)"})
    eval_post_process: str = field(default="sentencepiece", metadata={
        "help": "how generated tokens and references become text before scoring (as --post-process; "
                "'none' scores the pieces)"})
    eval_print_samples: bool = field(default=False, metadata={
        "help": "log one generated text and its references per validation batch"})


# deprecated flag -> (metrics, its generation-args flag, its post-process flag, its print-samples flag)
DEPRECATED = {
    "eval_cider": ("cider,bleu4", "eval_cider_args", None, "eval_cider_print_samples"),
    "eval_accuracy": ("accuracy", "eval_accuracy_args", "eval_accuracy_post_process", "eval_accuracy_print_samples"),
    "eval_bleu": ("bleu", "eval_bleu_args", "eval_bleu_remove_bpe", "eval_bleu_print_samples"),  # fairseq's
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def resolve_eval_options(cfg, args_default: str) -> Tuple[List[str], str, str, bool]:
    """(metrics, generation args JSON, post-process, print samples) of a task config, the deprecated
    per-task flags mapped onto ``--eval-metric`` and friends (with a warning)."""
    names = parse_metrics(cfg.eval_metric)
    args, post_process, samples = cfg.eval_args, cfg.eval_post_process, cfg.eval_print_samples
    if getattr(cfg, "eval_meteor", False) and not getattr(cfg, "eval_cider", False):
        raise ValueError("--eval-meteor needs --eval-cider (it scores the captions --eval-cider generates)")
    for old, (metric, args_flag, pp_flag, samples_flag) in DEPRECATED.items():
        if not getattr(cfg, old, False):
            continue
        if names:
            raise ValueError(f"give --eval-metric or the deprecated {_flag(old)}, not both")
        metric += ",meteor" if old == "eval_cider" and getattr(cfg, "eval_meteor", False) else ""
        logger.warning("%s is deprecated and goes in the next release: use --eval-metric %s (and --eval-args, "
                       "--eval-post-process, --eval-print-samples for its -args, -post-process, -print-samples)",
                       _flag(old), metric)
        names = parse_metrics(metric)
        args = args if args is not None else getattr(cfg, args_flag)
        if pp_flag is not None:
            post_process = getattr(cfg, pp_flag) or "none"
        samples = samples or bool(getattr(cfg, samples_flag, False))
    return names, args if args is not None else args_default, post_process, samples


class ValidationMixin:
    """Validation by generation; the task sets :attr:`eval_args_default` and :attr:`eval_unk`, and may
    override :meth:`eval_reference_keys` and :meth:`eval_languages`."""

    eval_args_default = "{}"  # generation options when --eval-args is not given
    # how an unknown word reads in hypotheses and references (fairseq's --eval-bleu: never a match)
    eval_unk = ("UNKNOWNTOKENINHYP", "UNKNOWNTOKENINREF")

    def setup_validation(self, cfg) -> None:
        names, self.eval_args, self.eval_post_process, self.eval_print_samples = resolve_eval_options(
            cfg, self.eval_args_default)
        tokenized = {"tokenize": "none"} if getattr(cfg, "eval_tokenized_bleu", False) else {}
        self.evaluators: List[Evaluator] = [get_evaluator(n, **(tokenized if n == "bleu" else {})) for n in names]
        self.eval_detok = None
        if getattr(cfg, "eval_bleu", False) and getattr(cfg, "eval_bleu_detok", "space") != "space":
            from fairseq.data import encoders

            self.eval_detok = encoders.build_tokenizer(Namespace(
                tokenizer=cfg.eval_bleu_detok, **json.loads(cfg.eval_bleu_detok_args or "{}")))
        self.eval_pairs: Dict[str, object] = {}  # split -> its text pair (references)
        self._eval_cache: Dict[tuple, object] = {}  # (split, tokenizer or evaluator name) -> corpus / fit evaluator

    def forget_split(self, split: str, pair) -> None:
        """``split`` was (re)loaded as ``pair``: its references and fit evaluators are computed anew."""
        self.eval_pairs[split] = pair
        self._eval_cache = {k: v for k, v in self._eval_cache.items() if k[0] != split}

    def eval_text(self, tokens, reference: bool) -> str:
        text = self.tgt_dict.string(tokens.int().cpu(), self.eval_post_process, unk_string=self.eval_unk[reference])
        return self.eval_detok.decode(text) if self.eval_detok is not None else text

    # -- hooks -----------------------------------------------------------------------------------
    def eval_reference_keys(self, split: str) -> Sequence:
        """(N,) keys of the samples of ``split``: samples with the same key share their references."""
        return range(len(self.eval_pairs[split]))

    def eval_languages(self, split: Optional[str], ids: List[int]) -> Optional[List[str]]:
        """Language code of the samples ``ids`` (an evaluator with :attr:`languages` scores only
        those in them); ``None``: unknown, every evaluator scores every sample."""
        lang = self.tag_lang()
        return [lang] * len(ids) if lang else None

    # -- references ------------------------------------------------------------------------------
    def eval_corpus(self, split: str, ev: Evaluator) -> Tuple[List[List[str]], List[int]]:
        """The reference sets of ``split`` in ``ev``'s tokenization, and the set of every sample."""
        key = (split, ev.tokenizer)
        if key not in self._eval_cache:
            pair = self.eval_pairs[split]
            refs = [split_references(self.eval_text(pair.tgt[i], True)) for i in range(len(pair))]
            empty = [i for i, r in enumerate(refs) if not r]
            if empty:
                raise ValueError(f"{split}: sample {empty[0]} (line {empty[0] + 1}) has no reference")
            group_of, groups = group_references(list(self.eval_reference_keys(split)), refs)
            self._eval_cache[key] = (tokenize_groups(ev, groups), group_of)
            logger.info("%s: %d reference sets, %.2f references each", split, len(groups),
                        sum(map(len, groups)) / max(len(groups), 1))
        return self._eval_cache[key]

    def fit_evaluator(self, split: Optional[str], ev: Evaluator) -> Evaluator:
        """``ev`` fit on the references of ``split`` (once per split) when it needs them."""
        if not ev.needs_corpus:
            return ev
        if split is None or split not in self.eval_pairs:
            raise ValueError(f"--eval-metric {ev.name} needs the references of the whole split: batches that "
                             f"name their split (batch['{SPLIT_KEY}'], as unix_caption's)")
        if (split, ev.name) not in self._eval_cache:
            self._eval_cache[(split, ev.name)] = ev.fit(self.eval_corpus(split, ev)[0])
        return self._eval_cache[(split, ev.name)]

    def eval_references(self, sample, split: Optional[str], ev: Evaluator) -> List[List[str]]:
        if split is not None and split in self.eval_pairs:
            sets, set_of = self.eval_corpus(split, ev)
            return [sets[set_of[i]] for i in sample["id"].tolist()]
        pad = self.tgt_dict.pad()
        return tokenize_groups(ev, [split_references(self.eval_text(utils.strip_pad(t, pad), True))
                                    for t in sample["target"]])

    # -- validation ------------------------------------------------------------------------------
    def eval_statistics(self, sample, model) -> Dict[str, float]:
        """Generate for a validation batch and return every evaluator's statistics of it."""
        split = sample.get(SPLIT_KEY)
        gen_out = self.inference_step(self.eval_generator, [model], sample, prefix_tokens=None)
        hyps = [self.eval_text(g[0]["tokens"], False) for g in gen_out]
        langs = self.eval_languages(split, sample["id"].tolist())
        out, prepared = {}, {}
        for ev in self.evaluators:
            if ev.tokenizer not in prepared:
                prepared[ev.tokenizer] = ev.tokenize(hyps), self.eval_references(sample, split, ev)
            h, r = prepared[ev.tokenizer]
            if ev.languages is not None and langs is not None:
                keep = [k for k, lang in enumerate(langs) if lang in ev.languages]
                h, r = [h[k] for k in keep], [r[k] for k in keep]
            out.update(self.fit_evaluator(split, ev).stats(h, r))
        if self.eval_print_samples and hyps:
            refs = next(iter(prepared.values()))[1]
            logger.info("%s example: %r | references: %r", split or "valid", hyps[0], refs[0])
        return out

    def reduce_eval_metrics(self, logging_outputs) -> None:
        """Log every evaluator's summed statistics and its score (x100 scores rounded to 2 decimals)."""
        for ev in self.evaluators:
            keys = ev.keys(logging_outputs)
            summed = {k: sum(log.get(k, 0) for log in logging_outputs) for k in keys}
            if not keys or not ev.counted(summed):
                continue
            for k in keys:
                metrics.log_scalar_sum(k, summed[k])
            metrics.log_derived(ev.name, lambda m, ev=ev, keys=keys: round(ev.score(
                {k: meter_sum(m, k) for k in keys}), 2))


def tokenize_groups(ev: Evaluator, groups: Sequence[Sequence[str]]) -> List[List[str]]:
    """``ev.tokenize`` of lists of texts, in one call."""
    flat = ev.tokenize([s for g in groups for s in g]) if ev.tokenizer else [s for g in groups for s in g]
    it = iter(flat)
    return [[next(it) for _ in g] for g in groups]


def meter_sum(meters, key: str) -> float:
    """``meters[key].sum`` as a float: under distributed training fairseq sums logging outputs as tensors."""
    return float(meters[key].sum)

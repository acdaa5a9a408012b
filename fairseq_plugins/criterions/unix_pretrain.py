"""Criterion ``unix_pretrain``: the objectives of one stream's batch, weighted and summed.

Objectives by stream kind (weights are the task's ``--<objective>-weight``; 0 = off):

* ``caption`` / ``mt`` / ``mmt`` / ``denoise``: label-smoothed cross-entropy, **token mean**;
* ``itc``: symmetric InfoNCE between pooled image and caption embeddings (learnable temperature
  ``model.logit_scale``, negatives all-gathered over workers);
* ``xlc``: the same between a sentence and its translation;
* ``itm``: image-text matching over positives and hard negatives sampled from the ``itc``
  similarities, classified by the ITM head on the fused encoder output (mean over pairs);
* ``rc3``: on batches of a weakly-aligned caption stream (they carry ``relevance``, (B,)) when
  ``--rc3-weight > 0``, RC3's relevance-regularized contrastive loss (:mod:`unix.losses.rc3`)
  takes the place of ``itc`` (same embeddings, temperature and gathering; ITM's hard negatives
  then come from its similarities). With ``--rc3-weight 0`` those batches get plain ``itc``.

Distributed convention (``unix/losses/contrastive.py``): fairseq sums gradients over workers and
divides by the summed ``sample_size``. Every batch has ``sample_size = 1`` and::

    loss = sum_o w_o * token_mean_o + w_itc * N * L_itc + w_xlc * N * L_xlc + w_rc3 * N * L_rc3
           + w_itm * ITM_mean

where ``N`` is the data-parallel world size: each rank's contrastive ``L`` is already the global
loss and its gradient is the rank's share, so ``x N`` undoes fairseq's division by ``N``. In the
logs each rank reports ``L / N`` with a count ``1 / N``, so the summed log is ``L``.

Logged (``reduce_metrics``, so also in TensorBoard): ``loss``, ``<o>_loss`` of every objective,
``<o>_nll_loss`` of the seq2seq ones, ``itc_acc_i2t``, ``itc_acc_t2i``, ``xlc_acc``, ``itm_acc``,
``rc3_acc`` (best-match accuracy, both directions averaged) and ``temperature``
(``1 / exp(logit_scale)``).
"""

import logging
from dataclasses import dataclass, field
from typing import Dict

from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from fairseq_plugins.distributed import check_ddp_backend
from unix.losses import (contrastive_loss, distributed_world_size, itm_loss, itm_pairs, logit_scale_value,
                         rc3_loss, sample_hard_negatives, sequence_loss)
from unix.losses.objectives import CONTRASTIVE_OBJECTIVES, SEQ_OBJECTIVES

logger = logging.getLogger(__name__)

ACCURACIES = {"itc": ("itc_acc_i2t", "itc_acc_t2i"), "xlc": ("xlc_acc",), "itm": ("itm_acc",), "rc3": ("rc3_acc",)}


@dataclass
class UnixPretrainCriterionConfig(FairseqDataclass):
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing of the seq2seq objectives"})


def empty_log() -> Dict[str, float]:
    """Every key, zero: workers always log the same keys (fairseq sums them as one tensor)."""
    log = {"loss": 0.0, "ntokens": 0.0, "nsentences": 0.0, "sample_size": 1.0, "temperature": 0.0,
           "temperature_n": 0.0}
    for o in SEQ_OBJECTIVES + CONTRASTIVE_OBJECTIVES:
        log[f"{o}_loss"] = log[f"{o}_n"] = 0.0
    for o in SEQ_OBJECTIVES:
        log[f"{o}_nll_loss"] = log[f"{o}_ntokens"] = 0.0
    for keys in ACCURACIES.values():
        for k in keys:
            log[k] = 0.0
    return log


@register_criterion("unix_pretrain", dataclass=UnixPretrainCriterionConfig)
class UnixPretrainCriterion(FairseqCriterion):
    """Weighted sum of the pre-training objectives of a batch (see the module docstring)."""

    def __init__(self, task, label_smoothing: float = 0.1):
        super().__init__(task)
        if not hasattr(task, "streams"):
            raise ValueError("criterion unix_pretrain needs task unix_pretrain")
        self.eps = label_smoothing
        self.weights = task.weights
        self.kinds = {s.name: s.kind for s in task.streams}
        self.xlc_streams = task.xlc_streams

    def forward(self, model, sample, reduce=True):
        """Loss of one batch.

        Returns:
            ``(loss, sample_size, logging_output)`` with ``sample_size = 1``.
        """
        if model.training:
            check_ddp_backend(model, "unix_pretrain")
        log = empty_log()
        world = distributed_world_size()
        kind = self.kinds[sample["stream"]]
        net_input = sample["net_input"]
        has_images = "image_mask" in net_input and bool(net_input["image_mask"].any())
        seq = {"caption": "caption", "denoise": "denoise"}.get(kind, "mmt" if has_images else "mt")
        terms = []  # (objective, weight, gradient factor, differentiable value, log count)
        if self.weights[seq] > 0:
            logits = model(**net_input)[0]  # (B, T, V)
            out = sequence_loss(logits, sample["target"], self.padding_idx, self.eps)
            ntok = max(out.ntokens, 1)
            terms.append((seq, self.weights[seq], 1.0, out.loss / ntok, 1.0))
            log[f"{seq}_nll_loss"] = float(out.nll_loss.detach()) / ntok
            log[f"{seq}_ntokens"] = float(out.ntokens)
        core = model.core
        weak = self.weights["rc3"] > 0 and sample.get("relevance") is not None
        if kind == "caption" and has_images and (self.weights["itc"] > 0 or self.weights["itm"] > 0 or weak):
            terms += self.image_text_terms(core, sample, world, log, weak)
        if kind == "translation" and self.weights["xlc"] > 0 and sample["stream"] in self.xlc_streams:
            a = core.encode_text(sample["xl_src"])  # (B, E)
            b = core.encode_text(sample["xl_tgt"])  # (B, E)
            c = contrastive_loss(a, b, core.logit_scale)
            terms.append(("xlc", self.weights["xlc"], world, c.loss, 1.0 / world))
            log["xlc_acc"] = float(c.acc_a2b + c.acc_b2a) / 2 / world
            self.log_temperature(core, world, log)
        loss = sum(w * factor * v for _, w, factor, v, _ in terms)
        for name, w, _, v, n in terms:
            log[f"{name}_loss"] = float(v.detach()) * n
            log[f"{name}_n"] = n
            log["loss"] += w * float(v.detach())  # contrastive: w * L, not w * N * L (the gradient's factor)
        log["ntokens"] = float(sample["ntokens"])
        log["nsentences"] = float(sample["target"].size(0))
        return loss, 1, log

    def image_text_terms(self, core, sample, world, log, weak: bool = False):
        """``itc`` (``rc3`` when ``weak``) and ``itm`` terms of a caption batch (rows with an image)."""
        net_input = sample["net_input"]
        rows = net_input["image_mask"].nonzero(as_tuple=True)[0]  # (B',)
        key = "image_features" if "image_features" in net_input else "images"
        pixels = net_input[key][rows]  # (B', N, C) features or (B', 3, H, W) pixels
        text = sample["text_tokens"][rows]  # (B', T)
        img = core.encode_image(**{("features" if key == "image_features" else "images"): pixels})  # (B', E)
        txt = core.encode_text(text)  # (B', E)
        terms = []
        if weak:
            c = rc3_loss(img, txt, sample["relevance"][rows], core.logit_scale)  # relevance (B',)
            terms.append(("rc3", self.weights["rc3"], world, c.loss, 1.0 / world))
            log["rc3_acc"] = float(c.acc_a2b + c.acc_b2a) / 2 / world
            self.log_temperature(core, world, log)
        else:
            c = contrastive_loss(img, txt, core.logit_scale)
        if not weak and self.weights["itc"] > 0:
            terms.append(("itc", self.weights["itc"], world, c.loss, 1.0 / world))
            log["itc_acc_i2t"] = float(c.acc_a2b) / world
            log["itc_acc_t2i"] = float(c.acc_b2a) / world
            self.log_temperature(core, world, log)
        if self.weights["itm"] > 0 and len(rows) > 1:
            B = len(rows)
            sim = c.logits[c.offset:c.offset + B, c.offset:c.offset + B].detach()  # (B', B')
            image_idx, text_idx, labels = itm_pairs(sample_hard_negatives(sim))  # (P,) each
            logits = core.match_logits(text[text_idx], **{key: pixels[image_idx]})  # (P, 2)
            loss, acc = itm_loss(logits, labels)
            terms.append(("itm", self.weights["itm"], 1.0, loss, 1.0))
            log["itm_acc"] = float(acc)
        return terms

    @staticmethod
    def log_temperature(core, world, log):
        log["temperature"] = 1.0 / float(logit_scale_value(core.logit_scale.detach())) / world
        log["temperature_n"] = 1.0 / world

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(float(log.get(key, 0.0)) for log in logging_outputs)

        sample_size = total("sample_size")
        metrics.log_scalar("loss", total("loss") / max(sample_size, 1.0), sample_size, round=3)
        for o in SEQ_OBJECTIVES + CONTRASTIVE_OBJECTIVES:
            n = total(f"{o}_n")
            if n <= 0:
                continue
            metrics.log_scalar(f"{o}_loss", total(f"{o}_loss") / n, n, round=3)
            for acc in ACCURACIES.get(o, ()):
                metrics.log_scalar(acc, 100.0 * total(acc) / n, n, round=2)
            if o in SEQ_OBJECTIVES:
                metrics.log_scalar(f"{o}_nll_loss", total(f"{o}_nll_loss") / n, n, round=3)
        n = total("temperature_n")
        if n > 0:
            metrics.log_scalar("temperature", total("temperature") / n, n, round=4)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

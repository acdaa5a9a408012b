"""Criterion ``unix_scst``: self-critical sequence training of a captioner on CIDEr-D.

Fine-tunes a ``unix_caption`` model (trained with cross-entropy first) on its own captions: for
every photo of a batch the model proposes ``--scst-candidates K`` captions (the top K of beam
search, as the M2 Transformer and OFA do, or K samples with ``--scst-sampling``), each is scored
by CIDEr-D against all references of its photo in its language (plus, with
``--scst-bleu-weight`` / ``--scst-meteor-weight``, that weight times its sentence BLEU-4 / METEOR
against the same references, as self-critical.pytorch's ``--bleu_reward_weight``), and the loss is
``-sum (r - b) log p(caption)`` (:func:`unix.losses.scst_loss`), with the baseline ``b`` the mean
reward of the photo's other candidates (``--scst-baseline mean``) or the reward of its greedy
caption (``greedy``). References and document frequencies come from the training split itself
(the task's ``corpus_cider(split)``, computed once: captions pooled per photo and language tag,
PTB-tokenized, the ``cider`` evaluator of :mod:`unix.metrics.evaluators`), so the reward is the
CIDEr-D that ``--eval-metric cider`` and ``fairseq-generate --scoring cider`` report.

Candidates are decoded with the model in eval mode (no dropout), then scored by one
teacher-forced pass in train mode; the encoder runs once per photo and its output is repeated for
the K candidates. ``sample_size`` is the number of candidates: the gradient is the mean over
candidates. In validation the criterion reports the cross-entropy of the first reference as
``loss`` (in bits per token, as fairseq's criteria; the reward needs decoding: use
``--eval-metric cider`` for the validation CIDEr-D).

Logged: ``loss``, ``reward`` (mean candidate reward x100: CIDEr-D, or the weighted sum),
``reward_cider`` / ``reward_bleu4`` / ``reward_meteor`` (its parts, x100, when a weight is set),
``reward_best`` (best candidate per photo), ``reward_greedy`` (greedy baseline only),
``advantage_abs`` and ``cand_len`` (tokens).
"""

import logging
import math
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.data import data_utils
from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from fairseq_plugins.distributed import check_ddp_backend
from fairseq_plugins.data.tagged_dataset import SPLIT_KEY
from unix.losses import scst_loss, sequence_loss
from unix.metrics.caption import ptb_tokenize, sentence_bleu
from unix.metrics.meteor import SentenceMeteor

logger = logging.getLogger(__name__)


@dataclass
class UnixScstConfig(FairseqDataclass):
    scst_candidates: int = field(default=5, metadata={"help": "captions proposed per photo (K)"})
    scst_sampling: bool = field(default=False, metadata={
        "help": "K multinomial samples per photo instead of the top K of beam search"})
    scst_baseline: ChoiceEnum(["mean", "greedy"]) = field(default="mean", metadata={
        "help": "mean: reward of the photo's other candidates; greedy: reward of its greedy caption"})
    scst_max_len: int = field(default=40, metadata={"help": "longest candidate, in tokens"})
    scst_length_normalize: bool = field(default=False, metadata={
        "help": "weigh the mean token log-probability of a candidate instead of the sum"})
    scst_bleu_weight: float = field(default=0.0, metadata={
        "help": "reward = CIDEr-D + this x sentence BLEU-4 (pycocoevalcap's smoothing and brevity penalty)"})
    scst_meteor_weight: float = field(default=0.0, metadata={
        "help": "reward += this x sentence METEOR (pycocoevalcap's METEOR 1.5, one JVM kept open; English "
                "captions only: train on an English data directory)"})
    scst_no_repeat_ngram_size: int = field(default=0, metadata={
        "help": "candidates (and the greedy baseline) may not repeat an n-gram of this size, as "
                "fairseq-generate --no-repeat-ngram-size N decodes them at test time (0: no blocking)"})


def candidate_tokens(hypos: List[List[dict]], k: int) -> List[torch.Tensor]:
    """The first ``k`` hypotheses of every sentence, photo-major (B*K tensors ending in ``</s>``).

    A sentence with fewer than ``k`` hypotheses repeats its last one (a generator returns fewer
    only when the beam ran out of distinct continuations).
    """
    out = []
    for sent in hypos:
        if not sent:
            raise RuntimeError("the generator returned no hypothesis for a photo")
        toks = [h["tokens"] for h in sent[:k]]
        out.extend(toks + [toks[-1]] * (k - len(toks)))
    return out


@register_criterion("unix_scst", dataclass=UnixScstConfig)
class UnixScstCriterion(FairseqCriterion):
    """Self-critical sequence training with a CIDEr-D reward (``unix_caption`` only)."""

    def __init__(self, task, scst_candidates=5, scst_sampling=False, scst_baseline="mean", scst_max_len=40,
                 scst_length_normalize=False, scst_bleu_weight=0.0, scst_meteor_weight=0.0,
                 scst_no_repeat_ngram_size=0):
        super().__init__(task)
        if not hasattr(task, "corpus_cider"):
            raise ValueError("--criterion unix_scst needs --task unix_caption (it scores captions by CIDEr-D)")
        if getattr(task.cfg, "group_by_photo", False):
            raise ValueError("--criterion unix_scst scores every photo's candidates against all its references: "
                             "batches grouped by photo (--group-by-photo) would repeat photos; drop the option")
        if scst_baseline == "mean" and scst_candidates < 2:
            raise ValueError("--scst-baseline mean needs --scst-candidates >= 2")
        self.k = scst_candidates
        self.sampling = scst_sampling
        self.baseline = str(scst_baseline)
        self.max_len = scst_max_len
        self.length_normalize = scst_length_normalize
        if scst_bleu_weight < 0 or scst_meteor_weight < 0:
            raise ValueError("--scst-bleu-weight and --scst-meteor-weight must be >= 0")
        self.weights = {"bleu4": float(scst_bleu_weight), "meteor": float(scst_meteor_weight)}
        if scst_no_repeat_ngram_size < 0:
            raise ValueError("--scst-no-repeat-ngram-size must be >= 0")
        self.no_repeat_ngram_size = int(scst_no_repeat_ngram_size)
        self._meteor = None
        self._generators = {}

    def generator(self, model, greedy: bool = False):
        """Beam search (or sampling) over ``model`` for the candidates; built once per model."""
        key = (id(model), greedy)
        if key not in self._generators:
            args = dict(beam=1 if greedy else self.k, max_len_a=0, max_len_b=self.max_len, min_len=1,
                        no_repeat_ngram_size=self.no_repeat_ngram_size)
            if self.sampling and not greedy:
                args.update(sampling=True, sampling_topk=-1, sampling_topp=-1.0, temperature=1.0)
            self._generators[key] = self.task.build_generator([model], Namespace(**args))
        return self._generators[key]

    def rewards(self, sample, tokens: List[torch.Tensor], per_photo: int) -> Tuple[torch.Tensor, Dict[str, float]]:
        """Reward of every candidate against its photo's references (pycocoevalcap scale).

        Returns:
            (B, per_photo) CIDEr-D + ``bleu_weight`` x BLEU-4 + ``meteor_weight`` x METEOR, and the
            sum over candidates of each part.
        """
        split = sample[SPLIT_KEY]
        cider, refs = self.task.corpus_cider(split)
        ids = sample["id"].tolist()
        text = [self.task.target_dictionary.string(t.int().cpu(), "sentencepiece") for t in tokens]
        hyps, img_refs = ptb_tokenize(text), [refs[i] for i in ids for _ in range(per_photo)]
        parts = {"cider": cider.image_scores(hyps, img_refs)}
        if self.weights["bleu4"]:
            parts["bleu4"] = sentence_bleu(hyps, img_refs)
        if self.weights["meteor"]:
            self.check_english(split, ids)
            if self._meteor is None:
                self._meteor = SentenceMeteor()
            parts["meteor"] = self._meteor(hyps, img_refs)
        total = parts["cider"] + sum(self.weights[k] * v for k, v in parts.items() if k != "cider")
        sums = {k: float(np.sum(v)) for k, v in parts.items()}
        return torch.as_tensor(total, dtype=torch.float32).view(len(ids), per_photo), sums

    def check_english(self, split: str, ids: List[int]) -> None:
        """METEOR has English resources only: refuse a candidate captioning another language."""
        other = next(((i, lang) for i, lang in zip(ids, self.task.caption_langs(split, ids)) if lang != "en"), None)
        if other is not None:
            i, lang = other
            raise ValueError(f"--scst-meteor-weight: {split} sample {i} (line {i + 1}) is a {lang!r} caption, "
                             f"but pycocoevalcap's METEOR has English resources only; fine-tune on English "
                             f"captions (unix-prepare-captions --langs en) or drop --scst-meteor-weight")

    def forward(self, model, sample, reduce=True):
        if not model.training:
            return self.reference_loss(model, sample)
        check_ddp_backend(model, "unix_scst")
        B, K = sample["id"].numel(), self.k
        model.eval()
        try:
            hypos = self.task.inference_step(self.generator(model), [model], sample, prefix_tokens=None)
            greedy = (self.task.inference_step(self.generator(model, greedy=True), [model], sample,
                                               prefix_tokens=None) if self.baseline == "greedy" else None)
        finally:
            model.train()
        cands = candidate_tokens(hypos, K)  # B*K tensors, photo-major
        rewards, parts = self.rewards(sample, cands, K)  # (B, K)
        baseline = None
        if greedy is not None:
            baseline = self.rewards(sample, candidate_tokens(greedy, 1), 1)[0]  # (B, 1)

        dictionary = self.task.target_dictionary
        pad, eos = dictionary.pad(), dictionary.eos()
        device = sample["id"].device
        target = data_utils.collate_tokens(cands, pad, eos).to(device)  # (B*K, T)
        prev = data_utils.collate_tokens(cands, pad, eos, move_eos_to_beginning=True).to(device)  # (B*K, T)
        net_input = {k: v for k, v in sample["net_input"].items() if k != "prev_output_tokens"}
        encoder_out = model.encoder(**net_input)  # once per photo
        order = torch.arange(B, device=device).repeat_interleave(K)  # (B*K,)
        encoder_out = model.encoder.reorder_encoder_out(encoder_out, order)
        logits, _ = model.decoder(prev, encoder_out=encoder_out)  # (B*K, T, V)
        lprobs = F.log_softmax(logits.float(), dim=-1)
        token_lp = lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (B*K, T)
        mask = target.ne(pad)
        out = scst_loss(token_lp, mask, rewards.to(device), None if baseline is None else baseline.to(device),
                        length_normalize=self.length_normalize)
        log = {
            "loss": out.loss.detach().item(), "ntokens": int(mask.sum()), "nsentences": B * K,
            "sample_size": B * K, "reward_sum": float(rewards.sum()), "reward_best_sum": float(rewards.max(1)[0].sum()),
            "photos": B, "advantage_abs_sum": float(out.advantage.abs().sum()),
            "reward_greedy_sum": float(baseline.sum()) if baseline is not None else 0.0,
            "greedy_photos": B if baseline is not None else 0,
        }
        if len(parts) > 1:
            log.update({f"reward_{k}_sum": v for k, v in parts.items()})
        return out.loss, B * K, log

    def reference_loss(self, model, sample):
        """Validation: cross-entropy of the reference (decoding for the reward is --eval-metric cider's job)."""
        logits, _ = model(**sample["net_input"])
        out = sequence_loss(logits, sample["target"], self.padding_idx)
        n = out.ntokens
        return out.nll_loss, n, {"loss": out.nll_loss.item(), "ntokens": n, "nsentences": sample["target"].size(0),
                                 "sample_size": n, "photos": 0}

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        sample_size, photos, cands = total("sample_size"), total("photos"), total("nsentences")
        if photos == 0:  # validation: reference cross-entropy in bits, as fairseq logs it
            metrics.log_scalar("loss", total("loss") / max(sample_size, 1) / math.log(2), sample_size, round=3)
            return
        metrics.log_scalar("loss", total("loss") / max(sample_size, 1), sample_size, round=4)
        metrics.log_scalar("reward", 100.0 * total("reward_sum") / max(cands, 1), cands, round=2)
        metrics.log_scalar("reward_best", 100.0 * total("reward_best_sum") / photos, photos, round=2)
        metrics.log_scalar("advantage_abs", 100.0 * total("advantage_abs_sum") / max(cands, 1), cands, round=2)
        metrics.log_scalar("cand_len", total("ntokens") / max(cands, 1), cands, round=2)
        for part in ("cider", "bleu4", "meteor"):
            if any(f"reward_{part}_sum" in log for log in logging_outputs):
                value = 100.0 * total(f"reward_{part}_sum") / max(cands, 1)
                metrics.log_scalar(f"reward_{part}", value, cands, round=2)
        greedy = total("greedy_photos")
        if greedy:
            metrics.log_scalar("reward_greedy", 100.0 * total("reward_greedy_sum") / greedy, greedy, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

"""Scorer ``vqa_accuracy``: ``fairseq-generate --scoring vqa_accuracy``.

Each target string holds the reference answers of a question joined by ``<sep>``; the score is
the VQA accuracy of :mod:`unix.metrics.vqa` (exact match after answer normalization with one
reference, ``min(#matching references / 3, 1)`` with several, or with
``--vqa-leave-one-out`` the official evaluation's average over leave-one-annotator-out subsets),
averaged, in percent. Run
fairseq-generate with ``--post-process sentencepiece`` so answers are compared as text.
"""

from dataclasses import dataclass, field

from fairseq.dataclass import FairseqDataclass
from fairseq.scoring import BaseScorer, register_scorer

from unix.metrics.vqa import VQAAccuracy


@dataclass
class VQAAccuracyConfig(FairseqDataclass):
    vqa_leave_one_out: bool = field(default=False, metadata={
        "help": "average the soft accuracy over the subsets leaving one reference answer out, as the "
                "official VQA evaluation (matters with several references per question)"})


@register_scorer("vqa_accuracy", dataclass=VQAAccuracyConfig)
class VQAAccuracyScorer(BaseScorer):
    """Thin adapter over :class:`unix.metrics.vqa.VQAAccuracy`."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.metric = VQAAccuracy(leave_one_out=getattr(cfg, "vqa_leave_one_out", False))

    def add_string(self, ref: str, pred: str) -> None:
        """``ref``: a target string (references joined by ``<sep>``); ``pred``: the answer."""
        super().add_string(ref, pred)
        self.metric.add(ref, pred)

    def score(self) -> float:
        """Mean VQA accuracy in percent."""
        return self.metric.score()

    def result_string(self) -> str:
        return self.metric.result_string()

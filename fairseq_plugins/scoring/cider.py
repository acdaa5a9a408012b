"""fairseq scorer ``cider``: ``fairseq-generate --scoring cider`` prints corpus CIDEr-D.

Each target string may hold several references joined by ``<sep>``
(:mod:`unix.metrics.references`); the hypothesis is scored against all of them with
pycocoevalcap's CIDEr-D after its PTB tokenization (:func:`unix.metrics.caption.cider_d`).
Strings still in sentencepiece pieces (no ``--post-process sentencepiece``) are joined first.
The printed score is x100, as captioning papers report it.
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

from fairseq.dataclass import FairseqDataclass
from fairseq.scoring import BaseScorer, register_scorer

from unix.data.captions import join_pieces
from unix.metrics.caption import MissingReferenceError, cider_d
from unix.metrics.references import split_references


@dataclass
class CiderConfig(FairseqDataclass):
    """The ``cider`` scorer has no options: CIDEr-D with n = 4, sigma = 6 (pycocoevalcap)."""


@register_scorer("cider", dataclass=CiderConfig)
class CiderScorer(BaseScorer):
    """Collects (references, hypothesis) pairs from fairseq-generate; scores the whole set at the end."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self._result: Optional[Tuple[float, int, float]] = None

    def add_string(self, ref: str, pred: str) -> None:
        self.ref.append(ref)
        self.pred.append(pred)
        self._result = None

    def references(self) -> List[List[str]]:
        """The references of every scored sample, split on ``<sep>``.

        Raises:
            MissingReferenceError: naming the first sample (in scoring order) without a reference.
        """
        refs = [split_references(join_pieces(r)) for r in self.ref]
        for k, r in enumerate(refs, start=1):
            if not r:
                raise MissingReferenceError(
                    f"cider: scored sample #{k} has an empty target, so no reference to score against")
        return refs

    def _compute(self) -> Tuple[float, int, float]:
        if self._result is None:
            if not self.pred:
                raise ValueError("cider: nothing to score (no sentence with a target was generated)")
            refs = self.references()
            score, _ = cider_d([join_pieces(p) for p in self.pred], refs)
            self._result = (100.0 * score, len(refs), sum(len(r) for r in refs) / len(refs))
        return self._result

    def score(self, order: int = 4) -> float:
        """Corpus CIDEr-D x 100."""
        return self._compute()[0]

    def result_string(self, order: int = 4) -> str:
        score, n, per_image = self._compute()
        return (f"CIDEr-D = {score:.2f} (x100; pycocoevalcap, PTB-tokenized) on {n} images, "
                f"{per_image:.2f} references per image")

"""Evaluators: scores of generated text computed from additive statistics.

An :class:`Evaluator` turns the hypotheses and references of a batch into a dict of statistics
(:meth:`Evaluator.stats`) that add up key by key over batches and over distributed workers, and
derives its score from the summed dict (:meth:`Evaluator.score`). Summing the statistics of
batches ``a`` and ``b`` and scoring gives the score of ``a + b`` scored at once: this is how
validation reports a corpus score over many batches. Every call returns the same keys (zeros for
an empty batch), all starting with the evaluator's :attr:`~Evaluator.prefix`, so workers can sum
them key by key.

Registered evaluators (:data:`EVALUATORS`, :func:`get_evaluator`):

* ``cider``: CIDEr-D x100 of pycocoevalcap on PTB-tokenized text. CIDEr-D weighs n-grams by
  their document frequencies over the references of the *whole* evaluated set, so the
  frequencies are fixed first from every reference set of the split (:meth:`Evaluator.fit`,
  :class:`~unix.metrics.caption.CorpusCiderD`); a batch then adds the sum of its per-image
  scores and its number of images, and their ratio is exactly pycocoevalcap's corpus CIDEr-D.
* ``bleu4``: corpus BLEU-4 x100 of pycocoevalcap on PTB-tokenized text (its n-gram counts,
  :func:`~unix.metrics.caption.bleu_statistics`).
* ``bleu``: sacreBLEU x100 (its 13a tokenization, or ``tokenize="none"``), from sacreBLEU's
  counts; a variable number of references per sentence is allowed. As fairseq's ``--eval-bleu``,
  a reduction whose hypotheses are all empty adds nothing (:meth:`Evaluator.counted`).
* ``meteor``: corpus METEOR 1.5 x100 (pycocoevalcap's jar, English only), from its summed
  sufficient statistics (:class:`~unix.metrics.meteor.MeteorStatistics`).
* ``accuracy``: VQA accuracy in percent (:func:`~unix.metrics.vqa.vqa_accuracy`).

Example::

    cider = get_evaluator("cider").fit(all_refs_tok)
    summed = add_stats(cider.stats(hyps_a, refs_a), cider.stats(hyps_b, refs_b))
    cider.score(summed)  # == cider.score(cider.stats(hyps_a + hyps_b, refs_a + refs_b))
"""

import logging
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Type

import numpy as np

from unix.metrics.caption import CorpusCiderD, bleu_statistic_names, bleu_statistics, corpus_bleu, ptb_tokenize
from unix.metrics.meteor import MeteorStatistics
from unix.metrics.vqa import vqa_accuracy

logger = logging.getLogger(__name__)

Stats = Dict[str, float]


class Evaluator:
    """Additive statistics of a batch of hypotheses and references, and the score of summed statistics.

    ``stats`` takes text as :meth:`tokenize` returns it (raw text when :attr:`tokenizer` is ``None``).
    """

    name = ""
    prefix = ""  # every statistic key starts with it
    count_key = ""  # the statistic that counts the scored hypotheses
    higher_is_better = True
    tokenizer: Optional[str] = None  # "ptb": stats take PTB-tokenized text; None: raw text
    languages: Optional[FrozenSet[str]] = None  # languages it can score (None: any)
    needs_corpus = False  # must be fit() on every reference set of the evaluated split first

    def tokenize(self, texts: Sequence[str]) -> List[str]:
        """``texts`` in the form :meth:`stats` takes."""
        return list(texts)

    def fit(self, corpus: Sequence[Sequence[str]]) -> "Evaluator":
        """The evaluator for a split whose reference sets (tokenized) are ``corpus``; ``self`` unless
        :attr:`needs_corpus`."""
        return self

    def stats(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> Stats:
        """Additive statistics of ``hyps`` (N,) against their reference lists ``refs`` (N,)."""
        raise NotImplementedError

    def score(self, summed: Mapping[str, float]) -> float:
        """The score of summed :meth:`stats`."""
        raise NotImplementedError

    def counted(self, summed: Mapping[str, float]) -> bool:
        """Whether summed statistics hold anything to score (a reduction without, e.g. of training
        batches, logs no score)."""
        return summed.get(self.count_key, 0) > 0

    def keys(self, logs: Iterable[Mapping[str, float]]) -> List[str]:
        """This evaluator's statistic keys present in ``logs``, in order of first appearance."""
        return list(dict.fromkeys(k for log in logs for k in log if k.startswith(self.prefix)))

    @staticmethod
    def check(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> None:
        if len(hyps) != len(refs):
            raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference lists")


EVALUATORS: Dict[str, Type[Evaluator]] = {}


def register(cls: Type[Evaluator]) -> Type[Evaluator]:
    EVALUATORS[cls.name] = cls
    return cls


def get_evaluator(name: str, **kwargs) -> Evaluator:
    """A new evaluator ``name`` (one of :data:`EVALUATORS`)."""
    if name not in EVALUATORS:
        raise ValueError(f"unknown evaluator {name!r}: choose from {', '.join(EVALUATORS)}")
    return EVALUATORS[name](**kwargs)


def parse_metrics(spec: Optional[str]) -> List[str]:
    """``"cider,bleu4"`` -> ``["cider", "bleu4"]`` (``"none"`` or empty: no metric); checks the names."""
    names = [n.strip() for n in (spec or "").split(",") if n.strip() and n.strip() != "none"]
    for n in names:
        if n not in EVALUATORS:
            raise ValueError(f"unknown evaluation metric {n!r}: choose from none, {', '.join(EVALUATORS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"evaluation metric named twice in {spec!r}")
    return names


def add_stats(*stats: Mapping[str, float]) -> Stats:
    """Key-by-key sum of statistics dicts (what summing over batches or workers does)."""
    out: Stats = {}
    for s in stats:
        for k, v in s.items():
            out[k] = out.get(k, 0) + v
    return out


class _PTB(Evaluator):
    tokenizer = "ptb"

    def tokenize(self, texts):
        return ptb_tokenize(texts)


@register
class CiderEvaluator(_PTB):
    """CIDEr-D x100 with document frequencies from the whole reference corpus (see the module docstring).

    Statistics: ``_cider_sum`` (sum of per-image CIDEr-D), ``_cider_n`` (images).
    """

    name, prefix, count_key, needs_corpus = "cider", "_cider_", "_cider_n", True

    def __init__(self, corpus: Optional[CorpusCiderD] = None):
        self.cider = corpus

    def fit(self, corpus):
        return CiderEvaluator(CorpusCiderD(corpus))

    def stats(self, hyps, refs):
        if self.cider is None:
            raise RuntimeError("cider: fit() it on the references of the whole evaluated set first "
                               "(CIDEr-D's document frequencies)")
        self.check(hyps, refs)
        scores = self.cider.image_scores(hyps, refs)
        return {"_cider_sum": float(scores.sum()), "_cider_n": len(hyps)}

    def score(self, summed):
        return 100.0 * summed["_cider_sum"] / max(summed["_cider_n"], 1)


BLEU4_KEYS = tuple(f"_bleu_{name}" for name in bleu_statistic_names(4))


@register
class Bleu4Evaluator(_PTB):
    """Corpus BLEU-4 x100 of pycocoevalcap: ``_bleu_testlen``, ``_bleu_reflen``, ``_bleu_guess1..4``,
    ``_bleu_correct1..4`` (summed :func:`~unix.metrics.caption.bleu_statistics`) and ``_bleu_n``."""

    name, prefix, count_key = "bleu4", "_bleu_", "_bleu_n"

    def stats(self, hyps, refs):
        self.check(hyps, refs)
        summed = bleu_statistics(hyps, refs).sum(axis=0)  # (10,), zeros for an empty batch
        out = {key: float(v) for key, v in zip(BLEU4_KEYS, summed)}
        out["_bleu_n"] = len(hyps)
        return out

    def score(self, summed):
        return 100.0 * corpus_bleu(np.array([summed[k] for k in BLEU4_KEYS], dtype=np.float64), n=4)[3]


@register
class BleuEvaluator(Evaluator):
    """sacreBLEU x100 from its counts: ``_sacrebleu_sys_len``, ``_sacrebleu_ref_len``,
    ``_sacrebleu_counts_<k>``, ``_sacrebleu_totals_<k>`` (k = 0..3) and ``_sacrebleu_n``.

    Args:
        tokenize: sacreBLEU's tokenizer ("13a", its default; "none" for text tokenized already).
    """

    name, prefix, count_key = "bleu", "_sacrebleu_", "_sacrebleu_n"
    order = 4

    def __init__(self, tokenize: str = "13a"):
        from sacrebleu.metrics import BLEU

        self.metric = BLEU(tokenize=tokenize, force=True)

    def stats(self, hyps, refs):
        self.check(hyps, refs)
        n = self.order
        out = {"_sacrebleu_sys_len": 0.0, "_sacrebleu_ref_len": 0.0}
        counts, totals = [0] * n, [0] * n
        if hyps:
            most = max(len(r) for r in refs)
            if not all(refs):
                raise ValueError(f"hypothesis {[bool(r) for r in refs].index(False)} has no reference")
            streams = [[r[k] if k < len(r) else None for r in refs] for k in range(most)]
            bleu = self.metric.corpus_score(list(hyps), streams)
            out = {"_sacrebleu_sys_len": float(bleu.sys_len), "_sacrebleu_ref_len": float(bleu.ref_len)}
            counts, totals = bleu.counts, bleu.totals
        out.update({f"_sacrebleu_counts_{k}": float(counts[k]) for k in range(n)})
        out.update({f"_sacrebleu_totals_{k}": float(totals[k]) for k in range(n)})
        out["_sacrebleu_n"] = len(hyps)
        return out

    def counted(self, summed):
        return max(summed.get(f"_sacrebleu_totals_{k}", 0) for k in range(self.order)) > 0

    def score(self, summed):
        from sacrebleu.metrics import BLEU

        return BLEU.compute_bleu(correct=[summed[f"_sacrebleu_counts_{k}"] for k in range(self.order)],
                                 total=[summed[f"_sacrebleu_totals_{k}"] for k in range(self.order)],
                                 sys_len=int(summed["_sacrebleu_sys_len"]),
                                 ref_len=int(summed["_sacrebleu_ref_len"]), smooth_method="exp").score


@register
class MeteorEvaluator(_PTB):
    """Corpus METEOR 1.5 x100 (English only): ``_meteor_<j>`` (the jar's statistics, summed as it
    aggregates them, :meth:`~unix.metrics.meteor.MeteorStatistics.summed`) and ``_meteor_n``.

    One METEOR process (a JVM) is started on first use and kept open.
    """

    name, prefix, count_key = "meteor", "_meteor_", "_meteor_n"
    languages = frozenset({"en"})

    def __init__(self, meteor: Optional[MeteorStatistics] = None):
        self._meteor = meteor

    @property
    def meteor(self) -> MeteorStatistics:
        if self._meteor is None:
            self._meteor = MeteorStatistics()
        return self._meteor

    def stats(self, hyps, refs):
        self.check(hyps, refs)
        if not hyps:  # the same keys as a non-empty batch: workers sum them key by key
            out = {f"_meteor_{j}": 0.0 for j in range(self.meteor.num_statistics())}
        else:
            stats = self.meteor.statistics(hyps, refs)
            self.meteor.check_summed(stats)  # one more request: the sums are what the jar would aggregate
            out = {f"_meteor_{j}": float(v) for j, v in enumerate(self.meteor.summed(stats))}
        out["_meteor_n"] = len(hyps)
        return out

    def score(self, summed):
        columns = sorted(int(k[len(self.prefix):]) for k in summed if k[len(self.prefix):].isdigit())
        stats = np.array([summed[f"_meteor_{j}"] for j in columns], dtype=np.float64)
        return 100.0 * float(self.meteor.scores(stats)[0])


@register
class AccuracyEvaluator(Evaluator):
    """VQA accuracy in percent: ``_vqa_acc_sum`` (sum of per-question accuracies), ``_vqa_count``.

    References are the answers of the annotators (repeats count); see :func:`unix.metrics.vqa.vqa_accuracy`.
    """

    name, prefix, count_key = "accuracy", "_vqa_", "_vqa_count"

    def __init__(self, leave_one_out: bool = False):
        self.leave_one_out = leave_one_out

    def stats(self, hyps, refs):
        self.check(hyps, refs)
        accs = [vqa_accuracy(h, r, self.leave_one_out) for h, r in zip(hyps, refs)]
        return {"_vqa_acc_sum": sum(accs), "_vqa_count": len(accs)}

    def score(self, summed):
        return 100.0 * summed["_vqa_acc_sum"] / summed["_vqa_count"]

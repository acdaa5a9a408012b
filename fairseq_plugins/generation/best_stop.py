"""Beam search that does not end a sentence while a live hypothesis can still beat its best.

fairseq's ``SequenceGenerator`` ends a sentence as soon as ``beam`` hypotheses have finished and
refuses any hypothesis finished after that. With a confident model and short outputs, that
returns junk: the one good hypothesis is the only live beam worth having, the ``beam - 1``
others are poor continuations, and when they end (``</s>`` among the top ``beam`` candidates)
they fill the ``beam`` finished slots before the good one, a few tokens longer, can end. On
easy-VQA, beam 5 answered "rect le" (score -3.6) where greedy search found "rectangle" (-0.002):
"rectangle" is four pieces. The same problem is known elsewhere (xnmt PR 572, "beam search
returned the shortest hypotheses"); Hugging Face's beam search keeps going while a live beam can
still beat the finished ones.

:class:`BestStopMixin` changes two things, overriding ``finalize_hypos`` and delegating the
building of the finished hypotheses to fairseq:

* a sentence keeps the ``beam`` *best* finished hypotheses (by normalised score), not the first;
* it ends once it holds ``beam`` of them **and** the best of them is at least the best live
  bound: the highest cumulative score among its live beams, length-normalised at the current
  length (the heuristic of Hugging Face's ``BeamHypotheses.is_done``; scores only fall as
  tokens are added), or at the length limit, as before.

So the first hypothesis is the best one beam search found; greedy search's answer is always
among the candidates. Beam search only (not sampling or diverse beam search, where fairseq's
rule is kept).
"""

from __future__ import annotations

from typing import Dict, List

import torch
from fairseq.sequence_generator import SequenceGenerator


class BestStopMixin:
    """Keep the best ``beam`` finished hypotheses; stop when no live beam can beat the best."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # a sentence may still be open at the length limit with no live beam left to end there
        # (closed-set decoding prunes beams to -inf): end the search there instead of asserting
        self.search.stop_on_max_len = True

    def finalize_hypos(self, step, bbsz_idx, eos_scores, tokens, scores, finalized, finished, beam_size,
                       attn, src_lengths, max_len):
        # fairseq builds the new finished hypotheses into empty lists (so none is refused for lack
        # of room) and a copy of ``finished`` (its own stopping decision is not used)
        fresh: List[List[Dict[str, torch.Tensor]]] = [[] for _ in finalized]
        super().finalize_hypos(step, bbsz_idx, eos_scores, tokens, scores, fresh, list(finished), beam_size,
                               attn, src_lengths, max_len)
        unfinished = [s for s, f in enumerate(finished) if not f]  # current batch row -> sentence
        live = live_bounds(scores, step, beam_size, len(unfinished), self.normalize_scores, self.len_penalty)
        newly_finished = []
        for row, sent in enumerate(unfinished):
            if fresh[sent]:
                finalized[sent] = keep_best(finalized[sent] + fresh[sent], beam_size)
            if sentence_done(finalized[sent], beam_size, float(live[row]), step == max_len):
                finished[sent] = True
                newly_finished.append(row)
        return newly_finished


def keep_best(hypos: List[Dict[str, torch.Tensor]], beam_size: int) -> List[Dict[str, torch.Tensor]]:
    """The ``beam_size`` best hypotheses by ``score``, best first (stable: ties keep their order)."""
    return sorted(hypos, key=lambda h: -float(h["score"]))[:beam_size]


def live_bounds(scores: torch.Tensor, step: int, beam_size: int, bsz: int, normalize: bool,
                len_penalty: float) -> torch.Tensor:
    """Best score a live beam of each sentence could reach if it ended now: (bsz,).

    Args:
        scores: (bsz*beam, >step) cumulative scores of the live beams; column ``step - 1`` is the
            score before this step (0 at step 0).
    """
    if step == 0:
        best = torch.zeros(bsz)
    else:
        best = scores[:, step - 1].view(bsz, beam_size).max(dim=1).values.float().cpu()
    return best / (step + 1) ** len_penalty if normalize else best


def sentence_done(finished_hypos: List[Dict[str, torch.Tensor]], beam_size: int, live_bound: float,
                  at_max_len: bool) -> bool:
    """A sentence ends with ``beam_size`` finished hypotheses, the best at least ``live_bound``."""
    if at_max_len:
        return True
    return len(finished_hypos) >= beam_size and float(finished_hypos[0]["score"]) >= live_bound


def positive(v) -> bool:
    """A numeric generation option that is set and above 0 (fairseq's "off" is -1 or 0)."""
    return v is not None and not isinstance(v, str) and v > 0


# fairseq generation options that make decoding something other than plain beam search
# -> "is it switched on?"
NOT_PLAIN_BEAM = {
    "sampling": bool, "constraints": bool, "print_alignment": bool, "diverse_beam_groups": positive,
    "diversity_rate": lambda v: v is not None and v > -1,
}


def plain_beam(args) -> bool:
    """Beam search without sampling, diversity, lexical constraints or alignments (fairseq's options).

    Only there does the stopping rule of :class:`BestStopMixin` apply; elsewhere fairseq's is kept.
    """
    return not any(switched_on(getattr(args, name, None)) for name, switched_on in NOT_PLAIN_BEAM.items())


class BestStopSequenceGenerator(BestStopMixin, SequenceGenerator):
    """fairseq's ``SequenceGenerator`` with the stopping rule of :class:`BestStopMixin`."""


def generator_class(best_stop: bool, args, seq_gen_cls=None, prefix_allowed_tokens_fn=None):
    """The class a task's ``build_generator`` hands to fairseq's.

    :class:`BestStopSequenceGenerator` when the rule is asked for (``best_stop``) and applies:
    plain beam search, no other generator class and no prefix function; else ``seq_gen_cls``.
    """
    if best_stop and seq_gen_cls is None and prefix_allowed_tokens_fn is None and plain_beam(args):
        return BestStopSequenceGenerator
    return seq_gen_cls

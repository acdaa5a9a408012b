"""Sequence-to-sequence losses: label-smoothed cross-entropy, as pure functions.

:func:`label_smoothed_nll_loss` has the semantics of fairseq's function of the same name
(``fairseq.criterions.label_smoothed_cross_entropy``), without importing fairseq: the target gets
probability ``1 - eps``, every other symbol ``eps / (V - 1)``, padding positions count zero, and
the default reduction is a *sum* (fairseq divides by the ``sample_size`` later). Returning sums
lets a pre-training criterion add several objectives and normalise once.

Example::

    logits = model(src_tokens, prev_output_tokens)                  # (B, T, V)
    out = sequence_loss(logits, target, padding_idx=pad, epsilon=0.1)
    (out.loss / out.ntokens).backward()
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)


def label_smoothed_nll_loss(lprobs: torch.Tensor, target: torch.Tensor, epsilon: float,
                            ignore_index: Optional[int] = None,
                            reduce: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """Label-smoothed negative log-likelihood, as fairseq.

    ``loss = (1 - eps - eps_i) * nll + eps_i * smooth`` with ``eps_i = eps / (V - 1)``,
    ``nll = -lprobs[target]`` and ``smooth = -sum_v lprobs[v]``: the smoothed target
    distribution puts ``1 - eps`` on the target and ``eps / (V - 1)`` on each other symbol.

    Args:
        lprobs: (..., V) log-probabilities (e.g. (N, V) or (B, T, V)).
        target: (...) gold indices, the shape of ``lprobs`` without its last dim.
        epsilon: smoothing mass in [0, 1).
        ignore_index: positions whose target equals it (padding) contribute 0.
        reduce: sum over all positions (True) or return per-position values (False).

    Returns:
        ``(loss, nll_loss)``: scalars when ``reduce``, else tensors of ``target``'s shape
        (fairseq keeps a trailing dim of size 1 there; this function does not).
    """
    if lprobs.shape[:-1] != target.shape:
        raise ValueError(f"lprobs {tuple(lprobs.shape)} and target {tuple(target.shape)} do not match")
    V = lprobs.shape[-1]
    if V < 2:
        raise ValueError("label smoothing needs a vocabulary of at least 2 symbols")
    nll_loss = -lprobs.gather(dim=-1, index=target.unsqueeze(-1)).squeeze(-1)  # (...)
    smooth_loss = -lprobs.sum(dim=-1)  # (...)
    if ignore_index is not None:
        pad_mask = target.eq(ignore_index)
        nll_loss = nll_loss.masked_fill(pad_mask, 0.0)
        smooth_loss = smooth_loss.masked_fill(pad_mask, 0.0)
    if reduce:
        nll_loss = nll_loss.sum()
        smooth_loss = smooth_loss.sum()
    eps_i = epsilon / (V - 1)
    loss = (1.0 - epsilon - eps_i) * nll_loss + eps_i * smooth_loss
    return loss, nll_loss


class SequenceLoss(NamedTuple):
    """Result of :func:`sequence_loss` (sums over the non-padding target tokens).

    Attributes:
        loss: () label-smoothed loss, summed.
        nll_loss: () negative log-likelihood, summed (no gradient needed; it keeps one).
        ntokens: number of non-padding target tokens.
        n_correct: () number of non-padding tokens whose argmax is the target (no gradient).
    """

    loss: torch.Tensor
    nll_loss: torch.Tensor
    ntokens: int
    n_correct: torch.Tensor


def sequence_loss(logits: torch.Tensor, target: torch.Tensor, padding_idx: int,
                  epsilon: float = 0.0, ignore_prefix_size: int = 0) -> SequenceLoss:
    """Label-smoothed cross-entropy of decoder logits, summed over non-padding tokens.

    Args:
        logits: (B, T, V) decoder output (log-softmax is taken in float32).
        target: (B, T) gold tokens, padded with ``padding_idx``.
        padding_idx: padding symbol, ignored.
        epsilon: label smoothing (0 = plain cross-entropy).
        ignore_prefix_size: leave out the first tokens of every target (e.g. a language tag
            the decoder is forced to produce), as fairseq's ``--ignore-prefix-size``.

    Returns:
        :class:`SequenceLoss`.
    """
    if ignore_prefix_size > 0:
        logits = logits[:, ignore_prefix_size:]  # (B, T', V)
        target = target[:, ignore_prefix_size:]  # (B, T')
    lprobs = F.log_softmax(logits.float(), dim=-1)  # (B, T', V)
    loss, nll_loss = label_smoothed_nll_loss(lprobs, target, epsilon, ignore_index=padding_idx)
    keep = target.ne(padding_idx)  # (B, T')
    with torch.no_grad():
        n_correct = (lprobs.argmax(dim=-1).eq(target) & keep).sum()
    return SequenceLoss(loss, nll_loss, int(keep.sum()), n_correct)

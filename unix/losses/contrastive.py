"""Contrastive (InfoNCE) and image-text matching (ITM) objectives, as pure functions.

Symmetric InfoNCE (CLIP) aligns two batches of paired embeddings: images and their captions, or
sentences and their translations (cross-lingual, text-text). Negatives come from every worker:
the embeddings of all ranks are gathered, so the loss with ``N`` workers equals the loss on the
concatenated batch of one worker.

Distributed convention (the one :func:`contrastive_loss` implements, checked by
``tests/unix/test_distributed_contrastive.py``):

* the gather is open_clip's ``gather_features(local_loss=False, gather_with_grad=False)``: the
  other ranks' embeddings are constants, this rank's own rows keep their autograd graph;
* every rank computes the full ``(N*B, N*B)`` similarity matrix, so the **loss value** on every
  rank equals the single-process loss on the concatenated batch (a mean over ``N*B`` pairs);
* the **gradient w.r.t. this rank's embeddings** equals the single-process gradient w.r.t. those
  rows (the other rows enter only as constants, so nothing is counted twice);
* the gradient reaching ``logit_scale`` is divided by ``N`` (its value is unchanged), because
  every rank sees the whole matrix.

Hence **summing** parameter gradients over ranks (fairseq's convention: it sums and divides by
the total ``sample_size``) gives exactly the single-process gradient of every parameter; plain
DDP *averages*, which gives ``1/N`` of it (multiply the loss by ``N`` there). Local batch sizes
may differ between ranks (fairseq batches by tokens): rows are padded for the collective and cut.

ITM (ALBEF, CCLM): for each image a negative text is drawn with probability proportional to the
softmax of its contrastive similarities, the positive excluded, and vice versa; the fusion
encoder then classifies positive and negative pairs. Negatives are drawn from the local batch
(the fusion encoder needs the raw inputs, which only this rank has).
"""

from __future__ import annotations

import logging
import math
from typing import NamedTuple, Optional, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn.functional as F

logger = logging.getLogger(__name__)

LOG_MAX_SCALE = math.log(100.0)  # CLIP clamps the inverse temperature to at most 100


# -- distributed helpers ---------------------------------------------------------------------------
def distributed_world_size(group=None) -> int:
    """Number of ranks in ``group``; 1 when torch.distributed is not initialised."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


def gather_features(x: torch.Tensor, group=None) -> Tuple[torch.Tensor, int]:
    """All-gather rows of every rank, keeping the gradient of the local rows.

    Ranks may hold different numbers of rows; they are padded to the largest for the collective
    and cut back. A no-op when torch.distributed is not initialised (or has one rank).

    Args:
        x: (B_r, ...) this rank's rows.
        group: process group (default: the world).

    Returns:
        ``(all_x, offset)``: ``all_x`` (sum_r B_r, ...) the rows of rank 0, 1, ... in order, where
        only this rank's slice ``all_x[offset:offset + B_r]`` carries a gradient (it *is* ``x``).
    """
    world = distributed_world_size(group)
    if world == 1:
        return x, 0
    rank = dist.get_rank(group)
    size = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size, group=group)
    sizes_l = [int(s.item()) for s in sizes]
    padded = x.detach().new_zeros((max(sizes_l),) + tuple(x.shape[1:]))
    padded[: x.shape[0]] = x.detach()
    bufs = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(bufs, padded, group=group)
    parts = [buf[:n] for buf, n in zip(bufs, sizes_l)]
    parts[rank] = x  # the local rows keep their graph
    return torch.cat(parts, dim=0), sum(sizes_l[:rank])


# -- temperature -----------------------------------------------------------------------------------
def logit_scale_value(logit_scale: Union[torch.Tensor, float], min_log: float = 0.0,
                      max_log: float = LOG_MAX_SCALE) -> torch.Tensor:
    """Inverse temperature ``exp(clamp(logit_scale, min_log, max_log))`` (a scalar tensor).

    The clamp in the forward stops the gradient outside the bounds; call
    :func:`clamp_logit_scale_` on the parameter after each optimizer step (as CLIP does) so that it
    never drifts out of the range where it can learn.
    """
    if not torch.is_tensor(logit_scale):
        logit_scale = torch.tensor(float(logit_scale))
    return logit_scale.clamp(min_log, max_log).exp()


@torch.no_grad()
def clamp_logit_scale_(param: torch.Tensor, min_log: float = 0.0, max_log: float = LOG_MAX_SCALE) -> None:
    """Clamp the ``logit_scale`` parameter in place to ``[min_log, max_log]``."""
    param.clamp_(min_log, max_log)


def global_logits(a: torch.Tensor, b: torch.Tensor, logit_scale: Union[torch.Tensor, float], gather: bool = True,
                  group=None, min_log_scale: float = 0.0, max_log_scale: float = LOG_MAX_SCALE,
                  rows: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, int, Optional[torch.Tensor]]:
    """Scaled similarities of the global batch, the part every contrastive loss here shares.

    Args:
        a: (B, E) embeddings; ``b``: (B, E) their pairs.
        logit_scale: () log inverse temperature, clamped to ``[min_log_scale, max_log_scale]``.
        gather: gather ``a``, ``b`` (and ``rows``) from all ranks (a no-op without torch.distributed).
        group: process group of the gather.
        rows: optional (B, ...) per-pair tensor gathered like ``a`` (RC3's relevance).

    Returns:
        ``(logits, offset, rows)``: (M, M) ``scale * a_all @ b_all.T`` in float32, the first global
        row of this rank's pairs, and ``rows`` of the global batch (M, ...).

    Raises:
        ValueError: if ``a`` and ``b`` are not two (B, E) tensors of one shape.
    """
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"expected two (B, E) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    world = distributed_world_size(group) if gather else 1
    scale = logit_scale_value(logit_scale, min_log_scale, max_log_scale).to(a.device)
    offset = 0
    if world > 1:
        a, offset = gather_features(a, group)  # (M, E)
        b, _ = gather_features(b, group)  # (M, E)
        if rows is not None:
            rows, _ = gather_features(rows, group)  # (M, ...)
        # every rank sees the whole matrix: give logit_scale 1/N of the gradient, same value
        scale = scale / world + (scale - scale / world).detach()
    return scale * (a.float() @ b.float().t()), offset, rows


def match_accuracy(logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fractions () of rows, and of columns, of (M, M) ``logits`` whose best match is their pair."""
    with torch.no_grad():
        y = torch.arange(logits.shape[0], device=logits.device)  # (M,)
        return (logits.argmax(dim=1) == y).float().mean(), (logits.argmax(dim=0) == y).float().mean()


# -- symmetric InfoNCE -----------------------------------------------------------------------------
class ContrastiveOutput(NamedTuple):
    """Result of :func:`contrastive_loss`.

    Attributes:
        loss: () mean of the two cross-entropies (a->b and b->a) over the global batch.
        acc_a2b: () fraction of rows of ``a`` whose best-scoring ``b`` is their pair (no grad).
        acc_b2a: () the same from ``b`` to ``a``.
        logits: (M, M) scaled similarities ``scale * a_all @ b_all.T`` of the global batch,
            ``M = sum_r B_r``; ``logits[offset:offset + B, offset:offset + B]`` is the local block
            (input of :func:`sample_hard_negatives`).
        offset: first global row of this rank's pairs.
    """

    loss: torch.Tensor
    acc_a2b: torch.Tensor
    acc_b2a: torch.Tensor
    logits: torch.Tensor
    offset: int


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, logit_scale: Union[torch.Tensor, float],
                     gather: bool = True, group=None, min_log_scale: float = 0.0,
                     max_log_scale: float = LOG_MAX_SCALE) -> ContrastiveOutput:
    """Symmetric InfoNCE between paired embeddings, with negatives from all workers.

    ``a[i]`` and ``b[i]`` are a positive pair (image and caption, or a sentence and its
    translation); every other ``b[j]`` of the global batch is a negative for ``a[i]`` and vice
    versa. ``loss = (CE(logits, y) + CE(logits.T, y)) / 2`` with ``y = arange(M)``.

    Args:
        a: (B, E) embeddings, L2-normalised (e.g. :meth:`UnixModel.encode_image`).
        b: (B, E) paired embeddings (e.g. :meth:`UnixModel.encode_text`).
        logit_scale: () learnable log inverse temperature (``UnixModel.logit_scale``), clamped
            to ``[min_log_scale, max_log_scale]`` (CLIP: inverse temperature at most 100).
        gather: gather negatives from all ranks (a no-op without torch.distributed).
        group: process group of the gather.

    Returns:
        :class:`ContrastiveOutput`; see the module docstring for the distributed convention.
    """
    logits, offset, _ = global_logits(a, b, logit_scale, gather, group, min_log_scale, max_log_scale)  # (M, M)
    y = torch.arange(logits.shape[0], device=logits.device)  # (M,)
    loss = 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.t(), y))
    acc_a2b, acc_b2a = match_accuracy(logits)
    return ContrastiveOutput(loss, acc_a2b, acc_b2a, logits, offset)


# -- image-text matching with hard negatives -----------------------------------------------------
class HardNegatives(NamedTuple):
    """Hard negatives of a local batch (see :func:`sample_hard_negatives`).

    Attributes:
        text_for_image: (B,) index of the negative text of each image.
        image_for_text: (B,) index of the negative image of each text.
        image_valid: (B,) bool, False where image ``i`` has no candidate (its index is then ``i``).
        text_valid: (B,) bool, the same for texts.
    """

    text_for_image: torch.Tensor
    image_for_text: torch.Tensor
    image_valid: torch.Tensor
    text_valid: torch.Tensor


def _sample_rows(sim: torch.Tensor, positive: torch.Tensor, generator: Optional[torch.Generator]):
    """One index per row of (B, B) ``sim`` ~ softmax over the non-positive columns."""
    B = sim.shape[0]
    logits = sim.float().masked_fill(positive, float("-inf"))  # (B, B)
    valid = ~positive.all(dim=1)  # (B,)
    logits = torch.where(valid[:, None], logits, torch.zeros_like(logits))  # rows without candidate
    probs = logits.softmax(dim=1)  # (B, B), exactly 0 at positives of valid rows
    idx = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)
    own = torch.arange(B, device=sim.device)
    return torch.where(valid, idx, own), valid


@torch.no_grad()
def sample_hard_negatives(sim: torch.Tensor, ids: Optional[torch.Tensor] = None,
                          generator: Optional[torch.Generator] = None) -> HardNegatives:
    """Sample one hard negative per image and per text from contrastive similarities.

    As ALBEF/CCLM: ``P(text j | image i) = softmax_j(sim[i, j])`` over the texts that are not a
    positive of image ``i``, and ``P(image i | text j) = softmax_i(sim[i, j])`` likewise. A
    positive is the pair itself and, when ``ids`` is given, any pair with the same id (e.g. the
    five captions of one COCO image in one batch). No gradient flows.

    Args:
        sim: (B, B) similarities of image ``i`` and text ``j`` (the scaled logits; the local
            block of :attr:`ContrastiveOutput.logits`).
        ids: (B,) optional sample ids; equal ids are positives of each other.
        generator: torch generator for reproducible sampling (on ``sim``'s device).

    Returns:
        :class:`HardNegatives`; rows where every candidate is a positive (B = 1, or all ids
        equal) are marked invalid and must be left out (:func:`itm_pairs` does).
    """
    if sim.dim() != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"expected a square (B, B) similarity matrix, got {tuple(sim.shape)}")
    B = sim.shape[0]
    eye = torch.eye(B, dtype=torch.bool, device=sim.device)
    positive = eye if ids is None else (ids[:, None] == ids[None, :]) | eye  # (B, B), symmetric
    text_for_image, image_valid = _sample_rows(sim, positive, generator)
    image_for_text, text_valid = _sample_rows(sim.t(), positive.t(), generator)
    if not bool(image_valid.all() and text_valid.all()):
        logger.debug("ITM: %d of %d rows have no negative candidate", int((~image_valid).sum()), B)
    return HardNegatives(text_for_image, image_for_text, image_valid, text_valid)


def itm_pairs(neg: HardNegatives) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Index the ITM pairs: B positives, then (image, negative text), then (negative image, text).

    Returns:
        ``(image_idx, text_idx, labels)``, each (P,) with ``P <= 3B``: the pair ``k`` is image
        ``image_idx[k]`` with text ``text_idx[k]``; ``labels`` is 1 for matching pairs, else 0.
        Rows without a valid negative are left out.
    """
    B = neg.text_for_image.shape[0]
    ar = torch.arange(B, device=neg.text_for_image.device)
    image_idx = torch.cat([ar, ar[neg.image_valid], neg.image_for_text[neg.text_valid]])
    text_idx = torch.cat([ar, neg.text_for_image[neg.image_valid], ar[neg.text_valid]])
    labels = torch.zeros_like(image_idx)
    labels[:B] = 1
    return image_idx, text_idx, labels


def itm_loss(logits: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Matching loss over pair logits, mean over pairs.

    Args:
        logits: (P, 2) two-way logits (index 1 = "match"), trained with cross-entropy, or (P,)
            single logits, trained with binary cross-entropy.
        labels: (P,) 1 for a matching pair, 0 otherwise.

    Returns:
        ``(loss, accuracy)``, two scalars; the accuracy has no gradient.
    """
    if logits.dim() == 2 and logits.shape[1] == 2:
        loss = F.cross_entropy(logits.float(), labels.long())
        pred = logits.argmax(dim=1)
    elif logits.dim() == 1:
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())
        pred = (logits > 0).long()
    else:
        raise ValueError(f"expected (P, 2) or (P,) logits, got {tuple(logits.shape)}")
    with torch.no_grad():
        acc = (pred == labels.long()).float().mean()
    return loss, acc

"""RC3's regularized cross-lingual visio-textual contrastive loss, as a pure function.

RC3 (Zhou et al., Findings of ACL 2023, arXiv 2305.07927) learns from *weakly-aligned*
multilingual image-text pairs: a photo with a caption written for it independently, in another
language, rather than a translation of its English caption. Its objective "constrains the
representation proximity of weakly-aligned visio-textual inputs according to textual relevance"
instead of pulling every pair as close as InfoNCE does.

**What is ours.** The stored copies of the paper reachable from this project hold its abstract
only, not the equations of its method section, so the definition below is this project's
reading of that sentence, not a transcription:

* every pair ``i`` of the (global) batch has a textual relevance ``r_i`` in ``[0, 1]``: how well
  its weak caption agrees with the photo's strictly-aligned (translated) caption (1 for a
  strictly-aligned pair; see :mod:`unix.data.relevance` for how it is computed here);
* InfoNCE's one-hot target of row ``i`` becomes the soft target
  ``q_i = r_i * onehot(i) + (1 - r_i) * uniform(M)``, the same for column ``i`` in the
  text-to-image direction. The loss is the cross-entropy with that target::

      L = 1/2 * [ mean_i -sum_j q_ij log softmax_j(s a_i.b_j)
                + mean_j -sum_i q_ji log softmax_i(s a_i.b_j) ]

  so a relevant pair is pulled fully together while a barely relevant one is held at a distance:
  the optimum of row ``i`` puts probability ``r_i + (1 - r_i) / M`` on its own pair, i.e. the
  relevance sets how close (relative to the negatives) the pair may come;
* with ``r_i = 1`` for every pair the target is one-hot and the loss **is** symmetric InfoNCE
  (:func:`unix.losses.contrastive.contrastive_loss`), which is how RC3 treats strictly-aligned
  pairs.

Another reading (a hinge that keeps the cosine of a weak pair below a relevance-dependent bound)
was considered and not implemented; the soft target keeps the InfoNCE form, its temperature and
its gathering of negatives.

Distributed convention: exactly that of :func:`~unix.losses.contrastive.contrastive_loss` (the
relevance is gathered along with the embeddings, without gradient), so the loss with ``N``
workers equals the loss on the concatenated batch; see ``unix/losses/contrastive.py``.
"""

from __future__ import annotations

import logging
from typing import Union

import torch
import torch.nn.functional as F

from unix.losses.contrastive import LOG_MAX_SCALE, ContrastiveOutput, global_logits, match_accuracy

logger = logging.getLogger(__name__)


def check_relevance(relevance: torch.Tensor, batch: int) -> None:
    """Raise ``ValueError`` unless ``relevance`` is a (batch,) tensor of finite values in [0, 1]."""
    if relevance.dim() != 1 or relevance.shape[0] != batch:
        raise ValueError(f"expected a ({batch},) relevance tensor, got {tuple(relevance.shape)}")
    bad = ~torch.isfinite(relevance) | (relevance < 0) | (relevance > 1)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(f"relevance must lie in [0, 1]; row {i} has {float(relevance[i])}")


def relevance_targets(relevance: torch.Tensor) -> torch.Tensor:
    """Soft targets of the relevance-regularized loss.

    Args:
        relevance: (M,) relevance of each pair, in [0, 1].

    Returns:
        (M, M) ``q`` with ``q[i] = r_i * onehot(i) + (1 - r_i) / M``; every row sums to 1.
    """
    M = relevance.shape[0]
    r = relevance.float()
    q = ((1.0 - r) / M)[:, None].expand(M, M).clone()  # (M, M)
    q.diagonal().add_(r)
    return q


def _soft_cross_entropy(log_probs: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-sum_j q_ij log_probs_ij`` with ``q`` from :func:`relevance_targets`.

    Written without the (M, M) target: ``r_i * (-log p_ii) + (1 - r_i) * mean_j(-log p_ij)``.
    """
    own = log_probs.diagonal()  # (M,)
    uniform = log_probs.mean(dim=1)  # (M,)
    return -(relevance * own + (1.0 - relevance) * uniform).mean()


def rc3_loss(a: torch.Tensor, b: torch.Tensor, relevance: torch.Tensor, logit_scale: Union[torch.Tensor, float],
             gather: bool = True, group=None, min_log_scale: float = 0.0,
             max_log_scale: float = LOG_MAX_SCALE) -> ContrastiveOutput:
    """Relevance-regularized symmetric contrastive loss (see the module docstring).

    Args:
        a: (B, E) image embeddings, L2-normalised (:meth:`UnixModel.encode_image`).
        b: (B, E) embeddings of their (weakly-aligned) captions (:meth:`UnixModel.encode_text`).
        relevance: (B,) textual relevance of each pair in [0, 1] (1 = strictly aligned); no
            gradient flows into it.
        logit_scale: () learnable log inverse temperature, clamped like
            :func:`~unix.losses.contrastive.contrastive_loss`.
        gather: gather embeddings and relevance from all ranks (a no-op without torch.distributed).
        group: process group of the gather.

    Returns:
        :class:`~unix.losses.contrastive.ContrastiveOutput`: ``loss`` (), the accuracies of the
        best match (), the (M, M) scaled ``logits`` of the global batch and this rank's
        ``offset``. With every relevance 1 it equals ``contrastive_loss(a, b, logit_scale)``.

    Raises:
        ValueError: on shapes that do not match or a relevance outside [0, 1].
    """
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"expected two (B, E) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    check_relevance(relevance, a.shape[0])
    relevance = relevance.detach().to(device=a.device, dtype=torch.float32)
    logits, offset, relevance = global_logits(a, b, logit_scale, gather, group, min_log_scale, max_log_scale,
                                              rows=relevance)  # (M, M), (M,)
    loss_a2b = _soft_cross_entropy(F.log_softmax(logits, dim=1), relevance)
    loss_b2a = _soft_cross_entropy(F.log_softmax(logits.t(), dim=1), relevance)
    loss = 0.5 * (loss_a2b + loss_b2a)
    acc_a2b, acc_b2a = match_accuracy(logits)
    return ContrastiveOutput(loss, acc_a2b, acc_b2a, logits, offset)

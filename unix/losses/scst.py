"""Self-critical sequence training (SCST): a policy-gradient loss on a sequence-level reward.

Rennie et al. (2017) fine-tune a captioner on its own outputs with the reward (CIDEr-D) of each
generated caption minus a baseline, instead of the likelihood of the references. Here the model
proposes ``K`` captions per image (beam search, as in the M2 Transformer and OFA, or sampling)
and the baseline of a candidate is the mean reward of the other ``K - 1`` candidates of the same
image (the leave-one-out baseline of Kool et al. 2019 / Luo 2020), or the reward of the greedy
caption (the original paper).

Example::

    token_lp = lprobs.gather(-1, cand[..., None]).squeeze(-1)      # (B*K, T)
    out = scst_loss(token_lp, cand.ne(pad), rewards)                 # rewards (B, K)
    (out.loss / B).backward()
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch


class ScstLoss(NamedTuple):
    """Result of :func:`scst_loss`.

    Attributes:
        loss: () ``-sum_{b,k} A_bk * logp_bk`` (a sum over candidates; divide by the batch size).
        advantage: (B, K) reward minus baseline (no gradient).
        seq_logprob: (B, K) log-probability of each candidate (summed or mean over its tokens).
    """

    loss: torch.Tensor
    advantage: torch.Tensor
    seq_logprob: torch.Tensor


def leave_one_out_baseline(rewards: torch.Tensor) -> torch.Tensor:
    """Mean reward of the other candidates of the same image.

    Args:
        rewards: (B, K) rewards, ``K >= 2``.

    Returns:
        (B, K) baseline ``b_bk = (sum_j r_bj - r_bk) / (K - 1)``.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (B, K), got {tuple(rewards.shape)}")
    K = rewards.shape[1]
    if K < 2:
        raise ValueError("the leave-one-out baseline needs at least 2 candidates per image")
    return (rewards.sum(dim=1, keepdim=True) - rewards) / (K - 1)


def scst_loss(token_logprobs: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor,
              baseline: Optional[torch.Tensor] = None, length_normalize: bool = False) -> ScstLoss:
    """Policy-gradient loss of ``K`` candidates per image.

    Args:
        token_logprobs: (B*K, T) log-probability of each candidate token (candidates of image
            ``b`` are rows ``b*K .. b*K+K-1``).
        mask: (B*K, T) True at real tokens (the final ``</s>`` included), False at padding.
        rewards: (B, K) reward of each candidate.
        baseline: (B, K) or (B, 1) baseline; ``None`` = :func:`leave_one_out_baseline`.
        length_normalize: use the mean token log-probability of a candidate instead of the sum.

    Returns:
        :class:`ScstLoss`.
    """
    B, K = rewards.shape
    if token_logprobs.shape != mask.shape or token_logprobs.shape[0] != B * K:
        raise ValueError(f"token_logprobs {tuple(token_logprobs.shape)}, mask {tuple(mask.shape)} and "
                         f"rewards {tuple(rewards.shape)} do not match (need B*K rows)")
    mask = mask.to(token_logprobs.dtype)
    seq = (token_logprobs * mask).sum(dim=1)  # (B*K,)
    if length_normalize:
        seq = seq / mask.sum(dim=1).clamp(min=1.0)
    seq = seq.view(B, K)
    with torch.no_grad():
        base = leave_one_out_baseline(rewards) if baseline is None else baseline.expand(B, K)
        advantage = (rewards - base).to(seq.dtype)
    loss = -(advantage * seq).sum()
    return ScstLoss(loss, advantage, seq.detach())

"""Multi-head attention on ``torch.nn.functional.scaled_dot_product_attention``.

Supports key padding masks, causal self-attention, and a key/value cache for incremental
decoding (self-attention appends one step; cross-attention computes its keys once). In
cross-attention, consecutive query rows may share one memory row (the beams of a sentence in
beam search): keys and values are then computed, cached and read once per memory row.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

Cache = Dict[str, torch.Tensor]


class MultiheadAttention(nn.Module):
    """Attention with separate q/k/v projections.

    Args:
        dim: model width ``D``.
        heads: number of heads ``H`` (``D % H == 0``).
        dropout: attention-probability dropout (training only).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embed dim {dim} is not divisible by {heads} heads")
        self.dim, self.heads, self.dropout = dim, heads, dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        for lin in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(lin.weight, gain=2 ** -0.5)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.heads, self.dim // self.heads).transpose(1, 2)  # (B, H, T, Dh)

    def forward(
        self,
        query: torch.Tensor,
        key: Optional[torch.Tensor] = None,
        key_padding_mask: Optional[torch.Tensor] = None,
        causal: bool = False,
        cache: Optional[Cache] = None,
        static_kv: bool = False,
    ) -> torch.Tensor:
        """Attend from ``query`` to ``key`` (self-attention when ``key`` is None).

        Args:
            query: (B, T, D).
            key: (B, S, D) memory for cross-attention, or None; or (B / r, S, D): each memory row
                serves ``r`` consecutive query rows (with ``static_kv``).
            key_padding_mask: (B, S) (or (B / r, S)) bool, True at padding positions of the keys.
            causal: mask future positions (self-attention over full sequences only).
            cache: dict updated in place with ``k``/``v`` of shape (B, H, S, Dh); with
                ``static_kv`` the memory keys are computed once and reused.
            static_kv: the keys do not change between steps (cross-attention).

        Returns:
            (B, T, D).
        """
        B, T, _ = query.shape
        q = self._split(self.q_proj(query))
        if cache is not None and static_kv and "k" in cache:
            k, v = cache["k"], cache["v"]
        else:
            src = query if key is None else key
            k, v = self._split(self.k_proj(src)), self._split(self.v_proj(src))
            if cache is not None:
                if not static_kv and "k" in cache:
                    k = torch.cat([cache["k"], k], dim=2)
                    v = torch.cat([cache["v"], v], dim=2)
                cache["k"], cache["v"] = k, v
        shared = 1  # query rows per key row
        if k.shape[0] != B:
            if not static_kv or B % k.shape[0]:
                raise ValueError(f"{B} query rows cannot share {k.shape[0]} memory rows")
            shared = B // k.shape[0]
            # (B, H, T, Dh) -> (B/r, H, r*T, Dh): a memory row's queries attend together
            q = q.view(k.shape[0], shared, self.heads, T, -1).transpose(1, 2).reshape(k.shape[0], self.heads,
                                                                                        shared * T, -1)
        mask = None
        if key_padding_mask is not None:
            mask = ~key_padding_mask[:, None, None, :]  # (B, 1, 1, S), True = attend
        use_causal = causal and cache is None and T > 1
        if use_causal and mask is not None:
            S = k.shape[2]
            mask = mask & torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)
            use_causal = False
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0, is_causal=use_causal
        )  # (B, H, T, Dh)
        if shared > 1:
            y = y.view(k.shape[0], self.heads, shared, T, -1).transpose(1, 2).reshape(B, self.heads, T, -1)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, self.dim))

"""Transformer building blocks: positions, encoder layer, decoder layer."""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from unix.modules.attention import MultiheadAttention


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal position embeddings (as in fairseq's Transformer)."""

    def __init__(self, dim: int, max_positions: int):
        super().__init__()
        half = dim // 2
        freq = torch.exp(torch.arange(half, dtype=torch.float) * -(math.log(10000.0) / max(half - 1, 1)))
        ang = torch.arange(max_positions, dtype=torch.float)[:, None] * freq[None, :]
        table = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)
        if dim % 2:
            table = torch.cat([table, torch.zeros(max_positions, 1)], dim=1)
        self.register_buffer("table", table, persistent=False)  # (P, D)
        self.max_positions = max_positions

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        """Return (length, D) embeddings of positions ``offset .. offset+length-1``."""
        if offset + length > self.max_positions:
            raise ValueError(f"sequence of {offset + length} tokens exceeds max_positions={self.max_positions}")
        return self.table[offset: offset + length]

    def for_padded(self, padding_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) padding mask -> (B, T, D) embeddings counting only real tokens (any side padded)."""
        ids = ((~padding_mask).long().cumsum(dim=1) - 1).clamp(min=0)
        if padding_mask.shape[1] > self.max_positions:
            raise ValueError(f"sequence of {padding_mask.shape[1]} tokens exceeds max_positions={self.max_positions}")
        return self.table[ids]


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, activation_dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.activation_dropout = activation_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.dropout(F.relu(self.fc1(x)), self.activation_dropout, self.training)
        return self.fc2(h)


class EncoderLayer(nn.Module):
    """Self-attention + feed-forward, pre- or post-norm."""

    def __init__(self, dim: int, ffn_dim: int, heads: int, dropout: float = 0.1,
                 attention_dropout: float = 0.0, activation_dropout: float = 0.0,
                 normalize_before: bool = False):
        super().__init__()
        self.attn = MultiheadAttention(dim, heads, attention_dropout)
        self.attn_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim, activation_dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.dropout = dropout
        self.normalize_before = normalize_before

    def _block(self, x, norm, fn):
        h = norm(x) if self.normalize_before else x
        x = x + F.dropout(fn(h), self.dropout, self.training)
        return x if self.normalize_before else norm(x)

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, T, D); padding_mask: (B, T) True at padding. Returns (B, T, D)."""
        x = self._block(x, self.attn_norm, lambda h: self.attn(h, key_padding_mask=padding_mask))
        return self._block(x, self.ffn_norm, self.ffn)


class DecoderLayer(EncoderLayer):
    """Causal self-attention + cross-attention + feed-forward."""

    def __init__(self, dim: int, ffn_dim: int, heads: int, dropout: float = 0.1,
                 attention_dropout: float = 0.0, activation_dropout: float = 0.0,
                 normalize_before: bool = False):
        super().__init__(dim, ffn_dim, heads, dropout, attention_dropout, activation_dropout, normalize_before)
        self.cross_attn = MultiheadAttention(dim, heads, attention_dropout)
        self.cross_norm = nn.LayerNorm(dim)

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_padding_mask: Optional[torch.Tensor] = None,
        cache: Optional[Dict[str, Dict[str, torch.Tensor]]] = None,
    ) -> torch.Tensor:
        """x: (B, T, D); memory: (B, S, D); memory_padding_mask: (B, S). Returns (B, T, D).

        With ``cache`` (a dict with ``self`` and ``cross`` sub-dicts), ``x`` holds only the new
        step(s) and keys/values of earlier steps come from the cache.
        """
        self_cache = None if cache is None else cache.setdefault("self", {})
        cross_cache = None if cache is None else cache.setdefault("cross", {})
        x = self._block(x, self.attn_norm, lambda h: self.attn(h, causal=True, cache=self_cache))
        x = self._block(x, self.cross_norm, lambda h: self.cross_attn(
            h, memory, key_padding_mask=memory_padding_mask, cache=cross_cache, static_kv=True))
        return self._block(x, self.ffn_norm, self.ffn)

"""Transformer decoder with a key/value cache for incremental (beam) decoding."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from unix.config import UnixConfig
from unix.models.encoder import EncoderOut, make_layers
from unix.modules.layers import DecoderLayer, SinusoidalPositions

Cache = Dict[str, Any]


class UnixDecoder(nn.Module):
    """Autoregressive decoder over the encoder memory.

    Args:
        cfg: model configuration.
        embed_tokens: target token embedding (V, D).
        padding_idx: index of the padding symbol.
    """

    def __init__(self, cfg: UnixConfig, embed_tokens: nn.Embedding, padding_idx: int):
        super().__init__()
        self.cfg = cfg
        self.padding_idx = padding_idx
        self.embed_tokens = embed_tokens
        self.embed_scale = math.sqrt(cfg.embed_dim)
        self.positions = SinusoidalPositions(cfg.embed_dim, cfg.max_positions)
        self.layers = make_layers(cfg, cfg.decoder_layers, DecoderLayer)
        self.final_norm = nn.LayerNorm(cfg.embed_dim) if cfg.normalize_before else None
        if cfg.share_all_embeddings:
            self.output_projection = None
        else:
            self.output_projection = nn.Linear(cfg.embed_dim, embed_tokens.num_embeddings, bias=False)
            nn.init.normal_(self.output_projection.weight, std=cfg.embed_dim ** -0.5)

    def forward(self, prev_output_tokens: torch.Tensor, encoder_out: EncoderOut,
                cache: Optional[Cache] = None, features_only: bool = False) -> torch.Tensor:
        """Predict the next tokens.

        Args:
            prev_output_tokens: (B, T) decoder input (``</s>`` then the target shifted right).
            encoder_out: output of :class:`UnixEncoder` (``out`` (B, S, D), ``padding_mask``).
            cache: incremental state (a dict, filled in place). With a cache,
                ``prev_output_tokens`` holds the whole prefix and only its last step is computed.
            features_only: return the last hidden states (B, T, D) instead of logits.

        Returns:
            (B, T, V) logits, (B, 1, V) with a cache.
        """
        offset = 0
        if cache is not None:
            offset = prev_output_tokens.shape[1] - 1
            prev_output_tokens = prev_output_tokens[:, -1:]
        T = prev_output_tokens.shape[1]
        x = self.embed_scale * self.embed_tokens(prev_output_tokens) + self.positions(T, offset)
        x = F.dropout(x, self.cfg.dropout, self.training)
        memory, memory_pad = encoder_out["out"], encoder_out["padding_mask"]
        for i, layer in enumerate(self.layers):
            layer_cache = None if cache is None else cache.setdefault(f"layer{i}", {})
            x = layer(x, memory, memory_pad, layer_cache)
        if self.final_norm is not None:
            x = self.final_norm(x)
        if features_only:
            return x
        return self.output_layer(x)

    def output_layer(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, V)."""
        if self.output_projection is None:
            return F.linear(x, self.embed_tokens.weight)
        return self.output_projection(x)


def reorder_cache(cache: Cache, new_order: torch.Tensor) -> Cache:
    """Reorder every cached tensor along the batch dimension, in place; returns ``cache``."""
    for key, value in cache.items():
        if torch.is_tensor(value):
            cache[key] = value.index_select(0, new_order)
        elif isinstance(value, dict):
            reorder_cache(value, new_order)
    return cache

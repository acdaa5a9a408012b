"""The unix image-text encoder-decoder, in plain PyTorch.

Example::

    from unix import UnixConfig, UnixModel
    model = UnixModel(UnixConfig.from_arch("unix_tiny", image_feature_dim=64), vocab_size=100, padding_idx=1)
    enc = model.encode(src_tokens, image_features=feats, image_mask=has_image)
    logits = model.decode(prev_output_tokens, enc)            # (B, T, V)
    img_emb = model.encode_image(features=feats)              # (B, E), needs embed_proj_dim > 0
"""

from __future__ import annotations

import logging
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from unix.config import UnixConfig
from unix.models.decoder import Cache, UnixDecoder, reorder_cache
from unix.models.encoder import EncoderOut, UnixEncoder, reorder_encoder_out

logger = logging.getLogger(__name__)


def masked_mean(x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean over dim 1 of (B, T, D), ignoring padding (B, T) -> (B, D)."""
    if padding_mask is None:
        return x.mean(dim=1)
    keep = (~padding_mask).unsqueeze(-1).to(x.dtype)
    return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


class UnixModel(nn.Module):
    """Image-text encoder-decoder.

    Args:
        cfg: configuration (see :class:`unix.config.UnixConfig`).
        vocab_size: size ``V`` of the shared vocabulary.
        padding_idx: padding index in that vocabulary.
        encoder, decoder: existing parts to assemble (used by the fairseq adapter).
    """

    def __init__(self, cfg: UnixConfig, vocab_size: int, padding_idx: int,
                 encoder: Optional[UnixEncoder] = None, decoder: Optional[UnixDecoder] = None):
        super().__init__()
        self.cfg = cfg
        self.padding_idx = padding_idx
        if encoder is None or decoder is None:
            embed = build_embedding(vocab_size, cfg.embed_dim, padding_idx)
            dec_embed = embed if cfg.share_all_embeddings else build_embedding(vocab_size, cfg.embed_dim, padding_idx)
            encoder = UnixEncoder(cfg, embed, padding_idx)
            decoder = UnixDecoder(cfg, dec_embed, padding_idx)
        self.encoder = encoder
        self.decoder = decoder
        if cfg.embed_proj_dim > 0:
            self.image_head = nn.Linear(cfg.embed_dim, cfg.embed_proj_dim, bias=False)
            self.text_head = nn.Linear(cfg.embed_dim, cfg.embed_proj_dim, bias=False)
            self.logit_scale = nn.Parameter(torch.tensor(2.6592))  # log(1 / 0.07), as CLIP
        else:
            self.image_head = self.text_head = self.logit_scale = None
        self.itm_head = nn.Linear(cfg.embed_dim, 2) if cfg.itm_head else None

    # -- generation path -----------------------------------------------------------------------
    def encode(self, src_tokens: torch.Tensor, images: Optional[torch.Tensor] = None,
               image_features: Optional[torch.Tensor] = None,
               image_mask: Optional[torch.Tensor] = None,
               duplicate_of: Optional[torch.Tensor] = None) -> EncoderOut:
        """See :meth:`UnixEncoder.forward`."""
        return self.encoder(src_tokens, images=images, image_features=image_features, image_mask=image_mask,
                            duplicate_of=duplicate_of)

    def decode(self, prev_output_tokens: torch.Tensor, encoder_out: EncoderOut,
               cache: Optional[Cache] = None) -> torch.Tensor:
        """(B, T) decoder input -> (B, T, V) logits; see :meth:`UnixDecoder.forward`."""
        return self.decoder(prev_output_tokens, encoder_out, cache)

    def forward(self, src_tokens: torch.Tensor, prev_output_tokens: torch.Tensor,
                images: Optional[torch.Tensor] = None, image_features: Optional[torch.Tensor] = None,
                image_mask: Optional[torch.Tensor] = None,
                duplicate_of: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Teacher-forced logits (B, T, V)."""
        return self.decode(prev_output_tokens,
                           self.encode(src_tokens, images, image_features, image_mask, duplicate_of))

    @staticmethod
    def reorder_encoder_out(encoder_out: EncoderOut, new_order: torch.Tensor) -> EncoderOut:
        return reorder_encoder_out(encoder_out, new_order)

    @staticmethod
    def reorder_cache(cache: Cache, new_order: torch.Tensor) -> Cache:
        return reorder_cache(cache, new_order)

    @torch.no_grad()
    def greedy_decode(self, src_tokens: torch.Tensor, bos: int, eos: int, max_len: int = 50,
                      **image_inputs) -> torch.Tensor:
        """Greedy decoding with the cache (a fairseq-free check of the model): (B, <=max_len)."""
        enc = self.encode(src_tokens, **image_inputs)
        B = src_tokens.shape[0]
        out = torch.full((B, 1), bos, dtype=torch.long, device=src_tokens.device)
        done = torch.zeros(B, dtype=torch.bool, device=src_tokens.device)
        cache: Cache = {}
        for _ in range(max_len):
            nxt = self.decode(out, enc, cache)[:, -1].argmax(-1)
            nxt = nxt.masked_fill(done, self.padding_idx)
            out = torch.cat([out, nxt[:, None]], dim=1)
            done |= nxt.eq(eos)
            if done.all():
                break
        return out[:, 1:]

    # -- embeddings for contrastive objectives -------------------------------------------------
    def _check_heads(self):
        if self.image_head is None:
            raise RuntimeError("pooled embeddings need embed_proj_dim > 0 (contrastive heads)")

    def encode_image(self, images: Optional[torch.Tensor] = None, features: Optional[torch.Tensor] = None,
                     normalize: bool = True) -> torch.Tensor:
        """Pooled image embedding (B, E) from pixels (B, 3, H, W) or features (B, N, C)."""
        self._check_heads()
        vis = self.encoder.encode_visual_tokens(images=images, features=features)  # (B, N, D)
        emb = self.image_head(vis.mean(dim=1))
        return F.normalize(emb, dim=-1) if normalize else emb

    def encode_text(self, src_tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Pooled text embedding (B, E) from the text encoder over (B, T) tokens."""
        self._check_heads()
        text, pad = self.encoder.encode_text_tokens(src_tokens)
        emb = self.text_head(masked_mean(text, pad))
        return F.normalize(emb, dim=-1) if normalize else emb

    def match_logits(self, src_tokens: torch.Tensor, images: Optional[torch.Tensor] = None,
                     image_features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Image-text matching logits (B, 2) (index 1 = "match"), needs ``cfg.itm_head``.

        The fused encoder output over ``[visual; text]`` is mean-pooled over its non-padding
        positions and classified by ``itm_head``.

        Args:
            src_tokens: (B, T) text tokens (language tag first).
            images: (B, 3, H, W) pixels, or
            image_features: (B, N, C) cached features; every row has an image.
        """
        if self.itm_head is None:
            raise RuntimeError("image-text matching needs a model built with itm_head=True")
        enc = self.encode(src_tokens, images=images, image_features=image_features)
        return self.itm_head(masked_mean(enc["out"], enc["padding_mask"]))  # (B, 2)


def build_embedding(vocab_size: int, dim: int, padding_idx: int) -> nn.Embedding:
    emb = nn.Embedding(vocab_size, dim, padding_idx=padding_idx)
    nn.init.normal_(emb.weight, mean=0, std=dim ** -0.5)
    nn.init.constant_(emb.weight[padding_idx], 0)
    return emb

"""Text encoder + cross-modal encoder.

Text tokens ``(B, T)`` pass through ``text_layers`` text-only layers. Visual tokens ``(B, N, D)``
of the samples that have an image are concatenated in front of them, both get a modality
embedding, and ``fusion_layers`` layers attend over ``[visual; text]`` with one padding mask.
A sample without an image has its visual positions masked, so it is encoded from text alone;
a batch without any image skips the visual part entirely.

With ``cfg.image_fusion == "gated"`` (Revisit-MMT's gated fusion) no visual token is made: all
layers run on the text, then one pooled image vector is added to the output through a sigmoid
gate (:class:`unix.modules.gated_fusion.GatedImageFusion`); rows without an image are left as they are.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from unix.config import UnixConfig
from unix.models.image_encoder import ImageEncoder
from unix.modules.gated_fusion import GatedImageFusion
from unix.modules.layers import EncoderLayer, SinusoidalPositions

EncoderOut = Dict[str, Optional[torch.Tensor]]

IMAGE, TEXT = 0, 1  # modality ids


def make_layers(cfg: UnixConfig, n: int, cls=EncoderLayer) -> nn.ModuleList:
    return nn.ModuleList(
        cls(cfg.embed_dim, cfg.ffn_dim, cfg.heads, cfg.dropout, cfg.attention_dropout,
            cfg.activation_dropout, cfg.normalize_before) for _ in range(n)
    )


class UnixEncoder(nn.Module):
    """Encodes text tokens and optional images into one memory for the decoder.

    Args:
        cfg: model configuration.
        embed_tokens: token embedding (V, D), shared with the decoder when tied.
        padding_idx: index of the padding symbol.
    """

    def __init__(self, cfg: UnixConfig, embed_tokens: nn.Embedding, padding_idx: int):
        super().__init__()
        self.cfg = cfg
        self.padding_idx = padding_idx
        self.embed_tokens = embed_tokens
        self.embed_scale = math.sqrt(cfg.embed_dim)
        self.positions = SinusoidalPositions(cfg.embed_dim, cfg.max_positions)
        self.text_layers = make_layers(cfg, cfg.text_layers)
        self.modality = nn.Embedding(2, cfg.embed_dim)
        nn.init.normal_(self.modality.weight, std=0.02)
        self.fusion_layers = make_layers(cfg, cfg.fusion_layers)
        self.final_norm = nn.LayerNorm(cfg.embed_dim) if cfg.normalize_before else None
        has_images = bool(cfg.image_encoder) or cfg.image_feature_dim > 0
        self.gated = cfg.image_fusion == "gated"
        self.image_encoder = ImageEncoder(
            cfg.embed_dim, cfg.image_encoder, cfg.image_weights, cfg.freeze_image_encoder,
            cfg.image_feature_dim, cfg.max_visual_tokens, cfg.image_pool_stages,
            tokens=not self.gated) if has_images else None
        self.image_gate = GatedImageFusion(cfg.embed_dim) if self.gated and has_images else None

    # -- parts ---------------------------------------------------------------------------------
    def encode_text_tokens(self, src_tokens: torch.Tensor):
        """(B, T) token ids -> text-encoder states (B, T, D) and padding mask (B, T)."""
        pad = src_tokens.eq(self.padding_idx)
        x = self.embed_scale * self.embed_tokens(src_tokens) + self.positions.for_padded(pad)
        x = F.dropout(x, self.cfg.dropout, self.training)
        for layer in self.text_layers:
            x = layer(x, pad)
        return x, pad

    def encode_visual_tokens(self, images: Optional[torch.Tensor] = None,
                             features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Pixels (B, 3, H, W) or features (B, N, C) -> visual tokens (B, N, D)."""
        if self.image_encoder is None:
            raise RuntimeError("this model was built without an image encoder "
                               "(set image_encoder or image_feature_dim)")
        return self.image_encoder(images=images, features=features)

    # -- full encoder --------------------------------------------------------------------------
    def forward(self, src_tokens: torch.Tensor, images: Optional[torch.Tensor] = None,
                image_features: Optional[torch.Tensor] = None,
                image_mask: Optional[torch.Tensor] = None,
                duplicate_of: Optional[torch.Tensor] = None) -> EncoderOut:
        """Encode a batch.

        Args:
            src_tokens: (B, T) source ids (language tag first), padded with ``padding_idx``.
            images: (B, 3, H, W) pixels, rows without an image are ignored.
            image_features: (B, N, C) precomputed backbone features, instead of ``images``.
            image_mask: (B,) bool, True where the sample has an image (default: all, when
                images or features are given).
            duplicate_of: (B,) long, row ``i`` has the same input as row ``duplicate_of[i]``, a
                row that is its own ``duplicate_of`` (e.g. several captions of one photo in one
                language): only those rows are encoded, the others get a copy of their output
                (in training they then share dropout masks). See :func:`unix.data.collate.duplicate_index`.

        Returns:
            dict with ``out`` (B, N+T, D) memory, ``padding_mask`` (B, N+T) True at padding,
            ``text`` (B, T, D) text-encoder states and ``text_padding_mask`` (B, T). With gated
            fusion ``N = 0``: ``out`` is (B, T, D).
        """
        if duplicate_of is not None:
            return self._forward_unique(duplicate_of, src_tokens, images, image_features, image_mask)
        text, text_pad = self.encode_text_tokens(src_tokens)
        x = text + self.modality.weight[TEXT]
        pad = text_pad
        pixels_or_feats = image_features if image_features is not None else images
        if pixels_or_feats is not None and image_mask is None:
            image_mask = torch.ones(src_tokens.shape[0], dtype=torch.bool, device=src_tokens.device)
        if pixels_or_feats is not None and not self.gated:
            B = src_tokens.shape[0]
            if image_mask.any():
                rows = image_mask.nonzero(as_tuple=True)[0]
                if image_features is not None:
                    vis_rows = self.encode_visual_tokens(features=image_features[rows])
                else:
                    vis_rows = self.encode_visual_tokens(images=images[rows])
                vis = vis_rows.new_zeros(B, vis_rows.shape[1], vis_rows.shape[2]).index_copy(0, rows, vis_rows)
                vis = vis + self.modality.weight[IMAGE]
                vis_pad = ~image_mask[:, None].expand(B, vis.shape[1])
                x = torch.cat([vis.to(x.dtype), x], dim=1)
                pad = torch.cat([vis_pad, text_pad], dim=1)
        for layer in self.fusion_layers:
            x = layer(x, pad)
        if self.final_norm is not None:
            x = self.final_norm(x)
        if self.gated and pixels_or_feats is not None and image_mask.any():
            x = self._gate_image(x, images, image_features, image_mask)
        return {"out": x, "padding_mask": pad, "text": text, "text_padding_mask": text_pad}

    def _gate_image(self, x: torch.Tensor, images: Optional[torch.Tensor], image_features: Optional[torch.Tensor],
                    image_mask: torch.Tensor) -> torch.Tensor:
        """Gated fusion: (B, T, D) encoder output + gated pooled image vector of the rows with an image."""
        if self.image_encoder is None:
            raise RuntimeError("this model was built without an image encoder "
                               "(set image_encoder or image_feature_dim)")
        rows = image_mask.nonzero(as_tuple=True)[0]
        if image_features is not None:
            vec_rows = self.image_encoder.pooled(features=image_features[rows])
        else:
            vec_rows = self.image_encoder.pooled(images=images[rows])
        vec = vec_rows.new_zeros(x.shape[0], vec_rows.shape[1]).index_copy(0, rows, vec_rows)  # (B, D)
        return self.image_gate(x, vec, image_mask)[0]

    def _forward_unique(self, duplicate_of: torch.Tensor, src_tokens: torch.Tensor, *image_inputs) -> EncoderOut:
        """Encode the U distinct rows of a (B, ...) batch once, then copy their outputs to all B rows."""
        B = src_tokens.shape[0]
        rows = torch.arange(B, device=src_tokens.device)
        if duplicate_of.shape != (B,) or not torch.equal(duplicate_of[duplicate_of], duplicate_of):
            raise ValueError("duplicate_of must map every row of the batch to a row that maps to itself")
        keep = (duplicate_of == rows).nonzero(as_tuple=True)[0]  # (U,)
        slot = torch.full_like(rows, -1).index_copy(0, keep, torch.arange(len(keep), device=rows.device))
        sub = [None if t is None else t.index_select(0, keep) for t in image_inputs]
        enc = self.forward(src_tokens.index_select(0, keep), *sub)
        return reorder_encoder_out(enc, slot[duplicate_of])  # (B, ...)


def reorder_encoder_out(enc: EncoderOut, new_order: torch.Tensor) -> EncoderOut:
    """Select batch rows (e.g. repeat each sample for its beams): every tensor on dim 0."""
    return {k: (v.index_select(0, new_order) if torch.is_tensor(v) else v) for k, v in enc.items()}

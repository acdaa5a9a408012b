"""Gated fusion of one image vector into the text encoder's output (Wu et al., ACL 2021).

Revisit-MMT's "gated fusion" (``fairseq/models/gated.py`` of LividWo/Revisit-MMT): the encoder runs
on the text alone; a pooled image vector ``v`` (their ResNet-50 average pool through a linear
layer) is added to every text state ``h_t`` through a gate computed from both::

    lambda_t = sigmoid(W [h_t; v] + b)          (B, T, D), one gate per position and channel
    out_t    = h_t + lambda_t * v

Here a sample without an image keeps ``out_t = h_t`` exactly (their data had an image for every
sentence; here only some have one).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn


class GatedImageFusion(nn.Module):
    """``out = text + sigmoid(W [text; image]) * image``, rows without an image unchanged.

    Args:
        dim: model width ``D``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.gate_dense = nn.Linear(2 * dim, dim)

    def forward(self, text: torch.Tensor, image: torch.Tensor,
                image_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Fuse.

        Args:
            text: (B, T, D) encoder states.
            image: (B, D) one projected image vector per sample (any value where there is no image).
            image_mask: (B,) bool, True where the sample has an image (default: all).

        Returns:
            ``(out, gate)``: (B, T, D) fused states, and the (B, T, D) gate values in (0, 1),
            zero on the rows without an image.
        """
        if image.dim() != 2 or image.shape[0] != text.shape[0] or image.shape[1] != text.shape[2]:
            raise ValueError(f"image vectors of shape {tuple(image.shape)} do not fit text states "
                             f"{tuple(text.shape)}: expected (B, D)")
        v = image.to(text.dtype)[:, None, :].expand_as(text)  # (B, T, D)
        gate = torch.sigmoid(self.gate_dense(torch.cat([text, v], dim=-1)))
        if image_mask is not None:
            gate = gate * image_mask.to(gate.dtype)[:, None, None]
        return text + gate * v, gate

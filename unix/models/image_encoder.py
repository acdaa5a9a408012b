"""Image encoder: any timm backbone (CNN or ViT) -> a sequence of visual tokens.

The backbone's feature map ``(B, C, h, w)`` (CNN) or token sequence ``(B, N, C)`` (ViT) becomes
``(B, N, D)`` visual tokens through a linear projection, plus learned visual positions. Features
computed earlier (see :mod:`unix.data.feature_cache`) can be given instead of pixels; they take
the same projection, so a model trained on cached features runs on pixels with the same backbone.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

logger = logging.getLogger(__name__)


def create_backbone(name: str, weights: str = "") -> nn.Module:
    """Create a timm backbone without classifier, loading weights from a local file.

    Args:
        name: timm model name, e.g. ``tf_efficientnet_lite0`` or ``vit_tiny_patch16_224``.
        weights: path of a state dict (timm key names, or a file
            :func:`unix.models.pretrained.load_backbone_weights` understands); ``""`` = random.
    """
    import timm

    model = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
    if weights:
        from unix.models.pretrained import load_backbone_weights, resolve_weights

        load_backbone_weights(model, resolve_weights(name, weights))
    return model


def parse_stages(stages) -> Tuple[int, ...]:
    """``"0,1"`` / ``[0, 1]`` / ``""`` -> ``(0, 1)`` / ``(0, 1)`` / ``()`` (sorted, distinct)."""
    if isinstance(stages, str):
        stages = [s for s in stages.replace(" ", "").split(",") if s]
    try:
        out = tuple(sorted({int(s) for s in stages}))
    except ValueError as e:
        raise ValueError(f"backbone stages must be integers, e.g. '0,1': got {stages!r}") from e
    if any(i < 0 for i in out):
        raise ValueError(f"backbone stages must be >= 0: got {out}")
    return out


def backbone_tokens(backbone: nn.Module, images: torch.Tensor, pool_stages: Sequence[int] = ()) -> torch.Tensor:
    """Pixels (B, 3, H, W) -> (B, N, C) tokens of the backbone's last feature map.

    With ``pool_stages`` (indices into timm's ``feature_info``, 0 = the highest-resolution
    stage), those earlier feature maps are average-pooled to the last map's grid and their
    channels appended: ``C = num_features + sum(stage channels)`` ("hypercolumn" tokens). Early
    stages keep low-level cues, colour above all, that the last stage of an ImageNet backbone
    has learned to discard. CNN backbones only.
    """
    if not pool_stages:
        return feature_map_to_tokens(backbone.forward_features(images))
    check_stages(backbone, pool_stages)
    # one pass: timm returns forward_features' output together with the intermediate maps
    last, inter = backbone.forward_intermediates(images, indices=list(pool_stages))
    if last.dim() != 4:
        raise ValueError("pooled backbone stages need a CNN backbone (a (B, C, h, w) feature map)")
    pooled = [F.adaptive_avg_pool2d(x, last.shape[-2:]) for x in inter]
    return feature_map_to_tokens(torch.cat([last] + pooled, dim=1))


def check_stages(backbone: nn.Module, pool_stages: Sequence[int]) -> None:
    n = len(getattr(backbone, "feature_info", []) or [])
    if not n or not hasattr(backbone, "forward_intermediates"):
        raise ValueError(f"backbone {type(backbone).__name__} has no timm feature_info/forward_intermediates "
                         "for pooled stages")
    bad = [i for i in pool_stages if i >= n]
    if bad:
        raise ValueError(f"backbone stages {bad} out of range: it has {n} (0..{n - 1})")


def stage_channels(backbone: nn.Module, pool_stages: Sequence[int]) -> int:
    """Channels the pooled stages add to ``backbone.num_features``."""
    if not pool_stages:
        return 0
    check_stages(backbone, pool_stages)
    return sum(int(backbone.feature_info[i]["num_chs"]) for i in pool_stages)


def feature_map_to_tokens(feats: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h*w, C); (B, N, C) is returned as is."""
    if feats.dim() == 4:
        return feats.flatten(2).transpose(1, 2)
    if feats.dim() == 3:
        return feats
    raise ValueError(f"unexpected backbone output of shape {tuple(feats.shape)}")


class ImageEncoder(nn.Module):
    """Backbone (optional) + projection to the model width.

    It gives visual tokens (:meth:`forward`) or, built with ``tokens=False`` (gated fusion), one
    pooled vector per image (:meth:`pooled`), and then has no token norm and positions.

    Args:
        dim: model width ``D``.
        backbone: timm name; ``""`` means features are always given precomputed.
        weights: local weights of the backbone.
        freeze: freeze the backbone (kept in eval mode, no gradients).
        feature_dim: channels ``C`` of precomputed features when there is no backbone.
        max_tokens: largest number of visual tokens ``N``.
        pool_stages: earlier backbone stages pooled into every token (:func:`backbone_tokens`);
            a feature cache built with the same stages gives the same features.
        tokens: build the visual-token head (norm, positions); False: :meth:`pooled` only.
    """

    def __init__(self, dim: int, backbone: str = "", weights: str = "", freeze: bool = True,
                 feature_dim: int = 0, max_tokens: int = 256, pool_stages: Sequence[int] = (),
                 tokens: bool = True):
        super().__init__()
        self.backbone_name = backbone
        self.pool_stages = parse_stages(pool_stages)
        self.backbone: Optional[nn.Module] = create_backbone(backbone, weights) if backbone else None
        if self.backbone is not None:
            feature_dim = self.backbone.num_features + stage_channels(self.backbone, self.pool_stages)
        elif self.pool_stages:
            logger.warning("pool_stages %s has no effect without a backbone: precomputed features are used "
                           "as given (a feature cache built with --pool-stages already holds them)",
                           ",".join(map(str, self.pool_stages)))
        if feature_dim <= 0:
            raise ValueError("an image encoder needs a timm backbone name or image_feature_dim > 0")
        self.feature_dim = feature_dim
        self.freeze = freeze and self.backbone is not None
        if self.freeze:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
        self.proj = nn.Linear(feature_dim, dim)
        self.tokens = tokens
        if tokens:
            self.norm = nn.LayerNorm(dim)
            self.positions = nn.Parameter(torch.zeros(max_tokens, dim))
            nn.init.normal_(self.positions, std=0.02)
        self.max_tokens = max_tokens

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.backbone.eval()
        return self

    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """Pixels (B, 3, H, W) -> backbone tokens (B, N, C)."""
        if self.backbone is None:
            raise RuntimeError("this model has no image backbone: give precomputed image features")
        # a model in half precision (fairseq-generate --fp16) gets fp32 pixels: match the weights
        images = images.to(next(self.backbone.parameters()).dtype)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            return backbone_tokens(self.backbone, images, self.pool_stages)

    def _features(self, images: Optional[torch.Tensor], features: Optional[torch.Tensor]) -> torch.Tensor:
        """Backbone features (B, N, C) of pixels, or the given features, checked."""
        if features is None:
            if images is None:
                raise ValueError("give images or features")
            features = self.backbone_features(images)
        if features.shape[-1] != self.feature_dim:
            raise ValueError(f"image features have {features.shape[-1]} channels, "
                             f"the encoder expects {self.feature_dim}")
        return features

    def forward(self, images: Optional[torch.Tensor] = None,
                features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Encode pixels (B, 3, H, W) or precomputed features (B, N, C) into (B, N, D)."""
        if not self.tokens:
            raise RuntimeError("this image encoder gives pooled vectors only (gated fusion): use pooled()")
        features = self._features(images, features)
        n = features.shape[1]
        if n > self.max_tokens:
            raise ValueError(f"{n} visual tokens exceed max_visual_tokens={self.max_tokens}")
        x = self.proj(features.to(self.proj.weight.dtype))
        return self.norm(x + self.positions[:n])

    def pooled(self, images: Optional[torch.Tensor] = None,
               features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One vector per image (B, D): the features (B, N, C) averaged over N, then projected.

        As Revisit-MMT's gated fusion: a global average-pooled backbone vector through a linear layer.
        """
        features = self._features(images, features)
        return self.proj(features.to(self.proj.weight.dtype).mean(dim=1))

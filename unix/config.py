"""Model configuration and the table of model sizes.

Sizes are data: ``ARCHS`` maps an architecture alias to the fields it sets. The fairseq plugin
registers one fairseq architecture per entry, and ``UnixConfig.from_arch`` builds the same model
from Python.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict

IMAGE_FUSIONS = ("tokens", "gated")


@dataclass
class UnixConfig:
    """Everything needed to build a :class:`unix.models.UnixModel`.

    Attributes:
        embed_dim: width ``D`` of every text, visual and decoder token.
        ffn_dim: hidden width of the feed-forward blocks.
        heads: attention heads.
        text_layers: text-only encoder layers (their pooled output is the text embedding).
        fusion_layers: cross-modal encoder layers over ``[visual tokens; text tokens]``.
        decoder_layers: decoder layers.
        dropout, attention_dropout, activation_dropout: dropout rates.
        normalize_before: pre-norm (True) or post-norm (False) residual blocks.
        max_positions: longest text sequence (source or target).
        share_all_embeddings: tie encoder input, decoder input and output embeddings.
        image_encoder: timm model name (``""`` = features are given precomputed, or no images).
        image_weights: local file with the backbone weights (never downloaded).
        freeze_image_encoder: keep the backbone frozen (eval mode, no gradients).
        image_feature_dim: channels ``C`` of precomputed features (ignored with a backbone).
        image_pool_stages: earlier backbone stages average-pooled into every visual token,
            comma-separated timm ``feature_info`` indices (``"0,1"``; ``""`` = last map only).
        max_visual_tokens: largest number ``N`` of visual tokens (size of the visual positions).
        embed_proj_dim: size of the pooled, normalised embeddings of ``encode_image``/``encode_text``
            (contrastive heads; 0 = no heads, as in fine-tuning).
        itm_head: add the image-text matching head (2-way classifier over the pooled fused
            encoder output, :meth:`UnixModel.match_logits`); pre-training only.
        image_fusion: how the image enters the encoder. ``"tokens"``: visual tokens in front of
            the text in the fusion layers. ``"gated"``: gated fusion (Wu et al. 2021, Revisit-MMT):
            the encoder runs on text alone and one pooled image vector, gated per position and
            channel by a sigmoid of the text state and the vector, is added to its output
            (:class:`unix.modules.gated_fusion.GatedImageFusion`).
    """

    embed_dim: int = 128
    ffn_dim: int = 256
    heads: int = 4
    text_layers: int = 2
    fusion_layers: int = 2
    decoder_layers: int = 4
    dropout: float = 0.3
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    normalize_before: bool = False
    max_positions: int = 512
    share_all_embeddings: bool = True
    image_encoder: str = ""
    image_weights: str = ""
    freeze_image_encoder: bool = True
    image_feature_dim: int = 0
    image_pool_stages: str = ""
    max_visual_tokens: int = 256
    embed_proj_dim: int = 0
    itm_head: bool = False
    image_fusion: str = "tokens"

    def __post_init__(self):
        if self.image_fusion not in IMAGE_FUSIONS:
            raise ValueError(f"image_fusion {self.image_fusion!r}: expected one of {', '.join(IMAGE_FUSIONS)}")

    @classmethod
    def from_arch(cls, arch: str, **overrides: Any) -> "UnixConfig":
        if arch not in ARCHS:
            raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHS))}")
        return cls(**{**ARCHS[arch], **overrides})

    @classmethod
    def from_namespace(cls, ns: Any) -> "UnixConfig":
        """Build from any object with matching attributes (argparse namespace, omegaconf)."""
        names = {f.name for f in fields(cls)}
        return cls(**{n: getattr(ns, n) for n in names if getattr(ns, n, None) is not None})

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


# Model sizes. unix_small follows the 4+4-layer, 128-dim "tiny" Transformer of the MMT papers
# (Revisit-MMT, Wu et al. 2021): its 2 text + 2 fusion layers are 4 encoder layers on text.
ARCHS: Dict[str, Dict[str, Any]] = {
    "unix_tiny": dict(embed_dim=32, ffn_dim=64, heads=2, text_layers=1, fusion_layers=1,
                      decoder_layers=1, dropout=0.1, max_positions=128, max_visual_tokens=64),
    "unix_small": dict(embed_dim=128, ffn_dim=256, heads=4, text_layers=2, fusion_layers=2,
                       decoder_layers=4, dropout=0.3),
    # unix_small at twice the width: the captioning model of examples/captioning (RESULTS.md)
    "unix_medium": dict(embed_dim=256, ffn_dim=1024, heads=4, text_layers=2, fusion_layers=2,
                        decoder_layers=4, dropout=0.3),
    "unix_base": dict(embed_dim=768, ffn_dim=3072, heads=12, text_layers=6, fusion_layers=6,
                      decoder_layers=12, dropout=0.1, normalize_before=True),
    "unix_large": dict(embed_dim=1024, ffn_dim=4096, heads=16, text_layers=12, fusion_layers=12,
                       decoder_layers=12, dropout=0.1, normalize_before=True),
}

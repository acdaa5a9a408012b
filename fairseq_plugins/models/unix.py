"""fairseq model ``unix`` and its architectures (``unix_tiny``, ``unix_small``, ...).

A thin adapter: the encoder and decoder wrap :class:`unix.models.UnixEncoder` and
:class:`unix.models.UnixDecoder`; sizes come from :data:`unix.config.ARCHS`.
"""


from dataclasses import field, fields, make_dataclass
from typing import Any, Dict, List, Tuple, get_type_hints

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


def model_option_fields(config_cls: type = UnixConfig) -> List[Tuple[str, type, Any]]:
    """``(name, type, field)`` of every ``unix`` model option, generated from :class:`UnixConfig`'s fields.

    Each field gives an option of the same name, default and help. fairseq turns a boolean whose
    default is True into a flag that flips it, so such a field is kept (for old checkpoints, with
    a help saying so) and followed by the False-default flag its ``negated_by`` names
    (``--untie-embeddings``, ``--finetune-image-encoder``), which :meth:`UnixConfig.from_namespace`
    applies.

    Raises:
        TypeError: for a True-default boolean field without ``negated_by``.
    """
    hints = get_type_hints(config_cls)
    out = []
    for f in fields(config_cls):
        help = f.metadata.get("help", "")
        if hints[f.name] is bool and f.default is True:
            if "negated_by" not in f.metadata:
                raise TypeError(f"{config_cls.__name__}.{f.name}: a boolean that defaults to True needs negated_by "
                                "(fairseq flips True-default flags)")
            flag, flag_help = f.metadata["negated_by"]
            out.append((f.name, bool, field(default=True, metadata={
                "help": f"{help}; kept for old checkpoints: the flag turns it OFF (fairseq flips True "
                        f"defaults): use --{flag.replace('_', '-')}"})))
            out.append((flag, bool, field(default=False, metadata={"help": flag_help})))
        else:
            out.append((f.name, hints[f.name], field(default=f.default, metadata={"help": help})))
    return out


UnixModelConfig = make_dataclass("UnixModelConfig", model_option_fields(), bases=(FairseqDataclass,))
UnixModelConfig.__module__ = __name__
UnixModelConfig.__doc__ = ("Command-line options of the ``unix`` model, one per :class:`unix.config.UnixConfig` "
                           "field (:func:`model_option_fields`); defaults are those of ``unix_small``.")


def unix_config_from(cfg) -> UnixConfig:
    """Core config from the fairseq one (``--untie-embeddings``/``--finetune-image-encoder`` win)."""
    return UnixConfig.from_namespace(cfg)


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

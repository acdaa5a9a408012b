"""Load a unix model from a fairseq checkpoint without fairseq.

Checkpoints are read with ``torch.load(weights_only=True)``; only the few globals a fairseq
checkpoint holds besides tensors are allowed (``argparse.Namespace``, numpy scalars), so a file
carrying any other pickled object is refused instead of executed.
"""

import argparse
import logging
import pickle
import struct
from typing import Any, Dict, Tuple

import torch

from unix.config import UnixConfig
from unix.models.unix_model import UnixModel

logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """The file is not a loadable unix checkpoint."""


def safe_globals():
    """What a fairseq checkpoint holds besides tensors and containers: Namespace, numpy scalars."""
    out = [argparse.Namespace]
    try:
        import numpy as np

        try:
            from numpy._core.multiarray import _reconstruct, scalar
        except ImportError:  # numpy < 2
            from numpy.core.multiarray import _reconstruct, scalar  # type: ignore
        out += [np.dtype, np.ndarray, scalar, _reconstruct]
        out += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    except ImportError:
        pass
    return out


def unsupported_global(error: Exception):
    """The ``GLOBAL module.name`` torch's weights-only unpickler refused, or None."""
    for line in str(error).splitlines():
        low = line.lower()
        if "unsupported global" in low or "unsupported class" in low:
            return line.strip().replace("WeightsUnpickler error: ", "")
    return None


def load_state(path: str) -> Dict[str, Any]:
    """``torch.load`` a checkpoint safely.

    Raises:
        CheckpointError: unreadable file, or a pickled object outside the allow-list.
    """
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as e:
        culprit = unsupported_global(e)
        if culprit is None:
            raise CheckpointError(f"cannot read checkpoint {path}: not a torch checkpoint or corrupt") from e
        raise CheckpointError(f"refusing to load {path}: it holds a pickled object outside the allow-list "
                              f"(torch.load weights_only=True): {culprit}") from e
    except (RuntimeError, EOFError, OSError, struct.error) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e


def _model_cfg(state: Dict[str, Any], path: str) -> Dict[str, Any]:
    cfg = state.get("cfg")
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else None
    if model_cfg is None and state.get("args") is not None:
        model_cfg = vars(state["args"])
    if not isinstance(model_cfg, dict):
        raise CheckpointError(f"{path}: no model configuration found; not a fairseq checkpoint")
    name = model_cfg.get("_name") or model_cfg.get("arch")
    if not (name == "unix" or str(name).startswith("unix_")):
        raise CheckpointError(f"{path}: holds a {name!r} model, not a unix model (architectures unix_*)")
    return model_cfg


def model_config(state: Dict[str, Any], path: str) -> UnixConfig:
    """The :class:`UnixConfig` a checkpoint was trained with.

    fairseq flips boolean options whose default is True, so the plugin's ``--untie-embeddings``
    and ``--finetune-image-encoder`` stand for ``share_all_embeddings=False`` and
    ``freeze_image_encoder=False`` (:meth:`UnixConfig.from_namespace` reads them).
    """
    return UnixConfig.from_namespace(argparse.Namespace(**_model_cfg(state, path)))


def core_weights(state: Dict[str, Any]) -> Dict[str, Any]:
    """The checkpoint's model tensors under :class:`UnixModel`'s names (fairseq's ``*.core.`` dropped)."""
    return {k.replace("encoder.core.", "encoder.", 1).replace("decoder.core.", "decoder.", 1): v
            for k, v in state["model"].items()}


def load_model(path: str) -> Tuple[UnixModel, Dict[str, Any]]:
    """Build a :class:`UnixModel` from a checkpoint written by ``fairseq-train --arch unix_*``.

    Returns:
        ``(model, state)``: the model in eval mode and the raw checkpoint (for ``cfg``).
    """
    state = load_state(path)
    cfg = model_config(state, path)
    weights = core_weights(state)
    emb = weights.get("encoder.embed_tokens.weight")
    if emb is None:
        raise CheckpointError(f"{path}: no encoder.embed_tokens.weight; not a unix checkpoint")
    model = UnixModel(cfg, emb.shape[0], padding_idx=1)  # fairseq's Dictionary: <s>=0 <pad>=1 </s>=2 <unk>=3
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the configuration "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model.eval(), state

"""Safe checkpoint loading for fairseq under torch's ``weights_only=True``.

fairseq's ``checkpoint_utils.load_checkpoint_to_cpu`` calls ``torch.load`` without
``weights_only``, which torch >= 2.6 treats as ``weights_only=True``: checkpoints then fail on
the few non-tensor globals fairseq stores. Instead of switching that safety off, the globals
fairseq stores are allow-listed (:data:`FAIRSEQ_SAFE_GLOBALS`), and a checkpoint carrying any
other pickled object is refused with an error that names the file and the offending global.
"""

from __future__ import annotations

import collections
import functools
import logging
import pickle
from typing import List

import torch

from unix.checkpoint import safe_globals, unsupported_global

logger = logging.getLogger(__name__)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object outside the allow-list."""


def _omegaconf_globals() -> List:
    try:
        import typing

        from omegaconf import DictConfig, ListConfig
        from omegaconf.base import ContainerMetadata, Metadata
        from omegaconf.nodes import AnyNode
    except ImportError:
        return []
    return [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode, typing.Any, dict, list, int,
            collections.defaultdict]


def _distributed_globals() -> List:
    """What fairseq's ``broadcast_object`` pickles besides a checkpoint's own contents: under distributed
    training rank 0 loads a checkpoint (``--finetune-from-model``, resuming) and sends it to the other
    ranks with its tensors replaced by ``_TensorPlaceholder(index)`` (a frozen dataclass of one int)."""
    try:
        from fairseq.distributed.utils import _TensorPlaceholder
    except ImportError:
        return []
    return [_TensorPlaceholder]


# What fairseq (and this project's tasks) store besides tensors and plain containers.
FAIRSEQ_SAFE_GLOBALS = [collections.OrderedDict] + safe_globals() + _omegaconf_globals() + _distributed_globals()


def install_safe_globals() -> None:
    """Allow-list fairseq's globals for ``torch.load(weights_only=True)`` (idempotent)."""
    torch.serialization.add_safe_globals(FAIRSEQ_SAFE_GLOBALS)


def _wrap_loader(load_fn):
    @functools.wraps(load_fn)
    def load_checkpoint_to_cpu(path, *args, **kwargs):
        try:
            return load_fn(path, *args, **kwargs)
        except pickle.UnpicklingError as e:
            culprit = unsupported_global(e)
            if culprit is None:
                raise UnsafeCheckpointError(f"cannot read checkpoint {path}: not a torch checkpoint or corrupt") from e
            raise UnsafeCheckpointError(
                f"refusing to load checkpoint {path}: it holds a pickled object that is not on the "
                f"allow-list of what fairseq stores (torch.load weights_only=True): {culprit}. If you "
                f"trust this file, convert it to a plain state dict first."
            ) from e

    load_checkpoint_to_cpu.__unix_wrapped__ = True
    return load_checkpoint_to_cpu


def patch_fairseq_checkpoint_loading() -> None:
    """Install the allow-list and make fairseq's loader raise :class:`UnsafeCheckpointError`."""
    install_safe_globals()
    from fairseq import checkpoint_utils

    if not getattr(checkpoint_utils.load_checkpoint_to_cpu, "__unix_wrapped__", False):
        checkpoint_utils.load_checkpoint_to_cpu = _wrap_loader(checkpoint_utils.load_checkpoint_to_cpu)

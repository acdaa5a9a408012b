"""Safe checkpoint loading for fairseq under torch's ``weights_only=True``.

fairseq's ``checkpoint_utils.load_checkpoint_to_cpu`` calls ``torch.load`` without
``weights_only``, which torch >= 2.6 treats as ``weights_only=True``: checkpoints then fail on
the few non-tensor globals fairseq stores. Instead of switching that safety off, the globals
fairseq stores are allow-listed (:data:`FAIRSEQ_SAFE_GLOBALS`), and a checkpoint carrying any
other pickled object is refused with an error that names the file and the offending global.

:func:`last_checkpoints` and :func:`average` average the weights of several checkpoints
(``unix-average-checkpoints``), reading them the same safe way. A run trained on another machine
brings back only its average (``average.pt``) and what it averaged (``average.json``, written by
``unix-average-checkpoints --record``): :func:`imported_average` reads them.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import os
import pickle
import re
from typing import Any, Dict, List, Optional

import torch

from unix.checkpoint import load_state, safe_globals, unsupported_global

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


def last_checkpoints(directory: str, n: int, updates: bool = False, upper_bound: Optional[int] = None) -> List[str]:
    """The last ``n`` epoch (``checkpointN.pt``) or update (``checkpoint_E_U.pt``) checkpoints.

    Args:
        directory: a fairseq ``--save-dir``.
        n: how many to return, oldest first.
        updates: pick update checkpoints (ordered by U) instead of epoch checkpoints.
        upper_bound: ignore checkpoints after this epoch (or update).
    """
    pattern = r"checkpoint_\d+_(\d+)\.pt" if updates else r"checkpoint(\d+)\.pt"
    kind = "update" if updates else "epoch"
    found = []
    for name in os.listdir(directory):
        m = re.fullmatch(pattern, name)
        if m and (upper_bound is None or int(m.group(1)) <= upper_bound):
            found.append((int(m.group(1)), os.path.join(directory, name)))
    if len(found) < n:
        bound = f" up to {kind} {upper_bound}" if upper_bound is not None else ""
        raise ValueError(f"{directory}: {len(found)} {kind} checkpoints{bound}, {n} wanted")
    return [p for _, p in sorted(found)[-n:]]


def average(paths: List[str]) -> dict:
    """The mean of the ``model`` weights of the checkpoints ``paths`` (floating-point ones summed in
    float64, others taken from the first); the rest of the first checkpoint, less its optimizer state."""
    install_safe_globals()
    first = None
    sums = None
    for p in paths:
        state = torch.load(p, map_location="cpu", weights_only=True)
        params = state["model"]
        if sums is None:
            first, sums = state, {k: v.clone().double() if v.is_floating_point() else v.clone()
                                  for k, v in params.items()}
        else:
            if set(params) != set(sums):
                raise ValueError(f"{p}: its parameters differ from {paths[0]}'s")
            for k, v in params.items():
                if v.is_floating_point():
                    sums[k] += v.double()
    first["model"] = {k: (v / len(paths)).to(first["model"][k].dtype) if v.is_floating_point() else v
                      for k, v in sums.items()}
    first.pop("last_optimizer_state", None)
    return first


def trained_updates(path: str) -> int:
    """Number of updates a fairseq checkpoint was saved at (loaded with the safe allow-list)."""
    return load_state(path)["optimizer_history"][-1]["num_updates"]


AVERAGE_PT, AVERAGE_INFO = "average.pt", "average.json"


def average_record(paths: List[str], kind: str, updates: Optional[int], fp16: bool, file: str = AVERAGE_PT
                   ) -> Dict[str, Any]:
    """What ``average.json`` says of an average (``file``): its inputs, their kind, the run's updates."""
    return {"file": file, "inputs": [os.path.basename(p) for p in paths], "n": len(paths), "kind": kind,
            "updates": updates, "fp16": fp16}


def imported_average(directory: str) -> Optional[Dict[str, Any]]:
    """The record of the averaged checkpoint a run trained elsewhere brought back into ``directory``
    (``average.json`` beside ``average.pt``, plus ``path``), or None where there is none."""
    info = os.path.join(directory, AVERAGE_INFO)
    if not os.path.exists(info):
        return None
    with open(info, encoding="utf-8") as f:
        try:
            record = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{info}: not an average record ({e})") from None
    missing = {"inputs", "n", "kind", "updates"} - set(record)
    path = os.path.join(directory, record.get("file", AVERAGE_PT))
    if missing or not os.path.exists(path):
        raise ValueError(f"{info}: " + (f"no {', '.join(sorted(missing))}" if missing else
                                        f"no {os.path.basename(path)} beside it"))
    return dict(record, path=path)

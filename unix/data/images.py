"""Image lists and image loading.

An *image list* is a text file aligned line by line with a split's sentences: line ``i`` names
the image of sentence ``i`` (a path relative to an image root), or is empty when sentence ``i``
has no image. Problems are reported at load time with the file and line that caused them.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Dict, List, Optional, Sequence

import torch

logger = logging.getLogger(__name__)


class ImageError(ValueError):
    """An image is missing, unreadable, or an image list does not fit its sentences."""


def read_image_list(path: str, image_root: Optional[str] = None, expected_len: Optional[int] = None,
                    check_exists: bool = True) -> List[Optional[str]]:
    """Read an image list; return full paths (``None`` where the line is empty).

    Args:
        path: the image list file.
        image_root: directory the names are relative to (absolute names are kept).
        expected_len: the number of sentences of the split; a different length is an error.
        check_exists: check that every named image exists (an error names the first missing one).

    Raises:
        ImageError: on a length mismatch or a missing image, naming file and line.
    """
    if not os.path.exists(path):
        raise ImageError(f"image list not found: {path}")
    with open(path, encoding="utf-8") as f:
        names = [line.rstrip("\n").strip() for line in f]
    if expected_len is not None and len(names) != expected_len:
        raise ImageError(
            f"{path}: {len(names)} lines but the split has {expected_len} sentences; "
            f"the image list must be aligned line by line with the sentences (empty line = no image)"
        )
    out: List[Optional[str]] = []
    missing = []
    for i, name in enumerate(names, start=1):
        if not name:
            out.append(None)
            continue
        full = name if os.path.isabs(name) or image_root is None else os.path.join(image_root, name)
        if check_exists and not os.path.isfile(full):
            missing.append((i, full))
        out.append(full)
    if missing:
        line, full = missing[0]
        raise ImageError(f"{path}:{line}: image not found: {full} ({len(missing)} missing in all)")
    return out


def load_image(path: str, where: str = ""):
    """Open an image as RGB (grayscale, palette, RGBA and CMYK are converted).

    Raises:
        ImageError: if the file is missing or cannot be decoded; the message names ``where``
            (for example ``list.txt:12``) and the file.
    """
    from PIL import Image, UnidentifiedImageError

    prefix = f"{where}: " if where else ""
    try:
        with Image.open(path) as im:
            im.load()
            out = as_rgb(im)
            return out.copy() if out is im else out
    except FileNotFoundError as e:
        raise ImageError(f"{prefix}image not found: {path}") from e
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageError(f"{prefix}cannot read image {path}: {e}") from e


def as_rgb(im):
    """A PIL image as RGB: transparency (RGBA, LA, palette with a transparent colour) composited on
    white, every other mode (grayscale, palette, CMYK, 16-bit, float) converted; ``im`` itself if RGB."""
    from PIL import Image

    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.split()[-1])
        return bg
    if im.mode.startswith("I") or im.mode == "F":  # 16/32-bit or float grayscale: scale to 8 bits
        import numpy as np

        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else (1.0 if a.max() <= 1.0 and im.mode == "F" else 255.0)
        im = Image.fromarray(np.clip(a / top * 255.0, 0, 255).round().astype(np.uint8), "L")
    return im.convert("RGB")


def image_extensions() -> set:
    """File extensions of every image format PIL can read here (``.jpg``, ``.png``, ``.gif``, ``.webp`` ...)."""
    from PIL import Image

    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def images_in_dir(directory: str) -> List[str]:
    """Every image of ``directory`` (any format PIL reads), sorted; hidden files are ignored.

    Raises:
        FileNotFoundError: no such directory.
        ImageError: a file that is not an image PIL reads (named, with how many there are), or no image.
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"image directory not found: {directory}")
    exts = image_extensions()
    names = sorted(n for n in os.listdir(directory) if not n.startswith(".")
                   and os.path.isfile(os.path.join(directory, n)))
    other = [n for n in names if os.path.splitext(n)[1].lower() not in exts]
    if other:
        raise ImageError(f"{os.path.join(directory, other[0])}: not an image format PIL reads ({len(other)} such "
                         f"files in {directory}); move them out or list the images with --image-lists")
    if not names:
        raise ImageError(f"{directory}: no image in this directory")
    return [os.path.join(directory, n) for n in names]


def verify_images(paths: Sequence[Optional[str]], list_path: str = "images") -> None:
    """Check that every distinct image decodes (header and data); raise naming the list line."""
    seen = set()
    for i, p in enumerate(paths, start=1):
        if p is not None and p not in seen:
            load_image(p, where=f"{list_path}:{i}")
            seen.add(p)


def build_transform(backbone: str = "", image_size: int = 224, train: bool = False) -> Callable:
    """Return timm's transform for ``backbone`` (eval or train), or a plain resize + normalize.

    Uses the backbone's pretrained config (mean, std, crop) when timm knows it, so frozen
    features are computed exactly as the backbone was trained.
    """
    import timm
    from timm.data import create_transform, resolve_data_config

    if backbone:
        model = timm.create_model(backbone, pretrained=False, num_classes=0)
        cfg = resolve_data_config({}, model=model)
    else:
        cfg = {"input_size": (3, image_size, image_size), "interpolation": "bicubic",
               "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "crop_pct": 1.0}
    return create_transform(**cfg, is_training=train)


class ImageReader:
    """Loads and transforms the images of one image list; ``reader[i]`` is a tensor or ``None``."""

    def __init__(self, paths: Sequence[Optional[str]], transform: Callable, list_path: str = "images"):
        self.paths = list(paths)
        self.transform = transform
        self.list_path = list_path

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Optional[torch.Tensor]:
        p = self.paths[i]
        if p is None:
            return None
        return self.transform(load_image(p, where=f"{self.list_path}:{i + 1}"))


# ---- Multi30K <-> Flickr8k naming ------------------------------------------------------------

def flickr8k_index(images_dir: str) -> Dict[str, str]:
    """Map the leading photo number of every Flickr8k file to its file name."""
    if not os.path.isdir(images_dir):
        raise FileNotFoundError(f"Flickr8k images not found: {images_dir}")
    index = {}
    for name in os.listdir(images_dir):
        if name.lower().endswith((".jpg", ".jpeg", ".png")):
            index[name.split("_")[0].split(".")[0]] = name
    return index


def multi30k_to_flickr8k(names: Sequence[str], index: Dict[str, str]) -> List[Optional[str]]:
    """Map Multi30K image names (``1000268201.jpg``) to Flickr8k files, ``None`` if absent."""
    return [index.get(n.split(".")[0]) if n else None for n in names]

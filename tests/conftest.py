"""Shared fixtures: a tiny generated bilingual corpus with images, binarized for fairseq."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("UNIX_SHARED_DATA", ROOT.parent / "shared" / "data"))

COLORS = {"red": ("rot", (220, 30, 30)), "green": ("gruen", (30, 200, 30)), "blue": ("blau", (30, 30, 220)),
          "yellow": ("gelb", (230, 230, 20))}
THINGS = {"dog": "hund", "cat": "katze", "ball": "ball", "car": "auto", "house": "haus"}


def requires_shared_data(*parts: str):
    path = SHARED_DATA.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=f"real data not found at {path}")


def make_sentences(n: int, seed: int):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        color = rng.choice(list(COLORS))
        thing = rng.choice(list(THINGS))
        out.append((color, f"the {color} {thing} is here .", f"das {COLORS[color][0]} {THINGS[thing]} ist hier ."))
    return out


def write_image(path: Path, rgb, mode: str = "RGB", size: int = 40):
    from PIL import Image

    im = Image.new("RGB", (size, size), rgb)
    if mode == "L":
        im = im.convert("L")
    elif mode == "RGBA":
        im = im.convert("RGBA")
    elif mode == "CMYK":
        im = im.convert("CMYK")
        im.save(path.with_suffix(".jpg"), "JPEG")
        return path.with_suffix(".jpg")
    im.save(path)
    return path


def build_tiny_corpus(root: Path, n_train: int = 80, n_valid: int = 12, n_test: int = 12) -> Path:
    """Write raw text, images, a sentencepiece model and a fairseq-binarized en-de pair under root."""
    from unix.data.tokenizer import SpmTokenizer, encode_file, train_sentencepiece, write_fairseq_dict

    raw, img_dir, bin_dir = root / "raw", root / "images", root / "bin"
    for d in (raw, img_dir, bin_dir):
        d.mkdir(parents=True, exist_ok=True)
    for color, (_, rgb) in COLORS.items():
        write_image(img_dir / f"{color}.png", rgb)
    splits = {"train": n_train, "valid": n_valid, "test": n_test}
    for k, (split, n) in enumerate(splits.items()):
        sents = make_sentences(n, seed=k)
        with open(raw / f"{split}.en", "w") as fen, open(raw / f"{split}.de", "w") as fde, \
                open(bin_dir / f"{split}.images.txt", "w") as fim:
            for i, (color, en, de) in enumerate(sents):
                fen.write(en + "\n")
                fde.write(de + "\n")
                fim.write((f"{color}.png" if i % 3 else "") + "\n")  # every third sentence: no image
    train_sentencepiece([str(raw / "train.en"), str(raw / "train.de")], str(bin_dir / "spm"), vocab_size=60,
                        model_type="bpe", langs=("en", "de", "fr"))
    write_fairseq_dict(str(bin_dir / "spm.vocab"), str(bin_dir / "dict.txt"))
    tok = SpmTokenizer(str(bin_dir / "spm.model"))
    for split in splits:
        for lang in ("en", "de"):
            encode_file(tok, str(raw / f"{split}.{lang}"), str(raw / f"{split}.spm.{lang}"))
    subprocess.run(
        ["fairseq-preprocess", "-s", "en", "-t", "de", "--trainpref", str(raw / "train.spm"),
         "--validpref", str(raw / "valid.spm"), "--testpref", str(raw / "test.spm"), "--destdir", str(bin_dir),
         "--srcdict", str(bin_dir / "dict.txt"), "--tgtdict", str(bin_dir / "dict.txt"), "--workers", "1"],
        check=True, capture_output=True,
    )
    return root


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    return build_tiny_corpus(tmp_path_factory.mktemp("tiny_corpus"))


@pytest.fixture(autouse=True)
def _grad_mode_is_restored():
    """A test (or a script's main()) must not leave autograd switched off for the next ones."""
    yield
    assert torch.is_grad_enabled(), "autograd was left disabled"

"""Tiny pre-training streams built on the ``tiny_corpus`` fixture (tests/conftest.py).

* a caption stream ``<root>/cap``: a ``tag-cap`` pair (``__en__`` or ``__de__`` -> the sentence)
  for every train/valid sentence of the tiny corpus that has an image, plus its image list;
* the tiny corpus' own ``en-de`` pair is the translation stream and its ``de`` side the
  monolingual denoising stream;
* a feature cache of the four colour images (``test_efficientnet``, random weights).
"""

import subprocess
from pathlib import Path


def build_pretrain_streams(corpus: Path, root: Path) -> dict:
    """Write the caption stream and feature cache under ``root``; return paths for the tests."""
    from unix.data.feature_cache import build_feature_cache
    from unix.data.images import read_image_list

    binp, raw, cap = corpus / "bin", corpus / "raw", root / "cap"
    cap.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid"):
        images = (binp / f"{split}.images.txt").read_text().splitlines()
        en = (raw / f"{split}.spm.en").read_text().splitlines()
        de = (raw / f"{split}.spm.de").read_text().splitlines()
        tags, caps, ims = [], [], []
        for im, e, d in zip(images, en, de):
            if im:
                tags += ["__en__", "__de__"]
                caps += [e, d]
                ims += [im, im]
        (cap / f"{split}.raw.tag").write_text("".join(t + "\n" for t in tags))
        (cap / f"{split}.raw.cap").write_text("".join(c + "\n" for c in caps))
        (cap / f"{split}.images.txt").write_text("".join(i + "\n" for i in ims))
    subprocess.run(["fairseq-preprocess", "-s", "tag", "-t", "cap", "--trainpref", str(cap / "train.raw"),
                    "--validpref", str(cap / "valid.raw"), "--destdir", str(cap), "--srcdict", str(binp / "dict.txt"),
                    "--tgtdict", str(binp / "dict.txt"), "--workers", "1"], check=True, capture_output=True)
    paths = [p for p in read_image_list(str(binp / "train.images.txt"), str(corpus / "images")) if p]
    build_feature_cache(sorted(set(paths)), str(root / "feats"), "test_efficientnet")
    return {"data": binp, "cap": cap, "images": corpus / "images", "feats": root / "feats"}

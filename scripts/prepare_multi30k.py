#!/usr/bin/env python
"""Prepare Multi30K for ``unix_mmt`` and fairseq's ``translation`` task.

Steps:
  1. train the joint en/de/fr/cs sentencepiece model (language tags as symbols), or reuse one;
  2. encode every split and binarize each language pair with ``fairseq-preprocess``
     (shared ``dict.txt``);
  3. write ``<split>.images.txt`` aligned line by line with the sentences: the Flickr8k file
     of the Multi30K image when that photo is available, an empty line otherwise.

Example::

    python scripts/prepare_multi30k.py --data ../shared/data --out data-bin/multi30k \\
        --pairs en-de en-fr
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
from typing import Dict, Set

from unix.data.captions import multi30k_dir, read_flickr8k_splits
from unix.data.images import flickr8k_index, multi30k_to_flickr8k
from unix.data.tokenizer import (
    DEFAULT_LANGS,
    SpmTokenizer,
    encode_file,
    read_lines,
    train_sentencepiece,
    write_fairseq_dict,
)

logger = logging.getLogger("prepare_multi30k")

# fairseq split name -> Multi30K file stem
SPLITS = {"train": "train", "valid": "val", "test": "test_2016_flickr"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data", help="root holding multi30k/ and flickr8k/")
    p.add_argument("--out", default="data-bin/multi30k", help="output directory")
    p.add_argument("--pairs", nargs="+", default=["en-de", "en-fr"], help="language pairs src-tgt")
    p.add_argument("--langs", nargs="+", default=list(DEFAULT_LANGS), help="languages of the vocabulary")
    p.add_argument("--vocab-size", type=int, default=10000)
    p.add_argument("--spm-model", default=None, help="reuse this sentencepiece model instead of training one")
    p.add_argument("--with-captions", action="store_true",
                   help="also train the vocabulary on the Task 2 captions (en/de)")
    p.add_argument("--max-lines", type=int, default=0,
                   help="keep only the first N lines of every split (a quick slice for demos/tests)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--hold-out-flickr8k-eval-photos", action="store_true",
                   help="train sentences whose photo is a Flickr8k dev or test photo get no image (an empty "
                        "line in train.images.txt; they are trained text-only), so that a model trained on "
                        "this data (e.g. pre-training streams) has not seen the Flickr8k evaluation photos")
    return p.parse_args(argv)


def _slice(src: str, dst: str, n: int) -> str:
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for i, line in enumerate(fin):
            if i >= n:
                break
            fout.write(line)
    return dst


def flickr8k_eval_photos(data: str) -> Set[str]:
    """File names of the Flickr8k dev and test photos (its official evaluation splits)."""
    try:
        splits = read_flickr8k_splits(os.path.join(data, "flickr8k"), ("valid", "test"))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--hold-out-flickr8k-eval-photos needs Flickr8k's split lists: {e}") from None
    return set(splits["valid"]) | set(splits["test"])


def write_image_lists(data: str, out: str, max_lines: int = 0, hold_out: Set[str] = frozenset()) -> Dict[str, int]:
    """Write ``<split>.images.txt`` (Flickr8k file names or empty lines); return counts found.

    Training lines whose photo is in ``hold_out`` get an empty line (no image).
    """
    index = flickr8k_index(os.path.join(data, "flickr8k", "images"))
    found = {}
    for split, stem in SPLITS.items():
        names = read_lines(os.path.join(data, "multi30k", "image_splits", f"{stem}.txt"))
        if max_lines:
            names = names[:max_lines]
        mapped = multi30k_to_flickr8k(names, index)
        if split == "train" and hold_out:
            held = sum(1 for m in mapped if m in hold_out)
            mapped = [None if m in hold_out else m for m in mapped]
            logger.info("train: %d sentences whose photo is a held-out evaluation photo get no image", held)
        with open(os.path.join(out, f"{split}.images.txt"), "w", encoding="utf-8") as f:
            for m in mapped:
                f.write((m or "") + "\n")
        found[split] = sum(1 for m in mapped if m)
        logger.info("%s: %d of %d images available", split, found[split], len(mapped))
    return found


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    m30k = multi30k_dir(args.data)
    os.makedirs(args.out, exist_ok=True)
    langs = sorted({l for pair in args.pairs for l in pair.split("-")} | set(args.langs))

    with tempfile.TemporaryDirectory() as tmp:
        # raw inputs (optionally sliced)
        raw: Dict[tuple, str] = {}
        for split, stem in SPLITS.items():
            for lang in langs:
                path = os.path.join(m30k, f"{stem}.{lang}")
                if not os.path.exists(path):
                    raise FileNotFoundError(f"missing Multi30K file {path}")
                raw[split, lang] = _slice(path, os.path.join(tmp, f"raw.{split}.{lang}"), args.max_lines) \
                    if args.max_lines else path

        spm_model = os.path.join(args.out, "spm.model")
        if args.spm_model:
            if os.path.abspath(args.spm_model) != os.path.abspath(spm_model):
                import shutil
                shutil.copy(args.spm_model, spm_model)
                shutil.copy(args.spm_model[: -len(".model")] + ".vocab", spm_model[: -len(".model")] + ".vocab")
        else:
            inputs = [raw["train", lang] for lang in langs]
            if args.with_captions:
                inputs += [os.path.join(m30k, "captions", f"train.{k}.{l}") for k in range(1, 6) for l in ("en", "de")]
            train_sentencepiece(inputs, os.path.join(args.out, "spm"), args.vocab_size, langs=langs)
        n_dict = write_fairseq_dict(os.path.join(args.out, "spm.vocab"), os.path.join(args.out, "dict.txt"))
        logger.info("dict.txt: %d symbols", n_dict)

        tok = SpmTokenizer(spm_model)
        for (split, lang), path in raw.items():
            encode_file(tok, path, os.path.join(tmp, f"{split}.{lang}"))
        dict_path = os.path.join(args.out, "dict.txt")
        for pair in args.pairs:
            src, tgt = pair.split("-")
            cmd = [
                "fairseq-preprocess", "--source-lang", src, "--target-lang", tgt,
                "--trainpref", os.path.join(tmp, "train"), "--validpref", os.path.join(tmp, "valid"),
                "--testpref", os.path.join(tmp, "test"), "--destdir", args.out,
                "--srcdict", dict_path, "--tgtdict", dict_path, "--workers", str(args.workers),
            ]
            logger.info("binarizing %s", pair)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    hold_out = flickr8k_eval_photos(args.data) if args.hold_out_flickr8k_eval_photos else frozenset()
    write_image_lists(args.data, args.out, args.max_lines, hold_out)
    logger.info("done: %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

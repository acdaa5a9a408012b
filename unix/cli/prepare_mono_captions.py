"""In-domain monolingual text for pre-training: Multi30K captions of photos we do not have.

Multi30K describes 31,014 Flickr30k photos; only the ~7,500 that are Flickr8k photos have pixels
here (``../shared/data/README.md``). The captions of the others are still good in-domain text: this
script gathers them, per language, from Task 2 (five independent English and German captions a
photo) and Task 1 (one English description and its de/fr/cs translations), and binarizes them as
a ``denoise`` stream of ``unix_pretrain`` (``<split>.LANG-None.LANG``, the project's ``dict.txt``).

Every line whose photo **is** a Flickr8k photo is dropped, whatever its Multi30K split, so no
Flickr8k (or Multi30K) evaluation photo's caption reaches the model through this text, and the
training photos' captions stay with their pixels in ``unix-prepare-captions``'s data. Near-duplicates
(lowercased words, as ``unix-prepare-captions``) are dropped within a language. Only Multi30K's
``train`` split is read by default (``--splits``).

Output (``--out``): ``train.LANG-None.LANG.{bin,idx}`` per language, ``dict.txt`` (from
``--spm-model``'s vocabulary: the same file as the caption and translation data's), and
``manifest.json`` (lines read, dropped as Flickr8k photos, as duplicates, kept).

Example::

    unix-prepare-mono-captions --data ../shared/data --spm-model data-bin/multi30k/spm.model \\
        --out data-bin/mono_captions --langs en de
    # then a stream of unix_pretrain: mono_en:denoise:../mono_captions:0.3:en
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from typing import Dict, List, Sequence, Tuple

from unix.data.captions import CaptionDataError, multi30k_dir, normalize_caption, read_aligned
from unix.data.images import flickr8k_index
from unix.data.tokenizer import SpmTokenizer, check_lang_in_vocab, write_fairseq_dict

logger = logging.getLogger("prepare_mono_captions")

# Multi30K split -> (Task 1 file stem and image list, Task 2 file stem or None)
SPLITS = {"train": ("train", "train"), "val": ("val", None), "test_2016_flickr": ("test_2016_flickr", "test_2016")}
TASK2_LANGS = ("en", "de")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="directory with multi30k/ and flickr8k/ (../shared/data)")
    p.add_argument("--spm-model", required=True, help="the project's sentencepiece model (spm.model)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--langs", nargs="+", default=["en", "de"], help="languages (Task 1: en de fr cs; Task 2: en de)")
    p.add_argument("--splits", nargs="+", default=["train"], choices=sorted(SPLITS),
                   help="Multi30K splits to read (default: train only)")
    p.add_argument("--workers", type=int, default=1, help="fairseq-preprocess workers")
    return p.parse_args(argv)


def sources(m30k: str, split: str, lang: str) -> List[Tuple[str, List[str]]]:
    """``(image list, [caption files])`` of one Multi30K split and language (Task 1, then Task 2)."""
    task1, task2 = SPLITS[split]
    out = [(os.path.join(m30k, "image_splits", f"{task1}.txt"), [os.path.join(m30k, f"{task1}.{lang}")])]
    if task2 and lang in TASK2_LANGS:
        out.append((os.path.join(m30k, "captions", f"{task2}_images.txt"),
                    [os.path.join(m30k, "captions", f"{task2}.{k}.{lang}") for k in range(1, 6)]))
    return out


def collect(m30k: str, splits: Sequence[str], lang: str, flickr8k: Dict[str, str]) -> Tuple[List[str], Dict]:
    """Captions of ``lang`` whose photo is not a Flickr8k photo, near-duplicates dropped.

    Raises:
        CaptionDataError: on an empty caption (naming file and line) or misaligned files.
    """
    kept: List[str] = []
    seen = set()
    stats = {"read": 0, "flickr8k_photo": 0, "duplicate": 0}
    for split in splits:
        for images, files in sources(m30k, split, lang):
            for line, name, caps in read_aligned(images, files):
                for path, cap in zip(files, caps):
                    if not cap:
                        raise CaptionDataError(f"{path}:{line}: empty caption (image {name})")
                    stats["read"] += 1
                    if name.split(".")[0] in flickr8k:
                        stats["flickr8k_photo"] += 1
                        continue
                    key = normalize_caption(cap)
                    if key in seen:
                        stats["duplicate"] += 1
                        continue
                    seen.add(key)
                    kept.append(cap)
    stats["kept"] = len(kept)
    return kept, stats


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    m30k = multi30k_dir(args.data)
    flickr8k = flickr8k_index(os.path.join(args.data, "flickr8k", "images"))
    tok = SpmTokenizer(args.spm_model)
    vocab = set(tok.vocab())
    for lang in args.langs:
        check_lang_in_vocab(lang, vocab, args.spm_model)
    os.makedirs(args.out, exist_ok=True)
    dict_path = os.path.join(args.out, "dict.txt")
    write_fairseq_dict(args.spm_model[: -len(".model")] + ".vocab", dict_path)
    manifest = {"splits": args.splits, "flickr8k_photos": len(flickr8k), "langs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for lang in args.langs:
            kept, stats = collect(m30k, args.splits, lang, flickr8k)
            if not kept:
                raise CaptionDataError(f"no {lang} caption left in Multi30K {args.splits} outside Flickr8k")
            prefix = os.path.join(tmp, "train")
            with open(f"{prefix}.{lang}", "w", encoding="utf-8") as f:
                f.writelines(tok.encode_line(c) + "\n" for c in kept)
            subprocess.run(["fairseq-preprocess", "--only-source", "--source-lang", lang, "--trainpref", prefix,
                            "--destdir", args.out, "--srcdict", dict_path, "--workers", str(args.workers)],
                           check=True, stdout=subprocess.DEVNULL)
            os.remove(os.path.join(args.out, f"dict.{lang}.txt"))  # a copy of dict.txt
            manifest["langs"][lang] = stats
            logger.info("%s: %d captions read, %d of Flickr8k photos dropped, %d duplicates, %d kept",
                        lang, stats["read"], stats["flickr8k_photo"], stats["duplicate"], stats["kept"])
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    logger.info("done: %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

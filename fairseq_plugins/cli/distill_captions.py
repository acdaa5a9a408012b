"""Sequence-level knowledge distillation data for ``unix_caption``: a teacher's captions as targets.

Kim and Rush (2016, "Sequence-Level Knowledge Distillation") train a single student on the beam
search output of a teacher (an ensemble, here) instead of, or beside, the human references; the
student learns the teacher's mode and gets much of the ensemble's gain at the cost of one model.

Steps (``docs/experiments/captioning.md``, section 3c, "Distilling an ensemble into one model"):

1. ``unix-prepare-captions ... --eval-train`` writes ``train_<lang>``: the training photos in the
   evaluation format (one sample per photo);
2. ``fairseq-generate <data> --gen-subset train_<lang> --path A.pt:B.pt:... > teacher.txt``; to
   share it among K processes give each ``--distributed-world-size K --distributed-rank i`` (what
   fairseq-generate shards its batches by; its ``--num-shards`` does not) and pass all K files;
3. this script writes a data directory whose ``train`` split holds the teacher's caption of every
   photo (one sample per photo and language; ``--keep-original`` adds the original training
   captions), and copies the vocabulary and every evaluation split unchanged.

The teacher's output is checked against the split: every sample id exactly once over all files,
none beyond the split, its language tag, no empty caption; errors name the file and the sample.

Example::

    unix-distill-captions --data data-bin/captions_en \\
        --teacher train_en runs/teacher_train_en.0.txt runs/teacher_train_en.1.txt \\
        --out data-bin/captions_en_kd
"""

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from typing import Dict, List, Sequence, Tuple

from unix.data.caption_sources import SRC, TGT, binarize, write_rows
from unix.data.captions import (CaptionDataError, join_pieces, lang_of_source, parse_generate_output,
                                read_name_list)
from unix.data.tokenizer import SpmTokenizer, lang_tag

logger = logging.getLogger("distill_captions")

Row = Tuple[str, str, str]  # (language tag, caption as sentencepiece pieces, photo)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a unix-prepare-captions directory with train_<lang> splits")
    p.add_argument("--teacher", nargs="+", action="append", required=True, metavar=("SPLIT", "GENERATE_OUTPUT"),
                   help="an evaluation split of the training photos (train_en) and the fairseq-generate "
                        "output(s) of the teacher on it (one file, or one per shard); repeat per language")
    p.add_argument("--keep-original", action="store_true",
                   help="keep the original training captions beside the teacher's (default: teacher's only)")
    p.add_argument("--out", required=True, help="output directory (a new data directory)")
    p.add_argument("--workers", type=int, default=1)
    return p.parse_args(argv)


def teacher_rows(data: str, split: str, outputs: Sequence[str], tok: SpmTokenizer) -> List[Row]:
    """The teacher's caption of every sample of ``split``, in sample order.

    Raises:
        CaptionDataError: a sample missing from all outputs, in two of them, beyond the split, with
            another language tag than the split's, or with an empty caption.
    """
    images_path = os.path.join(data, f"{split}.images.txt")
    if not os.path.exists(images_path):
        raise FileNotFoundError(f"{images_path} not found "
                                "(was the split written by unix-prepare-captions --eval-train?)")
    images = read_name_list(images_path)
    lang = split.rsplit("_", 1)[-1] if "_" in split else None
    found: Dict[int, Tuple[str, Dict[str, str]]] = {}
    for path in outputs:
        for sid, entry in parse_generate_output(path).items():
            if sid in found:
                raise CaptionDataError(f"{path}: sample {sid} is also in {found[sid][0]} (shards overlap?)")
            if sid >= len(images):
                raise CaptionDataError(f"{path}: sample {sid} beyond the {len(images)} samples of {split} "
                                       f"({data}/{split}.images.txt): generated on another split?")
            found[sid] = (path, entry)
    missing = [i for i in range(len(images)) if i not in found]
    if missing:
        raise CaptionDataError(f"{split}: {len(missing)} of {len(images)} samples have no caption in "
                               f"{', '.join(outputs)}, first: sample {missing[0]} ({images[missing[0]]}, line "
                               f"{missing[0] + 1} of {split}.images.txt); an interrupted or missing shard?")
    rows = []
    for sid, photo in enumerate(images):
        path, entry = found[sid]
        sample_lang = lang_of_source(entry.get("S", "")) or lang
        if sample_lang is None:
            raise CaptionDataError(f"{path}: sample {sid} has no language tag (S- line) and {split} names none")
        if lang is not None and entry.get("S") is not None and sample_lang != lang:
            raise CaptionDataError(f"{path}: sample {sid} has tag {entry['S']!r}, but {split} is {lang}")
        text = join_pieces(entry.get("D", entry.get("H", "")))
        if not text:
            raise CaptionDataError(f"{path}: sample {sid} ({photo}) has an empty caption")
        rows.append((lang_tag(sample_lang), tok.encode_line(text), photo))
    return rows


def original_rows(data: str) -> List[Row]:
    """The training split of ``data`` as (tag, pieces, photo), read back from fairseq's binary files."""
    from fairseq.data import Dictionary, data_utils

    vocab = Dictionary.load(os.path.join(data, "dict.txt"))
    images = read_name_list(os.path.join(data, "train.images.txt"))
    prefix = os.path.join(data, f"train.{SRC}-{TGT}")
    src = data_utils.load_indexed_dataset(f"{prefix}.{SRC}", vocab)
    tgt = data_utils.load_indexed_dataset(f"{prefix}.{TGT}", vocab)
    if src is None or tgt is None or not (len(src) == len(tgt) == len(images)):
        raise CaptionDataError(f"{prefix}.{{{SRC},{TGT}}} and train.images.txt of {data} do not align")
    return [(vocab.string(src[i]), vocab.string(tgt[i]), images[i]) for i in range(len(images))]


def copy_data_dir(data: str, out: str) -> List[str]:
    """Copy every file of ``data`` but its training split and manifest into ``out``; return the names."""
    copied = []
    for name in sorted(os.listdir(data)):
        own = name.startswith(("train.", "manifest.json", "preprocess.log"))
        if own or not os.path.isfile(os.path.join(data, name)):
            continue
        shutil.copy2(os.path.join(data, name), os.path.join(out, name))
        copied.append(name)
    return copied


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    if any(len(t) < 2 for t in args.teacher):
        raise SystemExit("--teacher takes a split and at least one fairseq-generate output")
    if os.path.abspath(args.out) == os.path.abspath(args.data):
        raise SystemExit("--out must be a new directory, not --data")
    tok = SpmTokenizer(os.path.join(args.data, "spm.model"))
    rows: List[Row] = []
    counts: Dict[str, int] = {}
    for split, *outputs in args.teacher:
        teacher = teacher_rows(args.data, split, outputs, tok)
        counts[f"teacher_{split}"] = len(teacher)
        rows += teacher
    if args.keep_original:
        original = original_rows(args.data)
        counts["original"] = len(original)
        rows = original + rows
    os.makedirs(args.out, exist_ok=True)
    copied = copy_data_dir(args.data, args.out)
    with tempfile.TemporaryDirectory() as tmp:
        write_rows(tmp, args.out, "train", rows)
        binarize(tmp, args.out, ["train"], args.workers)
    source_manifest = os.path.join(args.data, "manifest.json")
    source = None
    if os.path.exists(source_manifest):
        with open(source_manifest, encoding="utf-8") as f:
            source = json.load(f)
    manifest = {"distilled_from": os.path.abspath(args.data),
                "teacher": {split: [os.path.abspath(o) for o in outputs] for split, *outputs in args.teacher},
                "keep_original": args.keep_original, "train_samples": counts, "copied": copied,
                "source_manifest": source}
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    logger.info("train: %s -> %s", counts, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Prepare easy-VQA (or your own VQA data in the JSONL format) for the ``unix_vqa`` task.

Steps:
  1. read the questions: easy-VQA from the ``easy-vqa`` package (its train split is divided by
     image into train and valid, its test split is test), or ``<data-dir>/{train,valid,test}.jsonl``
     in the format of :mod:`unix.data.vqa` (see ``docs/experiments/vqa.md``, section 1);
  2. check them (empty questions, missing images, training answers outside the answer list:
     errors name the file and line);
  3. encode questions and answers with the project's sentencepiece model (``--spm-model``), write
     ``dict.txt`` from its vocabulary and binarize with ``fairseq-preprocess -s question -t answer``;
  4. write ``<split>.images.txt`` (image paths relative to the image root), ``answers.txt`` (the
     closed answer list) and ``answers.spm.txt`` (the same in pieces, for ``--constraint-answers``).

Example::

    unix-prepare-easy-vqa --spm-model data-bin/multi30k/spm.model --out data-bin/easy_vqa
"""

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from typing import Dict, List, Optional, Tuple

from unix.data.tokenizer import SpmTokenizer, encode_file, lang_tag, write_fairseq_dict
from unix.data.vqa import (
    VQADataError,
    VQARecord,
    check_training_answers,
    parse_record,
    read_answer_list,
    read_vqa_jsonl,
    write_vqa_jsonl,
)
from unix.metrics.references import SEP

logger = logging.getLogger("prepare_easy_vqa")

SPLITS = ("train", "valid", "test")
SRC, TGT = "question", "answer"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data-bin/easy_vqa", help="output directory")
    p.add_argument("--spm-model", required=True, help="the project's sentencepiece model (.model, .vocab beside)")
    p.add_argument("--easy-vqa-dir", default=None, help="easy-VQA data directory (default: the installed package's)")
    p.add_argument("--data-dir", default=None,
                   help="your own data instead of easy-VQA: train.jsonl, valid.jsonl [, test.jsonl]")
    p.add_argument("--image-root", default=None, help="with --data-dir: the directory image paths are relative to")
    p.add_argument("--answer-list", default=None,
                   help="closed answer list, one answer a line (easy-VQA: its answers.txt; "
                        "--data-dir: default = every training answer)")
    p.add_argument("--answer-lang", default="en", help="answer language; its tag must be in the vocabulary")
    p.add_argument("--valid-images", type=int, default=400,
                   help="easy-VQA: the questions of this many training images (the highest ids) form valid")
    p.add_argument("--max-questions", type=int, default=0, help="keep the first N questions of every split")
    p.add_argument("--exclude-train-questions", default=None, metavar="REGEX",
                   help="drop the training questions this Python regular expression matches (searched in the "
                        "question text), e.g. for the first stage of a curriculum; valid and test are kept whole")
    p.add_argument("--workers", type=int, default=1)
    return p.parse_args(argv)


# -- reading ------------------------------------------------------------------------------------

def default_easy_vqa_dir() -> str:
    import easy_vqa

    return os.path.join(os.path.dirname(easy_vqa.__file__), "data")


def read_easy_vqa_split(root: str, split: str) -> List[VQARecord]:
    """Records of easy-VQA's ``<root>/<split>/questions.json`` ([question, answer, image id] entries)."""
    path = os.path.join(root, split, "questions.json")
    if not os.path.exists(path):
        raise VQADataError(f"easy-VQA questions not found: {path}")
    with open(path, encoding="utf-8") as f:
        entries = json.load(f)
    records = []
    for n, entry in enumerate(entries, start=1):
        where = f"{path}: entry {n}"
        if not isinstance(entry, list) or len(entry) != 3:
            raise VQADataError(f"{where}: expected [question, answer, image id], got {entry!r}")
        question, answer, image_id = entry
        obj = {"question": question, "answers": [answer], "image": f"{split}/images/{image_id}.png"}
        records.append(parse_record(obj, where, image_root=root))
    if not records:
        raise VQADataError(f"{path}: no question in the file")
    return records


def read_easy_vqa(root: str, valid_images: int) -> Dict[str, List[VQARecord]]:
    """easy-VQA as train / valid (the questions of the last ``valid_images`` train images) / test."""
    train = read_easy_vqa_split(root, "train")
    ids = sorted({r.image for r in train}, key=lambda p: int(os.path.basename(p).split(".")[0]))
    if not 0 < valid_images < len(ids):
        raise ValueError(f"--valid-images must be in 1..{len(ids) - 1}, got {valid_images}")
    held_out = set(ids[-valid_images:])
    return {"train": [r for r in train if r.image not in held_out],
            "valid": [r for r in train if r.image in held_out],
            "test": read_easy_vqa_split(root, "test")}


def read_jsonl_dir(data_dir: str, image_root: Optional[str]) -> Dict[str, List[VQARecord]]:
    out = {}
    for split in SPLITS:
        path = os.path.join(data_dir, f"{split}.jsonl")
        if split == "test" and not os.path.exists(path):
            continue
        out[split] = read_vqa_jsonl(path, image_root)
    return out


# -- writing ------------------------------------------------------------------------------------

def check_vocabulary(tok: SpmTokenizer, answer_lang: str, needs_sep: bool) -> None:
    vocab = set(tok.vocab())
    tag = lang_tag(answer_lang)
    if tag not in vocab:
        raise ValueError(f"{tok.model_path}: the answer-language tag {tag} is not a symbol of the vocabulary")
    if needs_sep and SEP not in vocab:
        raise ValueError(f"{tok.model_path}: {SEP} is not a symbol of the vocabulary, so several reference "
                         "answers cannot be joined; train the model with unix.data.tokenizer.train_sentencepiece")


def write_split_text(records: List[VQARecord], split: str, tmp: str, out: str) -> Tuple[str, str]:
    """Raw questions and targets into ``tmp``; the image list into ``out``."""
    q_path, a_path = os.path.join(tmp, f"{split}.raw.{SRC}"), os.path.join(tmp, f"{split}.raw.{TGT}")
    with open(q_path, "w", encoding="utf-8") as fq, open(a_path, "w", encoding="utf-8") as fa, \
            open(os.path.join(out, f"{split}.images.txt"), "w", encoding="utf-8") as fi:
        for r in records:
            fq.write(r.question + "\n")
            fa.write((r.training_answer if split == "train" else r.target) + "\n")
            fi.write(r.image + "\n")
    return q_path, a_path


def copy_images(records: Dict[str, List[VQARecord]], src_root: str, dst_root: str) -> int:
    names = sorted({r.image for recs in records.values() for r in recs})
    for name in names:
        dst = os.path.join(dst_root, name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join(src_root, name), dst)
    return len(names)


def write_answer_lists(answers: List[str], tok: SpmTokenizer, out: str) -> None:
    with open(os.path.join(out, "answers.txt"), "w", encoding="utf-8") as fa, \
            open(os.path.join(out, "answers.spm.txt"), "w", encoding="utf-8") as fs:
        for a in answers:
            fa.write(a + "\n")
            fs.write(tok.encode_line(a) + "\n")


def binarize(prefs: Dict[str, str], out: str, dict_path: str, workers: int = 1) -> None:
    """``fairseq-preprocess -s question -t answer`` with the shared dictionary, run in-process."""
    from fairseq import options
    from fairseq_cli import preprocess

    argv = ["--source-lang", SRC, "--target-lang", TGT, "--destdir", out, "--srcdict", dict_path,
            "--tgtdict", dict_path, "--workers", str(workers)]
    for split, pref in prefs.items():
        argv += [f"--{split}pref", pref]
    args = options.get_preprocessing_parser().parse_args(argv)
    fs_logger = logging.getLogger("fairseq_cli.preprocess")
    handlers = list(fs_logger.handlers)
    try:
        preprocess.main(args)
    finally:  # fairseq adds a log file handler per call: drop it
        for h in fs_logger.handlers[len(handlers):]:
            fs_logger.removeHandler(h)
            h.close()


def exclude_questions(records: List[VQARecord], pattern: str) -> List[VQARecord]:
    """The records whose question ``pattern`` (a regular expression, ``re.search``) does not match."""
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise ValueError(f"--exclude-train-questions {pattern!r} is not a valid regular expression: {e}") from None
    kept = [r for r in records if not regex.search(r.question)]
    if not kept:
        raise VQADataError(f"--exclude-train-questions {pattern!r} matches all {len(records)} training questions")
    logger.info("--exclude-train-questions %r: %d of %d training questions dropped, %d kept",
                pattern, len(records) - len(kept), len(records), len(kept))
    return kept


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    if args.data_dir:
        image_root = args.image_root
        records = read_jsonl_dir(args.data_dir, image_root)
    else:
        image_root = args.easy_vqa_dir or default_easy_vqa_dir()
        records = read_easy_vqa(image_root, args.valid_images)
    if args.max_questions:
        records = {s: r[: args.max_questions] for s, r in records.items()}
    if args.exclude_train_questions:
        records["train"] = exclude_questions(records["train"], args.exclude_train_questions)
    if args.answer_list:
        list_path = args.answer_list
    elif not args.data_dir:
        list_path = os.path.join(image_root, "answers.txt")
    else:
        list_path = None
    if list_path:
        answers = read_answer_list(list_path)
        check_training_answers(records["train"], answers, list_path)
    else:
        answers = [a for a, _ in Counter(r.training_answer for r in records["train"]).most_common()]

    os.makedirs(args.out, exist_ok=True)
    tok = SpmTokenizer(args.spm_model)
    check_vocabulary(tok, args.answer_lang, any(len(r.answers) > 1 for rs in records.values() for r in rs))
    spm_model = os.path.join(args.out, "spm.model")
    if os.path.abspath(args.spm_model) != os.path.abspath(spm_model):
        shutil.copyfile(args.spm_model, spm_model)
        shutil.copyfile(args.spm_model[: -len(".model")] + ".vocab", os.path.join(args.out, "spm.vocab"))
    dict_path = os.path.join(args.out, "dict.txt")
    logger.info("dict.txt: %d symbols", write_fairseq_dict(os.path.join(args.out, "spm.vocab"), dict_path))

    with tempfile.TemporaryDirectory() as tmp:
        prefs = {}
        for split, recs in records.items():
            for raw in write_split_text(recs, split, tmp, args.out):
                lang = raw.rsplit(".", 1)[1]
                encode_file(tok, raw, os.path.join(tmp, f"{split}.{lang}"))
            prefs[split] = os.path.join(tmp, split)
            write_vqa_jsonl(recs, os.path.join(tmp, f"{split}.jsonl"))
            logger.info("%s: %d questions, %d images", split, len(recs), len({r.image for r in recs}))
        binarize(prefs, args.out, dict_path, args.workers)
        os.makedirs(os.path.join(args.out, "jsonl"), exist_ok=True)
        for split in prefs:
            shutil.copyfile(os.path.join(tmp, f"{split}.jsonl"), os.path.join(args.out, "jsonl", f"{split}.jsonl"))
    write_answer_lists(answers, tok, args.out)
    if not args.data_dir:
        n = copy_images(records, image_root, os.path.join(args.out, "images"))
        image_root = os.path.join(args.out, "images")
        logger.info("copied %d images to %s", n, image_root)
    logger.info("done: %s (%d answers); train with --image-root %s (or a feature cache of its images)",
                args.out, len(answers), image_root or "<your image root>")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``unix-prepare-xvqa``: easy-VQA's test questions in German, French and Czech (zero-shot VQA).

Reads the English questions ``unix-prepare-easy-vqa`` wrote (``<data-bin>/jsonl/<split>.jsonl``),
translates every one with the template table of :mod:`unix.data.xvqa_templates` (same image, same
English answers, same order: line ``i`` of every language is the same question) and writes, for
each language ``L``, in the same data directory:

  * ``jsonl/<split>_L.jsonl``: the questions in the project's VQA JSONL format;
  * ``<split>_L.images.txt``: the image list (identical to ``<split>.images.txt``);
  * ``<split>_L.question-answer.{question,answer}.{bin,idx}``: binarized with the directory's
    ``spm.model`` and ``dict.txt`` by ``fairseq-preprocess`` (run as a command), so that a model
    fine-tuned on the English questions is evaluated with ``--gen-subset <split>_L``;
  * ``xvqa_manifest.json``: counts per language and template.

A question that fits no template stops the command with an error naming it, its file and line.
``--list-templates`` prints the whole table (107 questions: 9 colour templates x 8 colours,
10 shape templates x 3 shapes, 5 without a slot) in English, German, French and Czech.

Example (after ``unix-prepare-easy-vqa --spm-model ... --out data-bin/easy_vqa``)::

    unix-prepare-xvqa --data-bin data-bin/easy_vqa --langs de fr cs
    fairseq-generate data-bin/easy_vqa --user-dir fairseq_plugins --task unix_vqa --gen-subset test_de \\
        --image-root data-bin/easy_vqa/images --path checkpoints/easy_vqa/checkpoint_best.pt \\
        --beam 5 --scoring vqa_accuracy --post-process sentencepiece
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from typing import List, Optional, Sequence

from unix.data.tokenizer import SpmTokenizer, encode_file
from unix.data.vqa import VQARecord, read_vqa_jsonl, write_vqa_jsonl
from unix.data.xvqa import parse_question, translate_records
from unix.data.xvqa_templates import COLORS, ENGLISH, LANGS, SHAPES, render

logger = logging.getLogger("unix.cli.prepare_xvqa")

SRC, TGT = "question", "answer"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="unix-prepare-xvqa", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-bin", help="output directory of unix-prepare-easy-vqa")
    p.add_argument("--list-templates", action="store_true",
                   help="print every template in English and each language (with example slots) and stop")
    p.add_argument("--split", default="test", help="the English split to translate (jsonl/<split>.jsonl)")
    p.add_argument("--langs", nargs="+", default=list(LANGS), choices=LANGS, help="languages to write")
    p.add_argument("--no-binarize", action="store_true", help="write the JSONL and image lists only")
    p.add_argument("--workers", type=int, default=1)
    return p.parse_args(argv)


def binarize(records: Sequence[VQARecord], name: str, data_bin: str, workers: int = 1) -> None:
    """Encode questions and targets with ``<data_bin>/spm.model`` and binarize them as split ``name``.

    ``fairseq-preprocess`` names its test output ``test.*``; the files are renamed to ``name``.
    """
    tok = SpmTokenizer(os.path.join(data_bin, "spm.model"))
    dict_path = os.path.join(data_bin, "dict.txt")
    if not os.path.exists(dict_path):
        raise FileNotFoundError(f"{dict_path} not found: --data-bin must be an output of unix-prepare-easy-vqa")
    with tempfile.TemporaryDirectory() as tmp:
        for side, texts in ((SRC, [r.question for r in records]), (TGT, [r.target for r in records])):
            raw = os.path.join(tmp, f"raw.{side}")
            with open(raw, "w", encoding="utf-8") as f:
                f.writelines(t + "\n" for t in texts)
            encode_file(tok, raw, os.path.join(tmp, f"{name}.{side}"))
        dest = os.path.join(tmp, "bin")
        cmd = ["fairseq-preprocess", "-s", SRC, "-t", TGT, "--testpref", os.path.join(tmp, name), "--destdir", dest,
               "--srcdict", dict_path, "--tgtdict", dict_path, "--workers", str(workers)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"fairseq-preprocess failed:\n{proc.stderr[-3000:]}")
        for side in (SRC, TGT):
            for ext in ("bin", "idx"):
                shutil.move(os.path.join(dest, f"test.{SRC}-{TGT}.{side}.{ext}"),
                            os.path.join(data_bin, f"{name}.{SRC}-{TGT}.{side}.{ext}"))


def prepare(data_bin: str, split: str, langs: Sequence[str], do_binarize: bool = True,
            workers: int = 1) -> dict:
    """Translate ``<data_bin>/jsonl/<split>.jsonl`` into every language of ``langs``; returns the manifest."""
    path = os.path.join(data_bin, "jsonl", f"{split}.jsonl")
    english = read_vqa_jsonl(path, check_images=False)
    templates = Counter(parse_question(r.question, r.where).template for r in english)
    manifest = {"source": path, "questions": len(english), "templates": dict(sorted(templates.items())),
                "langs": {}}
    for lang in langs:
        name = f"{split}_{lang}"
        translated = translate_records(english, lang)
        write_vqa_jsonl(translated, os.path.join(data_bin, "jsonl", f"{name}.jsonl"))
        with open(os.path.join(data_bin, f"{name}.images.txt"), "w", encoding="utf-8") as f:
            f.writelines(r.image + "\n" for r in translated)
        if do_binarize:
            binarize(translated, name, data_bin, workers)
        distinct = len({r.question for r in translated})
        manifest["langs"][lang] = {"split": name, "questions": len(translated), "distinct_questions": distinct,
                                   "example": translated[0].question}
        logger.info("%s: %d questions (%d distinct), e.g. %r", name, len(translated), distinct,
                    translated[0].question)
    with open(os.path.join(data_bin, "xvqa_manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
    return manifest


def template_listing(langs: Sequence[str] = LANGS) -> List[str]:
    """Tab-separated lines: template name, then the question in English and each of ``langs``, for
    every colour / shape of the template (for reading and checking the translations)."""
    lines = ["\t".join(("template", "en") + tuple(langs))]
    for name, template in ENGLISH.items():
        values = [{"color": c} for c in COLORS] if "{color}" in template else \
            [{"shape": s} for s in SHAPES] if "{shape}" in template else [{}]
        for slots in values:
            lines.append("\t".join([name] + [render(lang, name, slots) for lang in ("en",) + tuple(langs)]))
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    if args.list_templates:
        print("\n".join(template_listing(args.langs)))
        return 0
    if not args.data_bin:
        raise SystemExit("unix-prepare-xvqa: give --data-bin (or --list-templates)")
    manifest = prepare(args.data_bin, args.split, args.langs, not args.no_binarize, args.workers)
    for lang, info in manifest["langs"].items():
        print(f"{info['split']}: {info['questions']} questions, e.g. {info['example']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

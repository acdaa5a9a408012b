"""Prepare Multi30K for ``unix_mmt`` and fairseq's ``translation`` task.

Two protocols (``--protocol``):

* ``spm`` (default): raw true-case text, one joint en/de/fr/cs sentencepiece vocabulary; scored
  with sacreBLEU on raw text (and tokenized BLEU after re-tokenizing the output).
* ``tok-bpe``: the published protocol (Revisit-MMT, fairseq_mmt): the release's Moses-tokenized,
  lowercased, normalized ``tok/*.lc.norm.tok.*`` text, joint BPE (subword-nmt, 10,000 merges)
  learned on the pair's two training files, one joined fairseq dictionary; scored with fairseq's
  tokenized BLEU-4 after removing BPE. One pair per output directory (the BPE is the pair's own).
  See :func:`prepare_tok_bpe`.

Steps of ``spm``:
  1. train the joint en/de/fr/cs sentencepiece model (language tags as symbols), or reuse one;
  2. encode every split and binarize each language pair with ``fairseq-preprocess``
     (shared ``dict.txt``);
  3. write ``<split>.images.txt`` aligned line by line with the sentences: the Flickr8k file
     of the Multi30K image when that photo is available, an empty line otherwise.

Example::

    unix-prepare-multi30k --data ../shared/data --out data-bin/multi30k \\
        --pairs en-de en-fr
    unix-prepare-multi30k --protocol tok-bpe --data ../shared/data \\
        --out data-bin/multi30k_tok_ende --pairs en-de
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
from typing import Dict, Set

from unix.data.bpe import apply_bpe_file, learn_joint_bpe, load_bpe, subword_nmt_version
from unix.data.captions import multi30k_dir, read_flickr8k_splits
from unix.data.images import flickr8k_index, multi30k_to_flickr8k
from unix.data.tokenizer import (
    DEFAULT_LANGS,
    SpmTokenizer,
    encode_file,
    lang_tag,
    read_lines,
    train_sentencepiece,
    write_fairseq_dict,
)

logger = logging.getLogger("prepare_multi30k")

# fairseq split name -> Multi30K file stem
SPLITS = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
PROTOCOLS = ("spm", "tok-bpe")
BPE_CODES = "bpe.codes"  # tok-bpe: the subword-nmt codes file in the output (a model directory carries it)
MANIFEST = "manifest.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data", help="root holding multi30k/ and flickr8k/")
    p.add_argument("--out", default="data-bin/multi30k", help="output directory")
    p.add_argument("--protocol", choices=PROTOCOLS, default="spm",
                   help="spm: raw true-case text, joint sentencepiece (default); tok-bpe: the published "
                        "protocol, Moses-tokenized lowercased tok/ text with the pair's joint BPE (one pair)")
    p.add_argument("--pairs", nargs="+", default=None,
                   help="language pairs src-tgt (default: en-de en-fr; tok-bpe takes exactly one)")
    p.add_argument("--bpe-merges", type=int, default=10000, help="tok-bpe: BPE merge operations")
    p.add_argument("--langs", nargs="+", default=list(DEFAULT_LANGS), help="languages of the vocabulary")
    p.add_argument("--vocab-size", type=int, default=10000, help="spm: sentencepiece vocabulary size")
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
    args = p.parse_args(argv)
    if args.pairs is None:
        args.pairs = ["en-de"] if args.protocol == "tok-bpe" else ["en-de", "en-fr"]
    for pair in args.pairs:
        if len(pair.split("-")) != 2 or not all(pair.split("-")):
            p.error(f"--pairs {pair!r}: expected src-tgt, e.g. en-de")
    if args.protocol == "tok-bpe" and len(args.pairs) != 1:
        p.error("--protocol tok-bpe prepares one pair per --out (the published BPE is learned on the pair's "
                "two languages): run it once per pair")
    return args


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


def add_lang_tags(dict_path: str, out_path: str, langs=DEFAULT_LANGS) -> int:
    """Copy the fairseq dictionary ``dict_path`` to ``out_path`` with the language tags appended.

    The tags (``__en__ 1`` ...) go after every existing symbol, so the indices of the binarized data
    do not change: ``out_path`` serves the unix tasks (which put the target tag in front of the
    source), ``dict_path`` stays the plain dictionary of fairseq's ``translation`` task. A tag the
    dictionary already has is not added twice. Returns the number of symbols written.
    """
    with open(dict_path, encoding="utf-8") as f:
        lines = [line for line in f.read().split("\n") if line]
    have = {line.split(" ")[0] for line in lines}
    lines += [f"{lang_tag(l)} 1" for l in langs if lang_tag(l) not in have]
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return len(lines)


def prepare_tok_bpe(args) -> dict:
    """The published protocol: tok/ text, the pair's joint BPE, one joined dictionary; returns the manifest.

    Writes into ``args.out``: ``bpe.codes`` (subword-nmt, ``args.bpe_merges`` merges learned on the
    concatenated train files of the two languages); the binarized splits (``fairseq-preprocess
    --joined-dictionary``: ``dict.<src>.txt`` = ``dict.<tgt>.txt``, the dictionary the published
    systems had); ``dict.txt``, the same plus the language tags (unix tasks); ``<split>.images.txt``;
    ``manifest.json`` (:data:`MANIFEST`), which records all of it.
    """
    src, tgt = args.pairs[0].split("-")
    tok_dir = os.path.join(multi30k_dir(args.data), "tok")
    sources, lines = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        text = {}
        for split, stem in SPLITS.items():
            for lang in (src, tgt):
                path = os.path.join(tok_dir, f"{stem}.lc.norm.tok.{lang}")
                if not os.path.exists(path):
                    raise FileNotFoundError(f"missing Multi30K tokenized file {path} (the tok/ release)")
                sources[f"{split}.{lang}"] = os.path.relpath(path, args.data)
                text[split, lang] = _slice(path, os.path.join(tmp, f"tok.{split}.{lang}"), args.max_lines) \
                    if args.max_lines else path
        codes = os.path.join(args.out, BPE_CODES)
        learn_joint_bpe([text["train", src], text["train", tgt]], codes, args.bpe_merges)
        bpe = load_bpe(codes)
        for (split, lang), path in text.items():
            lines[f"{split}.{lang}"] = apply_bpe_file(bpe, path, os.path.join(tmp, f"{split}.{lang}"))
        for split in SPLITS:
            if lines[f"{split}.{src}"] != lines[f"{split}.{tgt}"]:
                raise ValueError(f"{sources[f'{split}.{src}']}: {lines[f'{split}.{src}']} lines, "
                                 f"{sources[f'{split}.{tgt}']}: {lines[f'{split}.{tgt}']}")
        cmd = ["fairseq-preprocess", "--source-lang", src, "--target-lang", tgt,
               "--trainpref", os.path.join(tmp, "train"), "--validpref", os.path.join(tmp, "valid"),
               "--testpref", os.path.join(tmp, "test"), "--destdir", args.out, "--joined-dictionary",
               "--workers", str(args.workers)]
        logger.info("binarizing %s with one joined dictionary", args.pairs[0])
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(args.out, f"dict.{src}.txt"), encoding="utf-8") as f:
        n_plain = sum(1 for line in f if line.strip())
    n_dict = add_lang_tags(os.path.join(args.out, f"dict.{src}.txt"), os.path.join(args.out, "dict.txt"))
    logger.info("dict.txt: %d symbols (%d + language tags)", n_dict, n_plain)
    hold_out = flickr8k_eval_photos(args.data) if args.hold_out_flickr8k_eval_photos else frozenset()
    found = write_image_lists(args.data, args.out, args.max_lines, hold_out)
    return {
        "protocol": "tok-bpe",
        "pair": args.pairs[0],
        "sources": sources,
        "max_lines": args.max_lines,
        "lines": {split: lines[f"{split}.{src}"] for split in SPLITS},
        "bpe": {"tool": "subword-nmt", "version": subword_nmt_version(), "merges": args.bpe_merges,
                "codes": BPE_CODES, "learned_on": [f"train.{src}", f"train.{tgt}"], "separator": "@@",
                "apply": "subword-nmt apply-bpe -c bpe.codes (no vocabulary filter)"},
        "dictionary": {"unix": "dict.txt", "symbols": n_dict, "language_tags": [lang_tag(l) for l in DEFAULT_LANGS],
                       "translation_task": [f"dict.{src}.txt", f"dict.{tgt}.txt"], "translation_symbols": n_plain,
                       "built_by": "fairseq-preprocess --joined-dictionary (train split); dict.txt appends the tags"},
        "images": {"lists": [f"{split}.images.txt" for split in SPLITS], "available": found,
                   "held_out_flickr8k_eval_photos": bool(args.hold_out_flickr8k_eval_photos)},
        # what a model trained on this data needs before it sees a raw sentence (unix-export copies it)
        "preprocess": {"normalize_punctuation": True, "lowercase": True, "moses_tokenize": src, "moses_escape": True,
                       "bpe": BPE_CODES},
        "preprocess_details": "the tok/ release: Moses punctuation normalization, lowercasing, Moses tokenization "
                              "with escaping (unix.data.bpe.multi30k_tokenize reproduces it), then BPE",
        "evaluation": f"fairseq-generate --beam 5 --post-process subword_nmt; tokenized BLEU-4 (no re-tokenization) "
                      f"against tok/test_2016_flickr.lc.norm.tok.{tgt} (unix-score-mmt --tokenized)",
    }


def write_manifest(out: str, manifest: dict) -> str:
    path = os.path.join(out, MANIFEST)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return path


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    m30k = multi30k_dir(args.data)
    os.makedirs(args.out, exist_ok=True)
    if args.protocol == "tok-bpe":
        write_manifest(args.out, prepare_tok_bpe(args))
        logger.info("done: %s", args.out)
        return 0
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
    found = write_image_lists(args.data, args.out, args.max_lines, hold_out)
    write_manifest(args.out, {"protocol": "spm", "pairs": args.pairs, "langs": langs, "max_lines": args.max_lines,
                              "sentencepiece": "spm.model", "vocab_size": args.vocab_size, "dictionary": "dict.txt",
                              "images": {"available": found, "held_out_flickr8k_eval_photos": bool(hold_out)},
                              "evaluation": "fairseq-generate --post-process sentencepiece; sacreBLEU on raw text "
                                            "and tokenized BLEU after re-tokenizing (unix-score-mmt)"})
    logger.info("done: %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

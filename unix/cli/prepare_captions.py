"""Prepare multilingual captioning data for the ``unix_caption`` task.

Sources (plain files, see ../shared/data/README.md):
  * Flickr8k: five English captions per photo and the official train/dev/test splits;
  * Multi30K Task 2: five English + five German captions per image, and Task 1: the German,
    French and Czech translations, for the Multi30K images that are Flickr8k photos.

Every caption goes to the *Flickr8k* split of its photo, whatever its Multi30K split, so no test
photo is ever trained on. Captions of one photo and language are gathered from all sources and
near-duplicates dropped (Multi30K's English captions of Flickr8k photos are Flickr8k's own).

Output (``--out``), a ``tag-cap`` pair binarized by ``fairseq-preprocess`` with the project's one
vocabulary (``--spm-model``; ``dict.txt`` written from it):
  * ``train``: one sample per (photo, language, caption); source = the language tag (``__de__``);
  * ``valid_<lang>``, ``test_<lang>``: one sample per photo that has references in that language,
    target = all its references joined by ``<sep>``; plus ``<split>.refs.txt`` (raw references,
    the same order) for ``unix-score-captions``;
  * with ``--eval-train``, ``train_<lang>`` too: the training photos in the evaluation format (one
    sample per photo), to caption them with a trained model (``unix-distill-captions``) or to
    score the training set;
  * ``<split>.images.txt``: the Flickr8k file of each sample (relative to ``flickr8k/images``);
  * ``manifest.json``: counts per split and language.

Example::

    unix-prepare-captions --data ../shared/data --spm-model data-bin/multi30k/spm.model \\
        --out data-bin/captions
"""

import argparse
import functools
import json
import logging
import os
import sys
import tempfile
from typing import Dict, List, Sequence

from unix.data.caption_sources import EVAL_SOURCES, binarize, collect, hold_out, multi30k_eval_photos, write_rows
from unix.data.captions import FLICKR8K_SPLIT_LISTS, CaptionDataError, CaptionSet
from unix.data.images import verify_images
from unix.data.tokenizer import (DEFAULT_LANGS, SpmTokenizer, check_lang_in_vocab, install_vocabulary, lang_tag,
                                 spm_vocab_file)
from unix.metrics.references import SEP, join_references

logger = logging.getLogger("prepare_captions")

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data", help="root holding flickr8k/ and multi30k/")
    p.add_argument("--spm-model", required=True, help="the project's sentencepiece model (.vocab next to it)")
    p.add_argument("--out", default="data-bin/captions", help="output directory")
    p.add_argument("--langs", nargs="+", default=list(DEFAULT_LANGS), help="caption languages to keep")
    p.add_argument("--no-multi30k", action="store_true", help="Flickr8k English captions only")
    p.add_argument("--max-images", type=int, default=0, help="keep the first N photos of every split (a slice)")
    p.add_argument("--verify-images", action="store_true", help="decode every photo (slow; finds corrupt files)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--hold-out-multi30k-eval-photos", action="store_true",
                   help="drop from the training split the Flickr8k photos of Multi30K's val and test_2016_flickr "
                        "images, so that a model trained on this data (e.g. a pre-training caption stream) has "
                        "not seen the photos of the Multi30K evaluations")
    p.add_argument("--eval-train", action="store_true",
                   help="also write train_<lang>: the training photos in the evaluation format (one sample per "
                        "photo, all its references), e.g. for a teacher's captions (unix-distill-captions)")
    return p.parse_args(argv)


def write_splits(tmp: str, out: str, splits: Dict[str, List[str]], caps: CaptionSet, langs: Sequence[str],
                 tok: SpmTokenizer, eval_train: bool = False) -> Dict[str, Dict[str, float]]:
    """Write raw pieces (``<name>.tag`` / ``<name>.cap``) to ``tmp``, image lists and refs to ``out``.

    ``eval_train`` adds ``train_<lang>``: the training photos in the format of the evaluation splits.
    """
    counts: Dict[str, Dict[str, float]] = {}
    write = functools.partial(write_rows, tmp, out)
    train_rows = [(lang_tag(lang), tok.encode_line(c), p) for p in splits["train"] for lang in langs
                  for c in caps.refs(p, lang)]
    if not train_rows:
        raise CaptionDataError("no training caption at all: check --data and --langs")
    write("train", train_rows)
    counts["train"] = {lang: caps.count(lang, splits["train"])[1] for lang in langs}
    for split in ("valid", "test") + (("train",) if eval_train else ()):
        for lang in langs:
            sources = EVAL_SOURCES.get(lang)
            photos = [p for p in splits[split] if caps.refs(p, lang, sources)]
            if not photos:
                logger.warning("%s_%s: no photo has a %s reference; split not written", split, lang, lang)
                continue
            name = f"{split}_{lang}"
            refs = [caps.refs(p, lang, sources) for p in photos]
            write(name, [(lang_tag(lang), f" {SEP} ".join(tok.encode_line(r) for r in rs), p)
                         for p, rs in zip(photos, refs)])
            with open(os.path.join(out, f"{name}.refs.txt"), "w", encoding="utf-8") as f:
                for rs in refs:
                    f.write(join_references(rs) + "\n")
            missing = len(splits[split]) - len(photos)
            counts[name] = {"photos": len(photos), "refs_per_photo": round(sum(map(len, refs)) / len(photos), 3),
                            "photos_without_reference": missing}
    return counts


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    if not os.path.isdir(os.path.join(args.data, "flickr8k")):
        raise FileNotFoundError(f"Flickr8k not found under {args.data!r} (expected {args.data}/flickr8k/)")
    spm_vocab_file(args.spm_model)  # both files exist, before any work
    tok = SpmTokenizer(args.spm_model)
    vocab = set(tok.vocab())
    for lang in args.langs:
        check_lang_in_vocab(lang, vocab, f"sentencepiece model {args.spm_model}")
    if SEP not in vocab:
        raise CaptionDataError(f"the sentencepiece model {args.spm_model} lacks the reference separator {SEP}")

    splits, caps, stats = collect(args.data, args.langs, not args.no_multi30k, args.max_images)
    if args.hold_out_multi30k_eval_photos:
        stats["train_photos_held_out"] = hold_out(splits, multi30k_eval_photos(args.data))
        logger.info("held out %d training photos that are Multi30K val/test photos", stats["train_photos_held_out"])
    if args.verify_images:
        images_dir = os.path.join(args.data, "flickr8k", "images")
        for split, names in splits.items():
            verify_images([os.path.join(images_dir, n) for n in names],
                          os.path.join(args.data, "flickr8k", FLICKR8K_SPLIT_LISTS[split]))
    n_dict = install_vocabulary(args.spm_model, args.out)
    with tempfile.TemporaryDirectory() as tmp:
        counts = write_splits(tmp, args.out, splits, caps, args.langs, tok, args.eval_train)
        logger.info("binarizing %s", ", ".join(counts))
        binarize(tmp, args.out, list(counts), args.workers)
    manifest = {"langs": list(args.langs), "dict_symbols": n_dict, "splits": counts, "sources": stats,
                "image_root": os.path.abspath(os.path.join(args.data, "flickr8k", "images")),
                "multi30k": not args.no_multi30k, "max_images": args.max_images,
                "eval_train": args.eval_train}
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    for name, c in counts.items():
        logger.info("%s: %s", name, c)
    logger.info("sources: %s", stats)
    logger.info("done: %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

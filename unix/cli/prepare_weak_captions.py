"""Prepare a weakly-aligned caption stream with textual relevance, for RC3 in ``unix_pretrain``.

Weakly-aligned pairs: the Multi30K Task 2 captions of language ``--lang`` (German by default),
written for the photo independently of its English description. Their relevance
(:mod:`unix.data.relevance`) is the sentence chrF of each caption against the photo's
strictly-aligned caption in the same language: Multi30K Task 1's line for that image (for German,
the translation of the photo's English description).

Only Multi30K's *train* images are used (its val and test photos stay unseen), and only those that
are Flickr8k photos (the project's image root); each goes to the Flickr8k split of its photo
(train -> ``train``, dev -> ``valid``; Flickr8k test photos are left out), as in
``unix-prepare-captions``.

Output (``--out``), a caption stream in the format of ``unix-prepare-captions``:
  * ``<split>.tag-cap.{tag,cap}.{bin,idx}``: language tag -> caption, one sample per caption;
  * ``<split>.images.txt``: the Flickr8k file of each sample (relative to ``flickr8k/images``);
  * ``<split>.relevance``: the relevance of each sample (read by the ``unix_pretrain`` task);
  * ``<split>.pairs.tsv``: photo, weak caption, strict caption and relevance (for reading);
  * ``dict.txt``, ``spm.model``/``.vocab`` and ``manifest.json`` (counts, relevance quantiles).

Use it as a caption stream of ``unix_pretrain`` (``weak:caption:<out>:RATIO``) with
``--rc3-weight 1`` (RC3) or ``--rc3-weight 0`` (the same pairs with plain ``itc``). Example::

    unix-prepare-weak-captions --data ../shared/data --spm-model data-bin/multi30k/spm.model \\
        --out data-bin/weak_de
"""

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
from typing import Dict, List, NamedTuple, Sequence

from unix.data.caption_sources import binarize, write_rows
from unix.data.captions import CaptionDataError, read_aligned, read_flickr8k_splits
from unix.data.images import flickr8k_index, multi30k_to_flickr8k
from unix.data.relevance import relevance_path, relevance_scores, write_relevance
from unix.data.tokenizer import SpmTokenizer, check_lang_in_vocab, lang_tag, install_vocabulary, spm_vocab_file

logger = logging.getLogger("prepare_weak_captions")

TASK2_LANGS = ("en", "de")
SPLIT_OF_FLICKR8K = {"train": "train", "valid": "valid"}  # Flickr8k test photos: left out


class WeakPair(NamedTuple):
    """One weakly-aligned caption, the strict caption of its photo, and where it was read."""

    photo: str
    weak: str
    strict: str
    where: str


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data", help="root holding flickr8k/ and multi30k/")
    p.add_argument("--spm-model", required=True, help="the project's sentencepiece model (.vocab next to it)")
    p.add_argument("--out", default="data-bin/weak_de", help="output directory")
    p.add_argument("--lang", default="de", choices=TASK2_LANGS, help="language of the weak captions")
    p.add_argument("--relevance-floor", type=float, default=0.0,
                   help="relevance = floor + (1 - floor) * chrF / 100 (0: the raw chrF)")
    p.add_argument("--max-images", type=int, default=0, help="keep the first N Multi30K train images (a slice)")
    p.add_argument("--workers", type=int, default=1)
    return p.parse_args(argv)


def collect_weak_pairs(data: str, lang: str, max_images: int = 0) -> Dict[str, List[WeakPair]]:
    """Weak pairs of the Multi30K train images that are Flickr8k photos, by our split name.

    Raises:
        FileNotFoundError: a Multi30K or Flickr8k file is missing.
        CaptionDataError: files not aligned with their image lists, or the Task 1 and Task 2
            image lists of train disagree (file and line).
    """
    m30k, f8k = os.path.join(data, "multi30k"), os.path.join(data, "flickr8k")
    weak_images = os.path.join(m30k, "captions", "train_images.txt")
    strict_images = os.path.join(m30k, "image_splits", "train.txt")
    weak_files = [os.path.join(m30k, "captions", f"train.{k}.{lang}") for k in range(1, 6)]
    strict_file = os.path.join(m30k, f"train.{lang}")
    strict = {name: (row[0], line) for line, name, row in read_aligned(strict_images, [strict_file])}
    split_of = {photo: split for split, names in read_flickr8k_splits(f8k).items() for photo in names}
    index = flickr8k_index(os.path.join(f8k, "images"))
    out: Dict[str, List[WeakPair]] = {s: [] for s in SPLIT_OF_FLICKR8K.values()}
    for n, (line, name, row) in enumerate(read_aligned(weak_images, weak_files)):
        if max_images and n >= max_images:
            break
        if name not in strict:
            raise CaptionDataError(f"{weak_images}:{line}: image {name} has no line in {strict_images}")
        photo = multi30k_to_flickr8k([name], index)[0]
        split = SPLIT_OF_FLICKR8K.get(split_of.get(photo, ""))
        if photo is None or split is None:
            continue
        reference, ref_line = strict[name]
        if not reference:
            logger.warning("%s:%d: empty strict caption; image %s left out", strict_file, ref_line, name)
            continue
        for path, caption in zip(weak_files, row):
            if caption:
                out[split].append(WeakPair(photo, caption, reference, f"{path}:{line}"))
    if not out["train"]:
        raise CaptionDataError(f"no weakly-aligned training pair: no Multi30K train image of {weak_images} "
                               f"is a Flickr8k training photo in {f8k}")
    return out


def quantiles(values: Sequence[float]) -> Dict[str, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"mean": round(statistics.fmean(values), 4), "q25": round(q[0], 4), "median": round(q[1], 4),
            "q75": round(q[2], 4), "min": round(min(values), 4), "max": round(max(values), 4)}


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    spm_vocab_file(args.spm_model)  # both files exist, before any work
    tok = SpmTokenizer(args.spm_model)
    check_lang_in_vocab(args.lang, set(tok.vocab()), f"sentencepiece model {args.spm_model}")
    pairs = collect_weak_pairs(args.data, args.lang, args.max_images)
    n_dict = install_vocabulary(args.spm_model, args.out)
    manifest = {"lang": args.lang, "relevance": "chrF of the weak caption against the photo's Task 1 caption",
                "relevance_floor": args.relevance_floor, "dict_symbols": n_dict, "splits": {}}
    tag = lang_tag(args.lang)
    with tempfile.TemporaryDirectory() as tmp:
        names = [s for s in ("train", "valid") if pairs[s]]
        for split in names:
            ps = pairs[split]
            rel = relevance_scores([p.weak for p in ps], [p.strict for p in ps], args.relevance_floor)
            write_rows(tmp, args.out, split, [(tag, tok.encode_line(p.weak), p.photo) for p in ps])
            write_relevance(relevance_path(args.out, split), rel)
            with open(os.path.join(args.out, f"{split}.pairs.tsv"), "w", encoding="utf-8") as f:
                f.write("photo\tweak\tstrict\trelevance\n")
                for p, r in zip(ps, rel):
                    f.write(f"{p.photo}\t{p.weak}\t{p.strict}\t{r:.4f}\n")
            manifest["splits"][split] = {"pairs": len(ps), "photos": len({p.photo for p in ps}),
                                         "relevance": quantiles(rel)}
            logger.info("%s: %s", split, manifest["splits"][split])
        binarize(tmp, args.out, names, args.workers)
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    logger.info("done: %s (a caption stream: weak:caption:%s:RATIO, with --rc3-weight)", args.out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

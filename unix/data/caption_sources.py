"""Where captions come from: Flickr8k's captions and Multi30K's Task 1 / Task 2 files, gathered per photo.

Shared by the caption preparation commands and by evaluation (``unix.evaluation``): both see the
same references for a photo, in the same order. :func:`write_rows` and :func:`binarize` write a
prepared ``tag-cap`` pair (``unix-prepare-captions``, ``unix-prepare-weak-captions``,
``unix-distill-captions``); ``fairseq-preprocess`` runs as a subprocess.

Example::

    splits, caps, stats = collect("../shared/data", ["en", "de"])
    photos, refs = eval_references("../shared/data", "test", "de")   # Flickr8k test photos with German refs
"""

import os
import subprocess
from typing import Dict, Iterable, List, Sequence, Tuple

from unix.data.captions import (FLICKR8K_SPLIT_LISTS, CaptionSet, read_aligned, read_flickr8k_captions,
                                read_flickr8k_splits, read_name_list)
from unix.data.images import flickr8k_index, multi30k_to_flickr8k
from unix.metrics.caption import MissingReferenceError

TASK2 = {"splits": ("train", "val", "test_2016"), "langs": ("en", "de")}
TASK1 = {"splits": ("train", "val", "test_2016_flickr"), "langs": ("de", "fr", "cs")}
# Evaluation references per language: English keeps the Flickr8k benchmark's own five captions
# (Multi30K's extra English captions of the same photos are used for training only); the other
# languages have every caption of the photo (Task 2 German + Task 1 translations).
EVAL_SOURCES = {"en": ("flickr8k",)}
# The two "languages" of a prepared caption pair: the language tag (source) and the caption (target).
SRC, TGT = "tag", "cap"


def multi30k_eval_photos(data: str) -> List[str]:
    """Flickr8k file names of the photos of Multi30K's val and test_2016_flickr splits (those available)."""
    index = flickr8k_index(os.path.join(data, "flickr8k", "images"))
    names = []
    for stem in ("val", "test_2016_flickr"):
        path = os.path.join(data, "multi30k", "image_splits", f"{stem}.txt")
        if not os.path.exists(path):
            raise FileNotFoundError(f"--hold-out-multi30k-eval-photos needs the Multi30K image list {path}")
        names += [m for m in multi30k_to_flickr8k(read_name_list(path), index) if m]
    return names


def hold_out(splits: Dict[str, List[str]], photos: Sequence[str]) -> int:
    """Remove ``photos`` from ``splits["train"]`` in place; return how many training photos went."""
    drop = set(photos)
    before = len(splits["train"])
    splits["train"] = [p for p in splits["train"] if p not in drop]
    return before - len(splits["train"])


def collect(data: str, langs: Sequence[str], use_multi30k: bool = True,
            max_images: int = 0) -> Tuple[Dict[str, List[str]], CaptionSet, Dict[str, int]]:
    """Read every source; return (photos per split, captions per photo and language, counts)."""
    f8k, m30k = os.path.join(data, "flickr8k"), os.path.join(data, "multi30k")
    splits = read_flickr8k_splits(f8k, max_images=max_images)
    allowed = {p for names in splits.values() for p in names}
    caps = CaptionSet()
    stats = {"multi30k_lines_without_flickr8k_photo": 0, "multi30k_lines_outside_splits": 0}
    if "en" in langs:
        path = os.path.join(f8k, "captions.txt")
        f8k_caps = read_flickr8k_captions(path)
        for split, names in splits.items():
            for i, name in enumerate(names, start=1):
                if not f8k_caps.get(name):
                    raise MissingReferenceError(f"{os.path.join(f8k, FLICKR8K_SPLIT_LISTS[split])}:{i}: "
                                                f"no caption for {name} in {path}")
                for c in f8k_caps[name]:
                    caps.add(name, "en", c, where=path, source="flickr8k")
    if use_multi30k:
        index = flickr8k_index(os.path.join(f8k, "images"))
        sources = [("multi30k_task2", os.path.join(m30k, "captions", f"{s}_images.txt"),
                    [(lang, os.path.join(m30k, "captions", f"{s}.{k}.{lang}")) for lang in TASK2["langs"]
                     if lang in langs for k in range(1, 6)]) for s in TASK2["splits"]]
        sources += [("multi30k_task1", os.path.join(m30k, "image_splits", f"{s}.txt"),
                     [(lang, os.path.join(m30k, f"{s}.{lang}")) for lang in TASK1["langs"] if lang in langs])
                    for s in TASK1["splits"]]
        for source, images_path, files in sources:
            if not files:
                continue
            for line, name, row in read_aligned(images_path, [p for _, p in files]):
                photo = index.get(name.split(".")[0])
                if photo is None:
                    stats["multi30k_lines_without_flickr8k_photo"] += 1
                    continue
                if photo not in allowed:
                    stats["multi30k_lines_outside_splits"] += 1
                    continue
                for (lang, path), caption in zip(files, row):
                    caps.add(photo, lang, caption, where=f"{path}:{line}", source=source)
    stats["duplicates_dropped"], stats["empty_dropped"] = caps.duplicates, caps.empty
    return splits, caps, stats


def eval_references(data: str, split: str, lang: str) -> Tuple[List[str], List[List[str]]]:
    """The evaluation references of a Flickr8k split in one language, as the prepared ``<split>_<lang>``.

    Args:
        data: root holding ``flickr8k/`` and ``multi30k/`` (``../shared/data``).
        split: ``train``, ``valid`` or ``test`` (Flickr8k's official splits).
        lang: caption language; English keeps Flickr8k's own five captions, other languages every
            caption of the photo (Task 2 + Task 1).

    Returns:
        ``(photos, refs)``: the photos of the split that have a reference in ``lang`` (Flickr8k file
        names, split order) and their references.
    """
    splits, caps, _ = collect(data, [lang], use_multi30k=lang != "en")  # en: Flickr8k's own captions only
    sources = EVAL_SOURCES.get(lang)
    photos = [p for p in splits[split] if caps.refs(p, lang, sources)]
    return photos, [caps.refs(p, lang, sources) for p in photos]


def write_rows(tmp: str, out: str, name: str, rows: Iterable[Tuple[str, str, str]]) -> None:
    """Write (tag, target pieces, photo) rows: ``<name>.tag`` / ``<name>.cap`` to ``tmp`` (for
    :func:`binarize`), ``<name>.images.txt`` to ``out``."""
    with open(os.path.join(tmp, f"{name}.{SRC}"), "w", encoding="utf-8") as fs, \
            open(os.path.join(tmp, f"{name}.{TGT}"), "w", encoding="utf-8") as ft, \
            open(os.path.join(out, f"{name}.images.txt"), "w", encoding="utf-8") as fi:
        for tag, target, photo in rows:
            fs.write(tag + "\n")
            ft.write(target + "\n")
            fi.write(photo + "\n")


def binarize(tmp: str, out: str, names: Sequence[str], workers: int) -> None:
    """fairseq-preprocess all splits, then rename fairseq's valid1, test2, ... to our split names.

    ``test_*`` go through fairseq's test prefixes, every other evaluation split (``valid_*``,
    ``train_*``) through its valid prefixes.
    """
    test = [n for n in names if n.startswith("test_")]
    valid = [n for n in names if n != "train" and n not in test]
    dict_path = os.path.join(out, "dict.txt")
    cmd = ["fairseq-preprocess", "-s", SRC, "-t", TGT, "--trainpref", os.path.join(tmp, "train"),
           "--destdir", out, "--srcdict", dict_path, "--tgtdict", dict_path, "--workers", str(workers)]
    if valid:
        cmd += ["--validpref", ",".join(os.path.join(tmp, n) for n in valid)]
    if test:
        cmd += ["--testpref", ",".join(os.path.join(tmp, n) for n in test)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"fairseq-preprocess failed:\n{proc.stderr[-3000:]}")
    for kind, group in (("valid", valid), ("test", test)):
        for k, name in enumerate(group):
            fairseq_name = kind if k == 0 else f"{kind}{k}"
            for lang in (SRC, TGT):
                for ext in ("bin", "idx"):
                    os.replace(os.path.join(out, f"{fairseq_name}.{SRC}-{TGT}.{lang}.{ext}"),
                               os.path.join(out, f"{name}.{SRC}-{TGT}.{lang}.{ext}"))

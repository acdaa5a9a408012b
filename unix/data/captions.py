"""Caption data: reading Flickr8k and Multi30K caption files, references per photo and language.

Captions of one photo in one language come from several sources (Flickr8k's five English
captions, Multi30K Task 2's five English and five German ones, Task 1's translations). They are
gathered per photo and language by :class:`CaptionSet`; a caption repeating (up to case, spacing
and punctuation) one of another source is dropped (Multi30K's English captions of Flickr8k photos
are mostly Flickr8k's own, tokenized differently).

Evaluation splits have one sample per photo whose target is all its references joined by
``<sep>`` (:mod:`unix.metrics.references`); :func:`first_reference` cuts such a target batch back
to the first reference (validation loss).
"""

import logging
import os
import re
from collections import OrderedDict
from typing import Container, Dict, Hashable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from unix.data.generate_output import GenerateOutputError, open_text, read_generate_output  # noqa: F401
from unix.data.images import ImageError
from unix.metrics.references import SEP

logger = logging.getLogger(__name__)

SPM_SPACE = "\u2581"  # sentencepiece's word-start marker
# Flickr8k's official split lists (in the Flickr8k directory), by our split name
FLICKR8K_SPLIT_LISTS = {"train": "train_images.txt", "valid": "dev_images.txt", "test": "test_images.txt"}


class CaptionDataError(ValueError):
    """A caption or split file is malformed; the message names file and line."""


def normalize_caption(text: str) -> str:
    """Key for near-duplicate detection: lowercase, words only (``"A dog ."`` == ``"a dog"``)."""
    return " ".join(re.findall(r"\w+", text.lower()))


def multi30k_dir(data: str) -> str:
    """``<data>/multi30k`` (the layout of ../shared/data), or ``FileNotFoundError`` naming what was expected."""
    m30k = os.path.join(data, "multi30k")
    if not os.path.isdir(m30k):
        raise FileNotFoundError(f"Multi30K not found under {data!r} (expected {m30k}/)")
    return m30k


def read_name_list(path: str) -> List[str]:
    """Read a list of image names, one a line; an empty line is an error naming file and line."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"list not found: {path}")
    names = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            name = line.strip()
            if not name:
                raise CaptionDataError(f"{path}:{i}: empty line in an image list")
            names.append(name)
    return names


def read_flickr8k_splits(f8k: str, splits: Sequence[str] = tuple(FLICKR8K_SPLIT_LISTS),
                         max_images: int = 0) -> Dict[str, List[str]]:
    """Flickr8k's official splits: ``{split: [photo file name, ...]}``.

    Args:
        f8k: the Flickr8k directory (split lists and ``images/``).
        splits: which of ``train``, ``valid`` (``dev_images.txt``), ``test`` to read.
        max_images: keep the first N photos of every split (0: all).

    Raises:
        FileNotFoundError: a split list is missing.
        CaptionDataError: an empty line, or a photo listed in two splits (file:line).
        ImageError: a listed photo is not in ``images/`` (file:line).
    """
    out, seen = {}, {}
    images_dir = os.path.join(f8k, "images")
    for split in splits:
        path = os.path.join(f8k, FLICKR8K_SPLIT_LISTS[split])
        names = read_name_list(path)
        for i, name in enumerate(names, start=1):
            if name in seen:
                raise CaptionDataError(f"{path}:{i}: photo {name} is also in {seen[name]}")
            seen[name] = f"{path}:{i}"
            if not os.path.isfile(os.path.join(images_dir, name)):
                raise ImageError(f"{path}:{i}: photo not found: {os.path.join(images_dir, name)}")
        out[split] = names[:max_images] if max_images else names
    return out


def read_flickr8k_captions(path: str) -> "OrderedDict[str, List[str]]":
    """Read Flickr8k's ``captions.txt`` (``<image>#<k>\\t<caption>`` a line).

    Returns:
        image file name -> its captions, in file order. Empty captions are skipped with a warning.

    Raises:
        CaptionDataError: on a line without a tab or without ``#<k>``, naming file and line.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"Flickr8k captions not found: {path}")
    out: "OrderedDict[str, List[str]]" = OrderedDict()
    empty = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if "\t" not in line:
                raise CaptionDataError(f"{path}:{i}: expected '<image>#<k><TAB><caption>', got {line[:80]!r}")
            key, caption = line.split("\t", 1)
            name, sep, k = key.partition("#")
            if not sep or not name or not k.isdigit():
                raise CaptionDataError(f"{path}:{i}: expected '<image>#<k>' before the tab, got {key!r}")
            caption = caption.strip()
            if not caption:
                empty.append(i)
                continue
            out.setdefault(name, []).append(caption)
    if empty:
        logger.warning("%s: %d empty captions skipped (first at line %d)", path, len(empty), empty[0])
    return out


def read_aligned(images_path: str, caption_paths: Sequence[str]) -> Iterator[Tuple[int, str, List[str]]]:
    """Yield ``(line, image name, [caption of each file])`` of line-aligned Multi30K files.

    Raises:
        CaptionDataError: if a file has another number of lines than the image list.
    """
    names = read_name_list(images_path)
    columns = []
    for p in caption_paths:
        if not os.path.exists(p):
            raise FileNotFoundError(f"caption file not found: {p}")
        with open(p, encoding="utf-8") as f:
            col = [line.rstrip("\n").strip() for line in f]
        if len(col) != len(names):
            raise CaptionDataError(f"{p}: {len(col)} lines but {images_path} names {len(names)} images; "
                                   "the files must be aligned line by line")
        columns.append(col)
    for i, name in enumerate(names):
        yield i + 1, name, [col[i] for col in columns]


class CaptionSet:
    """Reference captions per photo and language, near-duplicates removed.

    Each caption remembers its source (e.g. ``"flickr8k"``), so evaluation can keep the
    references of a benchmark only (the first source that adds a caption owns it). A caption
    repeating one of another source is dropped; repeats within a source are kept as released.

    Example::

        cs = CaptionSet()
        cs.add("123_abc.jpg", "en", "A dog runs .", where="captions.txt:7", source="flickr8k")
        cs.refs("123_abc.jpg", "en")  # ["A dog runs ."]
    """

    def __init__(self):
        self._refs: Dict[str, Dict[str, List[Tuple[str, str, str]]]] = {}  # photo -> lang -> (key, text, source)
        self.duplicates = 0
        self.empty = 0

    def add(self, photo: str, lang: str, caption: str, where: str = "", source: str = "") -> bool:
        """Add one caption; returns False if it was empty or repeats one of *another* source.

        Repeats within one source are kept (a benchmark's references stay as released).

        Raises:
            CaptionDataError: if the caption contains the reference separator ``<sep>``.
        """
        caption = " ".join(caption.split())
        if SEP in caption:
            raise CaptionDataError(f"{where or photo}: caption contains the reserved symbol {SEP}: {caption!r}")
        key = normalize_caption(caption)
        if not key:
            self.empty += 1
            return False
        entries = self._refs.setdefault(photo, {}).setdefault(lang, [])
        if any(k == key and src != source for k, _, src in entries):
            self.duplicates += 1
            return False
        entries.append((key, caption, source))
        return True

    def refs(self, photo: str, lang: str, sources: Optional[Container[str]] = None) -> List[str]:
        """Captions of ``photo`` in ``lang`` (only those of ``sources``, if given), in order added."""
        entries = self._refs.get(photo, {}).get(lang, [])
        return [c for _, c, src in entries if sources is None or src in sources]

    def photos(self) -> List[str]:
        return list(self._refs)

    def langs(self) -> List[str]:
        return sorted({lang for by_lang in self._refs.values() for lang in by_lang})

    def count(self, lang: str, photos: Optional[Sequence[str]] = None,
              sources: Optional[Container[str]] = None) -> Tuple[int, int]:
        """(photos with at least one caption in ``lang``, captions in ``lang``) over ``photos``."""
        photos = self.photos() if photos is None else photos
        n = [len(self.refs(p, lang, sources)) for p in photos]
        return sum(1 for x in n if x), sum(n)


def read_caption_samples(path: str):
    """:func:`~unix.data.generate_output.read_generate_output` of a caption output; its errors are
    :class:`CaptionDataError` (what the caption tools report)."""
    try:
        return read_generate_output(path)
    except GenerateOutputError as e:
        raise CaptionDataError(str(e)) from None


def parse_generate_output(path: str) -> Dict[int, Dict[str, str]]:
    """Read a ``fairseq-generate`` output: sample id -> ``{"S", "T", "H", "D"}`` strings.

    Only the first hypothesis of each sample is kept (``--nbest 1``); ``H``/``D`` drop the score.
    Read by :func:`unix.data.generate_output.read_generate_output` (``.gz`` too).

    Raises:
        CaptionDataError: on a malformed line (file and line named) or if no hypothesis is found.
    """
    samples = read_caption_samples(path)
    out: Dict[int, Dict[str, str]] = {}
    for sid, sample in samples.items():
        entry = out.setdefault(sid, {})
        if sample.source is not None:
            entry["S"] = sample.source
        if sample.target is not None:
            entry["T"] = sample.target
        if sample.hyps:
            entry["H"] = sample.hyps[0].text
            if sample.hyps[0].detok is not None:
                entry["D"] = sample.hyps[0].detok
    return out


def join_pieces(text: str) -> str:
    """Undo sentencepiece pieces (``"▁a ▁dog"`` -> ``"a dog"``); other text is only stripped.

    fairseq prints pieces unless ``--post-process sentencepiece`` is given; this makes both alike.
    """
    if SPM_SPACE not in text:
        return text.strip()
    return text.replace(" ", "").replace(SPM_SPACE, " ").strip()


def lang_of_source(source: str) -> Optional[str]:
    """``"__de__"`` -> ``"de"`` (the language tag that is a captioning source), else None."""
    m = re.fullmatch(r"\s*__([A-Za-z0-9_-]+?)__\s*", source or "")
    return m.group(1) if m else None


def first_reference(target: torch.Tensor, sep: int, eos: int, pad: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cut multi-reference targets ``r1 <sep> r2 ... </s>`` back to ``r1 </s>``.

    Args:
        target: (B, T) right-padded targets ending in ``eos``.
        sep: index of ``<sep>``; eos, pad: indices of ``</s>`` and padding.

    Returns:
        ``(target, prev_output_tokens)``, both (B, T') right-padded: the first reference and the
        decoder input (``eos`` then the reference shifted right, as fairseq's input feeding).
    """
    rows = []
    for row in target:
        toks = row[row.ne(pad)]
        if toks.numel() and toks[-1] == eos:
            toks = toks[:-1]
        cut = (toks == sep).nonzero()
        if len(cut):
            toks = toks[: int(cut[0])]
        rows.append(torch.cat([toks, toks.new_tensor([eos])]))
    T = max(len(r) for r in rows)
    tgt = target.new_full((len(rows), T), pad)
    prev = target.new_full((len(rows), T), pad)
    for i, r in enumerate(rows):
        tgt[i, : len(r)] = r
        prev[i, 0] = eos
        prev[i, 1: len(r)] = r[:-1]
    return tgt, prev


def group_references(keys: Sequence[Hashable],
                     references: Sequence[Sequence[str]]) -> Tuple[List[int], List[List[str]]]:
    """Pool the references of samples that share a key (a photo and a language).

    A training split has one sample per caption; a reward or a score of a caption for that
    photo needs all the photo's captions in that language. An evaluation split (one sample per
    photo, all references in its target) comes out unchanged.

    Args:
        keys: (N,) one key per sample, e.g. ``(image path, language tag)``.
        references: (N,) the references of each sample (one caption for a training sample).

    Returns:
        ``(group_of, groups)``: the group index of every sample and the references of every
        group, in order of first appearance, duplicates within a group kept once.
    """
    if len(keys) != len(references):
        raise ValueError(f"{len(keys)} keys but {len(references)} reference lists")
    index: Dict[Hashable, int] = {}
    groups: List[Dict[str, None]] = []  # insertion-ordered sets
    group_of: List[int] = []
    for key, refs in zip(keys, references):
        g = index.setdefault(key, len(groups))
        if g == len(groups):
            groups.append({})
        groups[g].update(dict.fromkeys(refs))
        group_of.append(g)
    return group_of, [list(g) for g in groups]


def photo_language_groups(paths: Sequence[str], sources) -> np.ndarray:
    """(N,) ids, equal for samples with the same photo and language tag (the same encoder input).

    Args:
        paths: (N,) the photo of every sample.
        sources: (N,) source token tensors whose first token is the language tag.
    """
    keys = [(p, int(sources[i][0])) for i, p in enumerate(paths)]
    ids: Dict[Tuple[str, int], int] = {}
    return np.array([ids.setdefault(k, len(ids)) for k in keys], dtype=np.int64)


def check_tag_sources(sizes: Sequence[int], first_tokens: Sequence[int], tag_ids: Container[int],
                      symbols: Sequence[str], path: str) -> None:
    """Every caption source must be exactly one language tag of the dictionary (then ``</s>``).

    Args:
        sizes: (N,) source lengths, ``</s>`` included.
        first_tokens: (N,) the first token of every source.
        tag_ids: the indices of the dictionary's language tags.
        symbols: the dictionary's symbols.
        path: the binarized source file, for the message.

    Raises:
        ValueError: naming ``path`` and the line of the first bad source.
    """
    sizes = np.asarray(sizes)
    bad = np.flatnonzero(sizes != 2)
    if len(bad):
        raise ValueError(f"{path}: line {bad[0] + 1}: the source must be one language tag (e.g. __en__), "
                         f"got {sizes[bad[0]] - 1} tokens ({len(bad)} such lines)")
    known = ", ".join(sorted(symbols[i][2:-2] for i in tag_ids)) or "none"
    for i, tok in enumerate(first_tokens):
        if tok not in tag_ids:
            raise ValueError(f"{path}: line {i + 1}: source {symbols[tok]!r} is not a language tag "
                             f"of the dictionary (languages known: {known}); a tag missing from the "
                             "vocabulary is binarized as <unk>")

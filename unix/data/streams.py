"""Pre-training data streams: their specification, checks and sampling ratios (no fairseq).

A pre-training run mixes several *streams*; each batch comes from one of them and the stream
decides which objectives apply (see ``fairseq_plugins/tasks/unix_pretrain.py``). A stream is
written ``NAME:KIND:DIR:RATIO[:LANGS]``, several joined by commas::

    cap:caption:captions:0.4,ende:translation:multi30k:0.3:en-de,mono:denoise:multi30k:0.1:en

* ``caption``: image + language tag -> caption, the ``tag-cap`` pair of ``unix-prepare-captions``;
* ``translation``: a binarized language pair ``SRC-TGT`` (``unix-prepare-multi30k``), with images
  where the directory has an image list (multimodal translation) or text only;
* ``denoise``: monolingual text of language ``LANG`` (``<split>.LANG-None.LANG`` of
  ``fairseq-preprocess --only-source``, or the ``LANG`` side of any binarized pair in ``DIR``).

``DIR`` is relative to the task's data directory unless absolute; ``RATIO`` is the share of the
training samples drawn from the stream (normalised over all streams).
"""

from __future__ import annotations

import logging
import math
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

KINDS = ("caption", "translation", "denoise")


class StreamSpec(NamedTuple):
    """One data stream.

    Attributes:
        name: unique name (the key of its batches and of its log lines).
        kind: one of :data:`KINDS`.
        path: data directory (as written; resolved by the task).
        ratio: unnormalised sampling weight, >= 0.
        src: source language (``translation``), the language (``denoise``), else None.
        tgt: target language (``translation``), else None.
    """

    name: str
    kind: str
    path: str
    ratio: float
    src: Optional[str] = None
    tgt: Optional[str] = None


class StreamError(ValueError):
    """A stream specification or stream data that cannot be used."""


def parse_stream(text: str) -> StreamSpec:
    """Parse ``NAME:KIND:DIR:RATIO[:LANGS]`` (see the module docstring)."""
    parts = text.strip().split(":")
    if len(parts) not in (4, 5):
        raise StreamError(f"stream {text!r}: expected NAME:KIND:DIR:RATIO[:LANGS]")
    name, kind, path, ratio_s = parts[:4]
    langs = parts[4] if len(parts) == 5 else ""
    if not name or not path:
        raise StreamError(f"stream {text!r}: empty name or directory")
    if kind not in KINDS:
        raise StreamError(f"stream {name!r}: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    try:
        ratio = float(ratio_s)
    except ValueError:
        raise StreamError(f"stream {name!r}: ratio {ratio_s!r} is not a number") from None
    if not math.isfinite(ratio) or ratio < 0:
        raise StreamError(f"stream {name!r}: ratio must be a finite number >= 0, got {ratio_s}")
    src = tgt = None
    if kind == "translation":
        if langs.count("-") != 1 or not all(langs.split("-")):
            raise StreamError(f"stream {name!r}: a translation stream needs its pair, e.g. ...:{ratio_s}:en-de")
        src, tgt = langs.split("-")
    elif kind == "denoise":
        if not langs or "-" in langs:
            raise StreamError(f"stream {name!r}: a denoise stream needs its language, e.g. ...:{ratio_s}:en")
        src = langs
    elif langs:
        raise StreamError(f"stream {name!r}: a caption stream takes no languages (tags are in the data)")
    return StreamSpec(name, kind, path, ratio, src, tgt)


def parse_streams(text: Optional[str]) -> List[StreamSpec]:
    """Parse a comma-separated list of streams; checks names are unique and ratios usable.

    Raises:
        StreamError: empty list, bad entry, duplicate name, or ratios that do not sum to a
            positive value.
    """
    entries = [t for t in (text or "").split(",") if t.strip()]
    if not entries:
        raise StreamError("no data streams: give --streams NAME:KIND:DIR:RATIO[:LANGS],...")
    specs = [parse_stream(t) for t in entries]
    seen = set()
    for s in specs:
        if s.name in seen:
            raise StreamError(f"stream name {s.name!r} is used twice")
        seen.add(s.name)
    normalized_ratios(specs)
    return specs


def normalized_ratios(specs: Sequence[StreamSpec]) -> List[float]:
    """Ratios divided by their sum, summing to exactly 1.0 in floating point.

    Raises:
        StreamError: if the ratios do not sum to a positive value.
    """
    total = sum(s.ratio for s in specs)
    if not total > 0:
        raise StreamError(f"stream ratios must sum to a positive value, got "
                          f"{', '.join(f'{s.name}={s.ratio:g}' for s in specs)}")
    out = [s.ratio / total for s in specs]
    last = max(i for i, r in enumerate(out) if r > 0)
    out[last] = 0.0
    out[last] = 1.0 - sum(out)
    for _ in range(8):  # fairseq's MultiCorpusDataset asserts sum(distribution) == 1 exactly
        err = sum(out) - 1.0
        if err == 0:
            break
        out[last] = math.nextafter(out[last], -math.inf if err > 0 else math.inf)
    return out


def parallel_pairs(specs: Sequence[StreamSpec]) -> List[Tuple[str, str]]:
    """(src, tgt) pairs of the translation streams, in order, without repeats."""
    pairs: List[Tuple[str, str]] = []
    for s in specs:
        if s.kind == "translation" and (s.src, s.tgt) not in pairs:
            pairs.append((s.src, s.tgt))
    return pairs


def check_parallel_langs(langs: Sequence[str], specs: Sequence[StreamSpec], what: str,
                         pivot: str = "en") -> Dict[str, StreamSpec]:
    """Map each language to a translation stream pairing it with ``pivot``.

    Args:
        langs: languages that need parallel data with ``pivot`` (e.g. for cross-lingual
            contrastive learning or a code-switching word list).
        what: the objective, for the error message.

    Raises:
        StreamError: naming the languages without such a stream.
    """
    found: Dict[str, StreamSpec] = {}
    for lang in langs:
        for s in specs:
            if s.kind == "translation" and {s.src, s.tgt} == {pivot, lang}:
                found[lang] = s
                break
    missing = [lang for lang in langs if lang not in found]
    if missing:
        have = ", ".join(f"{a}-{b}" for a, b in parallel_pairs(specs)) or "none"
        raise StreamError(f"{what} needs parallel data {pivot}<->{'/'.join(missing)}, but no "
                          f"translation stream has it (streams' pairs: {have})")
    return found

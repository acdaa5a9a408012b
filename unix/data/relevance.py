"""Textual relevance of weakly-aligned captions, for RC3 (:mod:`unix.losses.rc3`); no fairseq.

A *weakly-aligned* pair is a photo with a caption written for it independently (Multi30K Task 2:
five German captions per photo, written without the English ones). Its *relevance* says how well
that caption agrees with the photo's *strictly-aligned* caption in the same language (Multi30K
Task 1: the German translation of the photo's English description).

Relevance here (our choice; RC3's own relevance model is not described in the paper's text we
could read): sentence-level chrF (sacrebleu's ``CHRF``: character 6-grams, beta 2) of the weak
caption against the strict one, divided by 100, optionally lifted by a floor
``f``: ``r = f + (1 - f) * chrF / 100``. On Multi30K train (German, first 2,000 images, caption
set 1) the image's own translation gives chrF 24.9 on average, a random other image's 14.9; over
the 25,880 weak training pairs of ``unix-prepare-weak-captions`` the relevance has mean
0.302 and quartiles 0.205 / 0.283 / 0.375. The raw value is small even for a good caption, hence
the floor option.

Files: ``<split>.relevance`` beside a caption stream's binarized data, one number in [0, 1] a
line, line ``i`` for sample ``i`` (the order of ``<split>.images.txt``).
"""

from __future__ import annotations

import logging
import math
import os
from typing import List, Optional, Sequence, Union

logger = logging.getLogger(__name__)

RELEVANCE_SUFFIX = "relevance"


class RelevanceError(ValueError):
    """A relevance file or value that cannot be used; the message names the file and line."""


def relevance_path(stream_dir: str, split: str) -> str:
    """``<stream_dir>/<split>.relevance``."""
    return os.path.join(stream_dir, f"{split}.{RELEVANCE_SUFFIX}")


def chrf_relevance(weak: str, strict: Union[str, Sequence[str]], floor: float = 0.0) -> float:
    """Relevance of one weak caption: ``floor + (1 - floor) * chrF(weak, strict) / 100``.

    Args:
        weak: the weakly-aligned caption.
        strict: the photo's strictly-aligned caption (or several: chrF against all of them).
        floor: the relevance of a caption sharing nothing with ``strict``, in [0, 1).

    Returns:
        a number in [floor, 1]; 1 for a caption identical to the strict one.
    """
    from sacrebleu.metrics import CHRF

    if not 0.0 <= floor < 1.0:
        raise RelevanceError(f"the relevance floor must lie in [0, 1), got {floor}")
    refs = [strict] if isinstance(strict, str) else list(strict)
    score = CHRF().sentence_score(weak, refs).score / 100.0
    return floor + (1.0 - floor) * min(max(score, 0.0), 1.0)


def relevance_scores(weak: Sequence[str], strict: Sequence[str], floor: float = 0.0) -> List[float]:
    """:func:`chrf_relevance` of ``weak[i]`` against ``strict[i]`` for every ``i``."""
    if len(weak) != len(strict):
        raise RelevanceError(f"{len(weak)} weak captions but {len(strict)} strict ones")
    return [chrf_relevance(w, s, floor) for w, s in zip(weak, strict)]


def write_relevance(path: str, values: Sequence[float]) -> None:
    """Write one relevance a line (6 decimals)."""
    with open(path, "w", encoding="utf-8") as f:
        for v in values:
            f.write(f"{v:.6f}\n")


def read_relevance(path: str, expected: Optional[int] = None) -> List[float]:
    """Read a relevance file and check it.

    Args:
        path: ``<split>.relevance``.
        expected: the number of samples it must describe (the stream's split), or None.

    Raises:
        RelevanceError: naming the file and line of a value that is not a number in [0, 1], or
            the file when its line count differs from ``expected``.
    """
    if not os.path.exists(path):
        raise RelevanceError(f"relevance file not found: {path}")
    values = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            text = line.strip()
            try:
                v = float(text)
            except ValueError:
                raise RelevanceError(f"{path}:{n}: {text!r} is not a number") from None
            if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                raise RelevanceError(f"{path}:{n}: relevance {text} is outside [0, 1]")
            values.append(v)
    if expected is not None and len(values) != expected:
        raise RelevanceError(f"{path}: {len(values)} relevance lines for {expected} samples")
    return values

"""Several references in one target string.

fairseq-generate hands a scorer one target string per sentence. Evaluation splits whose samples
have several references (captions of one image, answers of several annotators) store them in
that one string, separated by the ``<sep>`` symbol of the shared vocabulary (a sentencepiece
user-defined symbol, so it survives tokenization and ``--post-process sentencepiece``).
"""

from typing import List, Sequence

SEP = "<sep>"


class MissingReferenceError(ValueError):
    """An image has no reference caption, so it cannot be scored."""


def check_references(refs: Sequence[Sequence[str]], where: str = "references") -> None:
    """Raise :class:`MissingReferenceError` naming the first image without a reference."""
    for i, r in enumerate(refs):
        if not r or not any(x.strip() for x in r):
            raise MissingReferenceError(f"{where}: image {i + 1} (sample id {i}) has no reference caption")


def join_references(refs: Sequence[str]) -> str:
    """``["a dog", "a cat"]`` -> ``"a dog <sep> a cat"``.

    Raises:
        ValueError: if there is no reference, one is empty, or one contains ``<sep>`` itself.
    """
    if not refs:
        raise ValueError("no reference given")
    for r in refs:
        if not r.strip():
            raise ValueError("empty reference")
        if SEP in r:
            raise ValueError(f"reference contains the separator {SEP!r}: {r!r}")
    return f" {SEP} ".join(r.strip() for r in refs)


def split_references(target: str) -> List[str]:
    """Inverse of :func:`join_references` (whitespace around each reference stripped)."""
    return [r.strip() for r in target.split(SEP) if r.strip()]

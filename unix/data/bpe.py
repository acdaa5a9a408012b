"""Joint BPE with subword-nmt, as the published Multi30K systems used it.

The published protocol (Revisit-MMT, Wu et al. 2021; fairseq_mmt, Li et al. 2022) learns one BPE
model of 10,000 merges on the concatenated training text of both languages of a pair (Moses-
tokenized, lowercased, normalized: Multi30K's ``tok/*.lc.norm.tok.*``) with ``subword-nmt
learn-bpe -s 10000`` and applies it to every split with plain ``subword-nmt apply-bpe -c codes``
(no vocabulary filter). Subwords end in ``@@`` when the word goes on; removing ``"@@ "`` (fairseq's
``--post-process subword_nmt``, alias ``--remove-bpe``) restores the tokenized text exactly.

Example::

    learn_joint_bpe(["train.en", "train.de"], "bpe.codes", merges=10000)
    bpe = load_bpe("bpe.codes")
    apply_bpe_file(bpe, "test.en", "test.bpe.en")
    bpe.process_line("a little girl climbing into a wooden playhouse .")
    # 'a little girl climbing into a wooden play@@ house .'
    multi30k_tokenize("A man's \"red\" hat.", "en")   # raw text -> the release's tokens
    # 'a man &apos;s &quot; red &quot; hat .'
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from functools import lru_cache
from typing import Sequence

logger = logging.getLogger(__name__)

SEPARATOR = "@@"


def _subword_nmt():
    try:
        from subword_nmt import apply_bpe, learn_bpe
    except ImportError as e:  # pragma: no cover - an install problem, not a code path
        raise ImportError("the tok-bpe protocol needs subword-nmt (pip install subword-nmt==0.3.8)") from e
    return learn_bpe, apply_bpe


def subword_nmt_version() -> str:
    """Installed subword-nmt version ("unknown" when the package has no metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("subword-nmt")
    except PackageNotFoundError:
        return "unknown"


def learn_joint_bpe(inputs: Sequence[str], codes_path: str, merges: int = 10000, min_frequency: int = 2) -> str:
    """Learn ``merges`` BPE merge operations on the concatenation of ``inputs`` (one file, in order).

    Equivalent to ``cat inputs... | subword-nmt learn-bpe -s merges > codes_path``.

    Args:
        inputs: text files, one sentence a line (e.g. the source and target training files).
        codes_path: where the codes file is written (``#version: 0.2`` header, one merge a line).
        merges: number of merge operations.
        min_frequency: stop when the most frequent pair is rarer (subword-nmt's default 2).

    Returns:
        ``codes_path``.
    """
    if not inputs:
        raise ValueError("learn_joint_bpe needs at least one input file")
    learn_bpe, _ = _subword_nmt()
    with tempfile.TemporaryDirectory() as tmp:
        joined = os.path.join(tmp, "joined.txt")
        with open(joined, "wb") as out:
            for path in inputs:
                with open(path, "rb") as f:
                    shutil.copyfileobj(f, out)
        with open(joined, encoding="utf-8") as fin, open(codes_path, "w", encoding="utf-8") as fout:
            learn_bpe.learn_bpe(fin, fout, merges, min_frequency=min_frequency)
    logger.info("learned %d BPE merges on %s -> %s", merges, ", ".join(inputs), codes_path)
    return codes_path


def load_bpe(codes_path: str):
    """subword-nmt's ``BPE`` segmenter of a codes file (all merges, no vocabulary filter)."""
    _, apply_bpe = _subword_nmt()
    with open(codes_path, encoding="utf-8") as f:
        return apply_bpe.BPE(f, separator=SEPARATOR)


def apply_bpe_file(bpe, src: str, dst: str) -> int:
    """Segment every line of ``src`` into ``dst`` (as ``subword-nmt apply-bpe``); returns the line count."""
    n = 0
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for line in fin:
            fout.write(bpe.process_line(line))
            n += 1
    return n


@lru_cache(maxsize=8)
def moses_tools(lang: str):
    """(Moses punctuation normalizer, Moses tokenizer) of ``lang``, made once per language."""
    from sacremoses import MosesPunctNormalizer, MosesTokenizer

    return MosesPunctNormalizer(lang=lang), MosesTokenizer(lang=lang)


def multi30k_tokenize(text: str, lang: str) -> str:
    """Raw text -> the Multi30K ``tok/*.lc.norm.tok.*`` release: Moses punctuation normalization,
    lowercasing, Moses tokenization with escaping (``'`` -> ``&apos;``, ``"`` -> ``&quot;``).

    Reproduces the release from the raw files: train 29,000/29,000 (en), 28,993 (de), 28,982 (fr)
    lines identical; test_2016_flickr 1,000/1,000 (en, de), 999 (fr).
    """
    norm, tok = moses_tools(lang)
    return tok.tokenize(norm.normalize(" ".join(text.split())).lower(), escape=True, return_str=True)


def remove_bpe(text: str) -> str:
    """Undo the segmentation: ``"play@@ house"`` -> ``"playhouse"`` (fairseq's ``subword_nmt`` post-process)."""
    return (text + " ").replace(SEPARATOR + " ", "").rstrip()

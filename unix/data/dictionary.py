"""A fairseq-free reader of fairseq's ``dict.txt``, with fairseq's ``Dictionary`` semantics.

Indices: ``<s>`` = 0, ``<pad>`` = 1, ``</s>`` = 2, ``<unk>`` = 3, then the symbols of the file in
order (``symbol count [#fairseq:overwrite]`` a line). :meth:`Dictionary.encode_line` and
:meth:`Dictionary.string` behave as fairseq's (whitespace split, unknown -> ``<unk>``, ``</s>``
appended; ``</s>`` and ``<s>`` dropped on output, then ``--post-process``), so a model exported
from a fairseq checkpoint sees the same ids and prints the same strings as ``fairseq-generate``.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Sequence

import torch

_SPACE = re.compile(r"\s+")
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


class DictionaryError(ValueError):
    """A ``dict.txt`` that fairseq could not read either."""


def post_process(sentence: str, symbol: Optional[str]) -> str:
    """fairseq's ``data_utils.post_process`` for the symbols used here.

    ``"sentencepiece"``: pieces joined, ``▁`` -> space; ``"subword_nmt"``/``"@@ "``: BPE
    continuation marks removed; ``None``/``"none"``: unchanged.
    """
    if symbol == "sentencepiece":
        return sentence.replace(" ", "").replace("\u2581", " ").strip()
    if symbol in ("subword_nmt", "@@ ", "@@"):
        mark = "@@ " if symbol == "subword_nmt" else symbol
        return (sentence + " ").replace(mark, "").rstrip()
    if symbol in (None, "none"):
        return sentence
    raise ValueError(f"unknown post-process {symbol!r} (sentencepiece, subword_nmt, none)")


class Dictionary:
    """Symbols <-> ids as fairseq's ``Dictionary.load(dict.txt)`` maps them."""

    def __init__(self):
        self.symbols: List[str] = []
        self.indices: Dict[str, int] = {}
        for s in SPECIALS:
            self._add(s)
        self.bos_index, self.pad_index, self.eos_index, self.unk_index = 0, 1, 2, 3

    def _add(self, word: str, overwrite: bool = False) -> int:
        if word in self.indices and not overwrite:
            return self.indices[word]
        self.indices[word] = len(self.symbols)
        self.symbols.append(word)
        return self.indices[word]

    @classmethod
    def load(cls, path: str) -> "Dictionary":
        """Read ``dict.txt``.

        Raises:
            DictionaryError: naming the file and line of a malformed or duplicate entry.
        """
        d = cls()
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
        except UnicodeError as e:
            raise DictionaryError(f"{path}: not UTF-8 text: {e}") from e
        for n, raw in enumerate(lines, start=1):
            try:
                word, field = raw.rstrip().rsplit(" ", 1)
                overwrite = field == "#fairseq:overwrite"
                if overwrite:
                    word, field = word.rsplit(" ", 1)
                int(field)
            except ValueError:
                raise DictionaryError(f"{path}:{n}: expected '<token> <count> [flags]', got {raw.rstrip()!r}")
            if word in d.indices and not overwrite:
                raise DictionaryError(f"{path}:{n}: duplicate symbol {word!r}")
            d._add(word, overwrite)
        return d

    def __len__(self) -> int:
        return len(self.symbols)

    def __getitem__(self, i: int) -> str:
        return self.symbols[i] if 0 <= i < len(self.symbols) else self.symbols[self.unk_index]

    def __contains__(self, word: str) -> bool:
        return word in self.indices

    def bos(self) -> int:
        return self.bos_index

    def pad(self) -> int:
        return self.pad_index

    def eos(self) -> int:
        return self.eos_index

    def unk(self) -> int:
        return self.unk_index

    def index(self, word: str) -> int:
        return self.indices.get(word, self.unk_index)

    def encode_line(self, line: str, append_eos: bool = True) -> List[int]:
        """Whitespace-separated symbols -> ids (``<unk>`` for unknown ones), ``</s>`` appended."""
        ids = [self.index(w) for w in _SPACE.sub(" ", line).strip().split()]
        return ids + [self.eos_index] if append_eos else ids

    def string(self, ids: Iterable[int] | torch.Tensor, post: Optional[str] = None,
               extra_symbols_to_ignore: Sequence[int] = ()) -> str:
        """Ids -> text as fairseq's ``Dictionary.string(ids, post)``: ``</s>`` and ``<s>`` dropped."""
        if torch.is_tensor(ids):
            ids = ids.tolist()
        skip = {self.eos_index, self.bos_index, *extra_symbols_to_ignore}
        return post_process(" ".join(self[int(i)] for i in ids if int(i) not in skip), post)

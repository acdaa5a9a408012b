"""One multilingual sentencepiece vocabulary with language tags.

Every task shares one sentencepiece model. Language tags (``__en__``, ``__de__``, ...)
and a few control symbols (``<mask>``, ``<sep>``) are sentencepiece user-defined
symbols, so they are single pieces that never get split. The fairseq dictionary
(``dict.txt``) is written from the sentencepiece vocabulary, so both agree.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Iterable, List, Optional, Sequence

logger = logging.getLogger(__name__)

DEFAULT_LANGS = ("en", "de", "fr", "cs")
CONTROL_SYMBOLS = ("<mask>", "<sep>")
# sentencepiece specials that fairseq's Dictionary already has (bos, pad, eos, unk).
_SPM_SPECIALS = {"<unk>", "<s>", "</s>", "<pad>"}


def lang_tag(lang: str) -> str:
    """Return the vocabulary symbol of a language tag, e.g. ``de`` -> ``__de__``."""
    if not lang or not lang.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"invalid language code {lang!r}")
    return f"__{lang}__"


def is_lang_tag(symbol: str) -> bool:
    return len(symbol) > 4 and symbol.startswith("__") and symbol.endswith("__")


class UnknownLanguageError(KeyError):
    """A language tag is not in the vocabulary."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def check_lang_in_vocab(lang: str, symbols: Sequence[str] | set, where: str = "vocabulary") -> str:
    """Return the tag of ``lang`` or raise a clear error listing the languages known."""
    tag = lang_tag(lang)
    if tag not in symbols:
        known = sorted(s[2:-2] for s in symbols if is_lang_tag(s))
        raise UnknownLanguageError(
            f"unknown language {lang!r}: tag {tag} is not in the {where}; "
            f"languages known: {', '.join(known) or 'none'}"
        )
    return tag


def train_sentencepiece(
    inputs: Sequence[str],
    model_prefix: str,
    vocab_size: int = 10000,
    langs: Iterable[str] = DEFAULT_LANGS,
    model_type: str = "bpe",
    input_sentence_size: int = 1_000_000,
    num_threads: int = 2,
) -> str:
    """Train the joint sentencepiece model.

    Args:
        inputs: plain-text files, one sentence a line.
        model_prefix: output prefix; writes ``<prefix>.model`` and ``<prefix>.vocab``.
        vocab_size: number of pieces, specials included.
        langs: languages whose tags become user-defined symbols.

    Returns:
        The path of the ``.model`` file.
    """
    import sentencepiece as spm

    symbols = [lang_tag(lang) for lang in langs] + list(CONTROL_SYMBOLS)
    spm.SentencePieceTrainer.train(
        input=",".join(inputs),
        model_prefix=model_prefix,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        user_defined_symbols=symbols,
        input_sentence_size=input_sentence_size,
        shuffle_input_sentence=True,
        num_threads=num_threads,
        minloglevel=2,
    )
    logger.info("trained sentencepiece %s.model (%d pieces)", model_prefix, vocab_size)
    return model_prefix + ".model"


def write_fairseq_dict(spm_vocab: str, dict_path: str) -> int:
    """Write a fairseq ``dict.txt`` from a sentencepiece ``.vocab`` file.

    fairseq's Dictionary adds its own ``<s> <pad> </s> <unk>``, so they are skipped.

    Returns:
        The number of symbols written.
    """
    n = 0
    with open(spm_vocab, encoding="utf-8") as fin, open(dict_path, "w", encoding="utf-8") as fout:
        for line in fin:
            piece = line.rstrip("\n").split("\t")[0]
            if piece in _SPM_SPECIALS:
                continue
            fout.write(f"{piece} 1\n")
            n += 1
    return n


def spm_vocab_file(spm_model: str) -> str:
    """The ``.vocab`` beside a sentencepiece ``.model``; both must exist.

    Raises:
        FileNotFoundError: naming both paths.
    """
    vocab_file = spm_model[: -len(".model")] + ".vocab" if spm_model.endswith(".model") else ""
    if not os.path.exists(spm_model) or not os.path.exists(vocab_file):
        raise FileNotFoundError(f"need the sentencepiece model and its .vocab: {spm_model}, {vocab_file}")
    return vocab_file


def install_vocabulary(spm_model: str, out_dir: str) -> int:
    """Copy the sentencepiece model (and .vocab) into ``out_dir`` as ``spm.model`` / ``spm.vocab``
    (unless it is there already) and write ``out_dir/dict.txt`` from it; returns its symbol count."""
    vocab_file = spm_vocab_file(spm_model)
    os.makedirs(out_dir, exist_ok=True)
    if os.path.abspath(spm_model) != os.path.abspath(os.path.join(out_dir, "spm.model")):
        shutil.copy(spm_model, os.path.join(out_dir, "spm.model"))
        shutil.copy(vocab_file, os.path.join(out_dir, "spm.vocab"))
    return write_fairseq_dict(os.path.join(out_dir, "spm.vocab"), os.path.join(out_dir, "dict.txt"))


class SpmTokenizer:
    """Thin wrapper over a sentencepiece model: text <-> space-separated pieces."""

    def __init__(self, model_path: str):
        import sentencepiece as spm

        if not os.path.exists(model_path):
            raise FileNotFoundError(f"sentencepiece model not found: {model_path}")
        self.model_path = model_path
        self.sp = spm.SentencePieceProcessor(model_file=model_path)

    def encode(self, text: str) -> List[str]:
        return self.sp.encode(text, out_type=str)

    def encode_line(self, text: str) -> str:
        return " ".join(self.encode(text))

    def decode_pieces(self, pieces: str | List[str]) -> str:
        if isinstance(pieces, str):
            pieces = pieces.split()
        return self.sp.decode_pieces(pieces)

    def vocab(self) -> List[str]:
        return [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]


def encode_file(
    tok: SpmTokenizer, src: str, dst: str, lowercase: bool = False, allow_empty: bool = False
) -> int:
    """Encode ``src`` line by line into pieces in ``dst``.

    Raises:
        ValueError: on an empty line (naming file and line), unless ``allow_empty``.

    Returns:
        The number of lines written.
    """
    n = 0
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for n, line in enumerate(fin, start=1):
            text = line.rstrip("\n").strip()
            if lowercase:
                text = text.lower()
            if not text and not allow_empty:
                raise ValueError(f"{src}:{n}: empty sentence")
            fout.write(tok.encode_line(text) + "\n")
    return n


def count_lines(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f)


def read_lines(path: str, strip: bool = True) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [(l.rstrip("\n").strip() if strip else l.rstrip("\n")) for l in f]


def optional(path: Optional[str]) -> Optional[str]:
    return path if path and os.path.exists(path) else None

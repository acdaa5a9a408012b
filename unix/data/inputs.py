"""User inputs of the pipeline: images of any kind, text to pieces and back.

Images may be paths, PIL images or numpy arrays (``(H, W)``, ``(H, W, 1|3|4)``, uint8 or float in
[0, 1]); every mode PIL reads becomes RGB as :func:`unix.data.images.load_image` makes it.
Text goes through sentencepiece by default; a model trained in the tokenized protocol has a
``preprocess`` entry applied instead, and its output is de-BPE'd and Moses-detokenized. The
published Multi30K protocol (``unix-prepare-multi30k --protocol tok-bpe`` writes it)::

    {"normalize_punctuation": true, "lowercase": true, "moses_tokenize": "en", "moses_escape": true,
     "bpe": "bpe.codes"}

applied in that order (Moses punctuation normalization, lowercasing, Moses tokenization in the
input's language with ``&apos;``/``&quot;`` escaping, subword-nmt BPE): raw Multi30K text becomes
the ``tok/`` release line for line (:func:`unix.data.bpe.multi30k_tokenize`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from unix.data.dictionary import Dictionary
from unix.data.images import ImageError, as_rgb, load_image


class InputError(ValueError):
    """A bad input of the pipeline; the message names it (index, or file and line)."""


def to_rgb(x: Any, where: str):
    """One image input -> an RGB PIL image.

    Raises:
        ImageError: a missing or unreadable file, an array of the wrong shape or type; the
            message starts with ``where``.
    """
    import numpy as np
    from PIL import Image

    if isinstance(x, (str, Path)):
        return load_image(str(x), where=where)
    if isinstance(x, Image.Image):
        return as_rgb(x).copy()
    if isinstance(x, np.ndarray):
        a = x
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[:, :, 0]
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or min(a.shape[:2]) < 1:
            raise ImageError(f"{where}: an image array must be (H, W), (H, W, 3) or (H, W, 4); got {x.shape}")
        if a.dtype != np.uint8:
            if not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
                raise ImageError(f"{where}: an image array must be uint8, or float in [0, 1]; got {a.dtype} "
                                 f"with values in [{a.min()}, {a.max()}]")
            a = (a * 255.0).round().astype(np.uint8)
        mode = "L" if a.ndim == 2 else ("RGBA" if a.shape[2] == 4 else "RGB")
        return as_rgb(Image.fromarray(np.ascontiguousarray(a), mode))
    raise ImageError(f"{where}: not an image: {type(x).__name__} (give a path, a PIL image or a numpy array)")


def describe(x: Any, index: int) -> str:
    """How an error names input ``index``: ``input 3 (photo.jpg)`` for a path, ``input 3`` otherwise."""
    return f"input {index} ({x})" if isinstance(x, (str, Path)) else f"input {index}"


class TextCodec:
    """Text <-> the model's tokens.

    Args:
        model_dir: the model directory (``spm.model`` or ``bpe.codes`` inside).
        dictionary: the model's dictionary.
        preprocess: config.json's ``preprocess`` entry (None: raw text + sentencepiece).
    """

    def __init__(self, model_dir: str, dictionary: Dictionary, preprocess: Optional[Dict[str, Any]] = None):
        self.dictionary = dictionary
        self.pre = dict(preprocess or {})
        self._detok: Dict[str, Any] = {}
        if self.pre.get("bpe"):
            from subword_nmt.apply_bpe import BPE

            with open(os.path.join(model_dir, self.pre["bpe"]), encoding="utf-8") as f:
                self.bpe = BPE(f)
            self.spm = None
        else:
            from unix.data.tokenizer import SpmTokenizer

            self.bpe = None
            self.spm = SpmTokenizer(os.path.join(model_dir, "spm.model"))

    def pieces(self, text: str, lang: str) -> str:
        """Text -> space-separated pieces (what was binarized for training)."""
        text = self.tokenize(text, lang)
        if self.bpe is not None:
            return self.bpe.process_line(text).strip()
        return self.spm.encode_line(text)

    def tokenize(self, text: str, lang: str) -> str:
        """Text -> the words the subword model was learned on (whitespace normalized, then the
        ``preprocess`` steps: punctuation normalization, lowercasing, Moses tokenization)."""
        text = " ".join(text.split())
        if self.pre.get("normalize_punctuation"):
            text = self._moses(lang)[0].normalize(text)
        if self.pre.get("lowercase"):
            text = text.lower()
        if self.pre.get("moses_tokenize"):
            text = self._moses(lang)[1].tokenize(text, return_str=True, escape=bool(self.pre.get("moses_escape")))
        return text

    def encode(self, text: str, lang: str) -> List[int]:
        """Text -> ids, without ``</s>``."""
        return self.dictionary.encode_line(self.pieces(text, lang), append_eos=False)

    def decode(self, ids, lang: str) -> str:
        """Generated ids -> text: as ``fairseq-generate --post-process sentencepiece`` prints it, or for
        the tokenized protocol de-BPE'd (``subword_nmt``) and Moses-detokenized."""
        if self.bpe is None:
            return self.dictionary.string(ids, "sentencepiece")
        text = self.dictionary.string(ids, "subword_nmt")
        if self.pre.get("moses_tokenize") and self.pre.get("detokenize", True):
            if lang not in self._detok:
                from sacremoses import MosesDetokenizer

                self._detok[lang] = MosesDetokenizer(lang=lang)
            text = self._detok[lang].detokenize(text.split())
        return text

    def _moses(self, lang: str):
        """(punctuation normalizer, tokenizer) for ``lang`` (the model's source language if None)."""
        from unix.data.bpe import moses_tools

        return moses_tools(lang or self.pre.get("moses_tokenize") or "en")

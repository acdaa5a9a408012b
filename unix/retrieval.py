"""Retrieval evaluation of a pre-trained unix checkpoint (``unix-eval-retrieval``; needs ``--embed-proj-dim > 0``).

Image <-> text recall per language (:func:`unix.metrics.retrieval.image_text_recall`) and
cross-lingual sentence recall (:func:`unix.metrics.retrieval.parallel_recall`) of the model's
contrastive embeddings. Texts are embedded as in pre-training: language tag + sentencepiece
pieces + ``</s>``, ids of the shared fairseq-format dictionary.

Example::

    model = retrieval_model("runs/pretrain/checkpoint_best.pt")
    text = TextEncoder(model, "data-bin/multi30k/dict.txt", "data-bin/multi30k/spm.model")
    emb = text.embed("de", ["Ein Hund rennt."], batch_size=64)   # (1, E)
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional

import torch

from unix.checkpoint import load_model
from unix.data.collate import collate_tokens
from unix.data.tokenizer import SpmTokenizer, check_lang_in_vocab, read_lines
from unix.metrics.references import split_references
from unix.metrics.retrieval import image_text_recall, parallel_recall
from unix.models.unix_model import UnixModel

logger = logging.getLogger(__name__)

FAIRSEQ_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # the first four symbols of a fairseq dictionary


def lang_files(items: List[str], flag: str) -> Dict[str, str]:
    """``["en=FILE", ...]`` (the option ``flag``) -> language -> file."""
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"{flag}: expected LANG=FILE, got {item!r}")
        lang, path = item.split("=", 1)
        out[lang] = path
    return out


class TextEncoder:
    """Raw sentences -> token ids of the shared dictionary -> pooled text embeddings."""

    def __init__(self, model, dict_path: str, spm_model: str):
        self.model = model
        symbols = FAIRSEQ_SPECIALS + [line.split()[0] for line in read_lines(dict_path) if line]
        self.index = {s: i for i, s in enumerate(symbols)}
        self.symbols = set(symbols)
        self.spm = SpmTokenizer(spm_model)

    def ids(self, lang: str, sentence: str) -> torch.Tensor:
        tag = check_lang_in_vocab(lang, self.symbols, "dictionary")
        pieces = [tag] + self.spm.encode(sentence) + ["</s>"]
        return torch.tensor([self.index.get(p, self.index["<unk>"]) for p in pieces])

    @torch.no_grad()
    def embed(self, lang: str, sentences: List[str], batch_size: int) -> torch.Tensor:
        out = []
        for i in range(0, len(sentences), batch_size):
            toks = collate_tokens([self.ids(lang, s) for s in sentences[i:i + batch_size]], self.model.padding_idx)
            out.append(self.model.encode_text(toks))  # (b, E)
        return torch.cat(out)  # (N, E)


@torch.no_grad()
def embed_images(model, names: List[str], args) -> torch.Tensor:
    """(I, E) embeddings of the distinct images, from a feature cache or pixels."""
    from unix.data.images import build_transform, load_image

    paths = [os.path.join(args.image_root, n) if args.image_root else n for n in names]
    cache = None
    if args.image_features:
        from unix.data.feature_cache import FeatureCache

        cache = FeatureCache(args.image_features)
    elif not model.cfg.image_encoder:
        raise SystemExit("the model takes cached features: give --image-features")
    transform = None if cache is not None else build_transform(model.cfg.image_encoder, train=False)
    out = []
    for i in range(0, len(paths), args.batch_size):
        chunk = paths[i:i + args.batch_size]
        if cache is not None:
            out.append(model.encode_image(features=torch.stack([cache[p].float() for p in chunk])))
        else:
            out.append(model.encode_image(images=torch.stack([transform(load_image(p)) for p in chunk])))
    return torch.cat(out)


def retrieval_model(path: str, random_init: Optional[int] = None) -> UnixModel:
    """The model of checkpoint ``path`` in eval mode; with ``random_init``, the same architecture
    and vocabulary with fresh weights drawn from that seed (the baseline without pre-training)."""
    model, _ = load_model(path)
    if model.image_head is None:
        raise SystemExit(f"{path}: no contrastive heads (train with --embed-proj-dim > 0)")
    if random_init is not None:
        torch.manual_seed(random_init)
        model = UnixModel(model.cfg, model.encoder.embed_tokens.num_embeddings, model.padding_idx).eval()
        logger.info("%s: its architecture with random weights (seed %d)", path, random_init)
    return model


def evaluate(args) -> Dict[str, float]:
    """Recall@1/5/10 of the checkpoint ``args.path`` (the options of ``unix-eval-retrieval``).

    Args:
        args: a namespace with ``path``, ``dict``, ``spm_model``, ``image_list``, ``image_root``,
            ``image_features``, ``captions`` and ``parallel`` (``LANG=FILE`` lists), ``pivot``,
            ``batch_size``, ``max_items`` and ``random_init``.

    Returns:
        ``{"<lang>_<metric>": recall}`` for image-text retrieval and ``{"<a>2<b>_<metric>": recall}``
        for cross-lingual retrieval (x100).
    """
    model = retrieval_model(args.path, args.random_init)
    text = TextEncoder(model, args.dict, args.spm_model)
    limit = args.max_items or None
    results: Dict[str, float] = {}
    captions = lang_files(args.captions, "--captions")
    if captions:
        if not args.image_list:
            raise SystemExit("--captions needs --image-list")
        names = read_lines(args.image_list)[:limit]
        keep = [i for i, n in enumerate(names) if n]  # lines without an image are skipped
        distinct = sorted({names[i] for i in keep})
        img = embed_images(model, distinct, args)  # (I, E)
        position = {name: j for j, name in enumerate(distinct)}
        for lang, path in captions.items():
            sents = read_lines(path)[:limit]
            if len(sents) != len(names):
                raise SystemExit(f"{path}: {len(sents)} lines, but {len(names)} in {args.image_list}")
            texts, to_image = [], []
            for i in keep:  # a line may hold several captions of its image, joined by <sep>
                refs = split_references(sents[i])
                if not refs:
                    raise SystemExit(f"{path}:{i + 1}: empty caption for image {names[i]}")
                texts += refs
                to_image += [position[names[i]]] * len(refs)
            txt = text.embed(lang, texts, args.batch_size)  # (T, E)
            for k, v in image_text_recall(img @ txt.t(), torch.tensor(to_image)).items():
                results[f"{lang}_{k}"] = v
    parallel = lang_files(args.parallel, "--parallel")
    if parallel:
        if args.pivot not in parallel or len(parallel) < 2:
            raise SystemExit(f"--parallel needs {args.pivot}=FILE and at least one other language")
        pivot = read_lines(parallel[args.pivot])[:limit]
        a = text.embed(args.pivot, pivot, args.batch_size)
        for lang, path in parallel.items():
            if lang == args.pivot:
                continue
            sents = read_lines(path)[:limit]
            if len(sents) != len(pivot):
                raise SystemExit(f"{path}: {len(sents)} lines, {len(pivot)} in {parallel[args.pivot]}")
            b = text.embed(lang, sents, args.batch_size)
            results.update(parallel_recall(a @ b.t(), names=(f"{args.pivot}2{lang}", f"{lang}2{args.pivot}")))
    return results

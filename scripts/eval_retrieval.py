#!/usr/bin/env python
"""Retrieval evaluation of a pre-trained unix checkpoint (needs ``--embed-proj-dim > 0``).

* image <-> text, per language: ``--captions LANG=FILE`` gives raw captions, line ``i`` of which
  describes the image on line ``i`` of ``--image-list`` (for several captions of an image, repeat
  its name or join the captions with `` <sep> `` on one line, as the ``*.refs.txt`` files of
  ``prepare_captions.py``); recall@1/5/10 image->text (hit: any caption of the image) and
  text->image;
* cross-lingual sentence retrieval: ``--parallel LANG=FILE`` (two or more aligned files, one
  must be ``--pivot``, default en); recall@1/5/10 en->xx and xx->en.

Texts are embedded as in pre-training: language tag + sentencepiece pieces + ``</s>``.

Example::

    python scripts/eval_retrieval.py --path runs/pretrain/checkpoint_best.pt \\
        --dict data-bin/multi30k/dict.txt --spm-model data-bin/multi30k/spm.model \\
        --image-list data-bin/multi30k/test.images.txt --image-root ../shared/data/flickr8k/images \\
        --image-features data-bin/feats_lite0 \\
        --captions en=../shared/data/multi30k/test_2016_flickr.en de=../shared/data/multi30k/test_2016_flickr.de \\
        --parallel en=../shared/data/multi30k/test_2016_flickr.en de=../shared/data/multi30k/test_2016_flickr.de
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Dict, List, Optional

import torch

from unix.checkpoint import load_model
from unix.data.collate import collate_tokens
from unix.data.tokenizer import SpmTokenizer, check_lang_in_vocab, read_lines
from unix.metrics.references import split_references
from unix.metrics.retrieval import image_text_recall, parallel_recall
from unix.models.unix_model import UnixModel

logger = logging.getLogger("eval_retrieval")

FAIRSEQ_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--path", required=True, help="checkpoint of fairseq-train --arch unix_* --embed-proj-dim E")
    p.add_argument("--dict", required=True, help="the shared dict.txt the model was trained with")
    p.add_argument("--spm-model", required=True, help="sentencepiece model of that dictionary")
    p.add_argument("--image-list", help="image names, aligned with every --captions file")
    p.add_argument("--image-root", default=None, help="directory the image names are relative to")
    p.add_argument("--image-features", default=None, help="feature cache (else pixels through the model's backbone)")
    p.add_argument("--captions", nargs="*", default=[], metavar="LANG=FILE", help="raw captions per language")
    p.add_argument("--parallel", nargs="*", default=[], metavar="LANG=FILE", help="aligned raw sentences")
    p.add_argument("--pivot", default="en", help="language every other --parallel language is paired with")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-items", type=int, default=0, help="evaluate the first N lines only (0 = all)")
    p.add_argument("--random-init", type=int, default=None, metavar="SEED",
                   help="evaluate the checkpoint's architecture with fresh weights drawn with SEED instead of "
                        "its trained ones: the 'without pre-training' row (a backbone keeps the weights of "
                        "its --image-weights file, as in training from scratch)")
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    return p.parse_args(argv)


def lang_files(items: List[str], flag: str) -> Dict[str, str]:
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
    import os

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


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    if not args.captions and not args.parallel:
        raise SystemExit("nothing to evaluate: give --captions and/or --parallel")
    with torch.no_grad():  # main() may be called from Python: leave the caller's grad mode alone
        results = evaluate(args)
    for key, value in results.items():
        logger.info("%s = %.2f", key, value)
    text = json.dumps(results, indent=1, sort_keys=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Score a loaded model (:mod:`unix.pipeline`) on the standard test sets, from the raw data.

No prepared or binarized data is needed: the test sets are read from ``../shared/data`` as
released, exactly as the preparation commands split them, so a model directory is scored the
same way on any machine.

* **Captioning**, Flickr8k ``test`` (1,000 photos): pycocoevalcap BLEU-4 / METEOR / CIDEr-D
  against the five Flickr8k captions (English); German against every German caption of the photo
  (Multi30K Task 2 + Task 1; 929 photos have one), BLEU-4 / CIDEr-D.
* **Translation**, Multi30K ``test_2016_flickr`` (1,000 sentences; the 243 whose photo is a
  Flickr8k photo get it, the others are translated from text alone): (a) tokenized BLEU comparable
  with the published tables and (b) sacreBLEU on raw text (:mod:`unix.metrics.bleu`).

Example::

    from unix.pipeline import load
    from unix.evaluation import caption_test, translation_test
    m = load("unix_small_ende_caption")
    scores, rows = caption_test(m, "../shared/data", lang="de")
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from unix.data.caption_sources import eval_references
from unix.data.images import flickr8k_index, multi30k_to_flickr8k
from unix.data.tokenizer import read_lines

logger = logging.getLogger(__name__)

MULTI30K_TEST = "test_2016_flickr"


@dataclass
class Row:
    """One evaluated input: its photo (path or None), source text, output and references."""

    photo: Optional[str]
    output: str
    refs: List[str]
    source: str = ""


@dataclass
class Result:
    """Scores of one evaluation, with what was run."""

    task: str
    lang: str
    scores: Dict[str, float]
    rows: List[Row] = field(default_factory=list)
    seconds: float = 0.0
    options: Dict[str, object] = field(default_factory=dict)

    def summary(self) -> str:
        s = ", ".join(f"{k} {v:.2f}" for k, v in self.scores.items())
        return f"{self.task} {self.lang}: {s} ({len(self.rows)} inputs, {self.seconds:.0f} s)"


def caption_test(model, data: str, lang: str = "en", split: str = "test", limit: int = 0, beam: Optional[int] = None,
                 batch_size: int = 32, progress: bool = False) -> Result:
    """Caption the photos of a Flickr8k split that have ``lang`` references and score them.

    Args:
        model: a :class:`unix.pipeline.Pipeline` that captions.
        data: root holding ``flickr8k/`` and ``multi30k/``.
        lang: caption language.
        split: Flickr8k split (``test``, ``valid``, ``train``).
        limit: score only the first N photos (0: all; a partial score is labelled by its row count).
        beam: beam size (default: the model's).
    """
    from unix.metrics.caption import coco_scores

    photos, refs = eval_references(data, split, lang)
    if limit:
        photos, refs = photos[:limit], refs[:limit]
    paths = [os.path.join(data, "flickr8k", "images", p) for p in photos]
    t0 = time.time()
    hyps = model.caption(paths, lang=lang, beam=beam, batch_size=batch_size, names=photos, progress=progress)
    seconds = time.time() - t0
    scores = coco_scores(hyps, refs, lang=lang)
    keep = ("BLEU-4", "METEOR", "CIDEr")
    out = {("CIDEr-D" if k == "CIDEr" else k): 100.0 * float(scores[k]) for k in keep if k in scores}
    rows = [Row(p, h, r) for p, h, r in zip(paths, hyps, refs)]
    return Result("caption", lang, out, rows, seconds, {"split": split, "beam": beam, "photos": len(photos)})


def multi30k_test(data: str, src: str, tgt: str, split: str = MULTI30K_TEST):
    """(sources, raw references, tokenized references, photo paths or None) of a Multi30K split."""
    m30k = os.path.join(data, "multi30k")
    sources = read_lines(os.path.join(m30k, f"{split}.{src}"))
    refs = read_lines(os.path.join(m30k, f"{split}.{tgt}"))
    tok_path = os.path.join(m30k, "tok", f"{split}.lc.norm.tok.{tgt}")
    refs_tok = read_lines(tok_path) if os.path.exists(tok_path) else None
    names = read_lines(os.path.join(m30k, "image_splits", f"{split}.txt"))
    if not (len(sources) == len(refs) == len(names)):
        raise ValueError(f"{m30k}: {split}.{src} has {len(sources)} lines, {split}.{tgt} {len(refs)}, "
                         f"image_splits/{split}.txt {len(names)}; they must be aligned")
    images_dir = os.path.join(data, "flickr8k", "images")
    photos = [os.path.join(images_dir, p) if p else None
              for p in multi30k_to_flickr8k(names, flickr8k_index(images_dir))]
    return sources, refs, refs_tok, photos


def translation_test(model, data: str, src: str = "en", tgt: str = "de", images: bool = True, limit: int = 0,
                     beam: Optional[int] = None, batch_size: int = 64, progress: bool = False) -> Result:
    """Translate Multi30K test2016 (with the photos there are, unless ``images=False``) and score it.

    Scores: ``BLEU (tok)`` (lowercased, Moses-tokenized as the published tables) and ``sacreBLEU``,
    over all sentences, and the same two over the sentences whose photo is available
    (``... with photo``). A model that writes lowercase (trained on the lowercased text of the
    published protocol: ``lowercase`` in its preprocessing) gets ``sacreBLEU (lowercased)`` instead:
    case-sensitive sacreBLEU against true-case references would only count its casing.
    """
    from unix.metrics.bleu import sacre_bleu, tokenized_bleu

    sources, refs, refs_tok, photos = multi30k_test(data, src, tgt)
    if limit:
        sources, refs, photos = sources[:limit], refs[:limit], photos[:limit]
        refs_tok = refs_tok[:limit] if refs_tok else None
    if not images:
        photos = [None] * len(sources)
    t0 = time.time()
    hyps = model.translate(sources, images=photos, src=src, tgt=tgt, beam=beam, batch_size=batch_size,
                           progress=progress)
    seconds = time.time() - t0
    lowercase = bool(((getattr(model, "config", None) or {}).get("preprocess") or {}).get("lowercase"))
    sacre = "sacreBLEU (lowercased)" if lowercase else "sacreBLEU"
    scores: Dict[str, float] = {}
    subsets = [("", list(range(len(hyps))))]
    with_photo = [i for i, p in enumerate(photos) if p is not None]
    if with_photo:
        subsets.append((" with photo", with_photo))
    for label, idx in subsets:
        h = [hyps[i] for i in idx]
        if refs_tok is not None:
            scores[f"BLEU (tok){label}"] = float(tokenized_bleu(h, [refs_tok[i] for i in idx], tgt)["bleu"])
        scores[f"{sacre}{label}"] = float(sacre_bleu(h, [refs[i] for i in idx], lowercase=lowercase)["bleu"])
    rows = [Row(p, h, [r], s) for p, h, r, s in zip(photos, hyps, refs, sources)]
    return Result("translate", f"{src}-{tgt}", scores, rows, seconds,
                  {"split": MULTI30K_TEST, "beam": beam, "images": images, "sentences": len(sources),
                   "with_photo": len(with_photo)})


def format_examples(result: Result, n: int = 5) -> List[str]:
    """A few rows of a result as text lines (the first ``n`` with a photo for translation)."""
    rows = [r for r in result.rows if r.photo] if result.task == "translate" else result.rows
    lines = []
    for r in rows[:n]:
        head = os.path.basename(r.photo) if r.photo else "(no photo)"
        if r.source:
            lines.append(f"  [{head}] {r.source}\n      -> {r.output}\n      ref {r.refs[0]}")
        else:
            lines.append(f"  [{head}] {r.output}\n      ref {r.refs[0]}")
    return lines


def scores_table(results: Sequence[Result]) -> str:
    """A markdown table of several results."""
    out = ["| task | language | inputs | scores |", "|---|---|---|---|"]
    for r in results:
        s = ", ".join(f"{k} {v:.2f}" for k, v in r.scores.items())
        out.append(f"| {r.task} | {r.lang} | {len(r.rows)} | {s} |")
    return "\n".join(out)

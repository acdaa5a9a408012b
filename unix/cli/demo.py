"""``unix-demo``: the bundled model on real test data, in about two minutes on a laptop CPU.

Loads the bundled models (``unix/bundled/``), captions Flickr8k test photos in English and German
(``unix_small_ende_caption``), translates Multi30K test2016 En->De with the photos there are
(``unix_small_ende_mmt``), prints a handful of examples and
the scores, and writes a gallery page (photo, captions, source, translation, reference).

Example::

    unix-demo                                   # bundled model, ../shared/data, writes demo-output/
    unix-demo --photos 0 --sentences 0          # the full test sets (as the model card)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from unix.gallery import write_gallery

DEFAULT_DATA = os.path.join("..", "shared", "data")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="unix-demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="bundled model name or model directory, for both jobs "
                   "(default: the bundled model of each job)")
    p.add_argument("--data", default=DEFAULT_DATA, help="root holding flickr8k/ and multi30k/ (default: %(default)s)")
    p.add_argument("--out", default="demo-output", help="directory of the gallery page and scores.json")
    p.add_argument("--photos", type=int, default=300, help="Flickr8k test photos to caption (0: all 1,000)")
    p.add_argument("--sentences", type=int, default=0, help="test2016 sentences to translate (0: all 1,000)")
    p.add_argument("--examples", type=int, default=4, help="examples printed per task")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return run(a)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        if a.debug:
            raise
        print(f"unix-demo: error: {e}", file=sys.stderr)
        return 2


def run(a) -> int:
    import torch

    from unix.evaluation import caption_test, format_examples, translation_test
    from unix.pipeline import default_model, load

    if a.threads:
        torch.set_num_threads(a.threads)
    if not os.path.isdir(os.path.join(a.data, "flickr8k")) or not os.path.isdir(os.path.join(a.data, "multi30k")):
        raise FileNotFoundError(f"{a.data}: no flickr8k/ and multi30k/ here; give the data root with --data")
    names = {use: a.model or default_model(use) for use in ("caption", "translate")}
    t0 = time.time()
    models = {}
    for use, name in names.items():
        if name not in models:
            models[name] = load(name, device=a.device)
            print(f"model: {name} ({models[name].config.get('arch', models[name].config['task'])}) loaded for "
                  f"{' and '.join(u for u, n in names.items() if n == name)} in {time.time() - t0:.1f} s")
    m = models[names["caption"]]
    m.feature_memo = {}  # the photos are captioned in two languages: run the backbone once per photo
    results = []
    photos = "all" if not a.photos else a.photos
    for lang in ("en", "de"):
        print(f"\ncaptioning {photos} Flickr8k test photos in {lang} ...", flush=True)
        r = caption_test(m, a.data, lang=lang, limit=a.photos, progress=sys.stderr.isatty())
        results.append(r)
        print("\n".join(format_examples(r, a.examples)))
        print(r.summary())
    print(f"\ntranslating {'all' if not a.sentences else a.sentences} test2016 sentences en->de with their photos ...",
          flush=True)
    r = translation_test(models[names["translate"]], a.data, "en", "de", limit=a.sentences,
                         progress=sys.stderr.isatty())
    results.append(r)
    print("\n".join(format_examples(r, a.examples)))
    print(r.summary())
    os.makedirs(a.out, exist_ok=True)
    page = write_gallery(a.out, results, title=f"unix-demo: {' + '.join(models)}")
    with open(os.path.join(a.out, "scores.json"), "w", encoding="utf-8") as f:
        json.dump([{"task": r.task, "lang": r.lang, "inputs": len(r.rows), "scores": r.scores,
                    "seconds": round(r.seconds, 1), "options": r.options} for r in results], f, indent=1)
    if a.photos or a.sentences:
        for name, model in models.items():
            card = model.config.get("scores") or {}
            print(f"\n(scores on a slice; {name}'s model card on the full test sets: "
                  + "; ".join(f"{k}: {v}" for k, v in card.items() if "first" not in k) + ")")
    print(f"\ngallery: {page}\ntotal {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

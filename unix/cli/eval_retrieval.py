"""Retrieval evaluation of a pre-trained unix checkpoint (needs ``--embed-proj-dim > 0``).

* image <-> text, per language: ``--captions LANG=FILE`` gives raw captions, line ``i`` of which
  describes the image on line ``i`` of ``--image-list`` (for several captions of an image, repeat
  its name or join the captions with `` <sep> `` on one line, as the ``*.refs.txt`` files of
  ``unix-prepare-captions``); recall@1/5/10 image->text (hit: any caption of the image) and
  text->image;
* cross-lingual sentence retrieval: ``--parallel LANG=FILE`` (two or more aligned files, one
  must be ``--pivot``, default en); recall@1/5/10 en->xx and xx->en.

Texts are embedded as in pre-training: language tag + sentencepiece pieces + ``</s>``.

Example::

    unix-eval-retrieval --path runs/pretrain/checkpoint_best.pt \\
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

import torch

from unix.retrieval import evaluate

logger = logging.getLogger("eval_retrieval")


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

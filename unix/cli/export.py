"""``unix-export CHECKPOINT --out DIR``: a fairseq checkpoint of a unix task -> a model directory.

Example::

    unix-export checkpoints/unix_ende/checkpoint_best.pt --out models/unix_ende --fp16 \\
        --scores scores.json

The directory (``model.safetensors``, ``config.json``, ``dict.txt``, ``spm.model``, ``README.md``)
is loaded with ``unix.pipeline.load(DIR)`` and the ``unix-caption`` / ``unix-translate`` /
``unix-vqa`` commands; see :mod:`unix.export`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from unix.cli.common import fail, setup_logging


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="unix-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="fairseq checkpoint (.pt) of unix_mmt, unix_caption, unix_vqa or unix_pretrain")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--fp16", action="store_true", help="store the weights in half precision")
    p.add_argument("--task-data", default=None, help="directory with dict.txt and spm.model (default: the "
                   "checkpoint's task data directory)")
    p.add_argument("--feature-cache", default=None, help="the feature cache the model was trained on (default: "
                   "the checkpoint's --image-features)")
    p.add_argument("--scores", default=None, help="JSON file of scores for the model card, e.g. "
                   '{"test2016": {"BLEU": 37.5}} (written by a scoring script)')
    p.add_argument("--caption-langs", nargs="+", default=None, help="caption languages (default: from the task)")
    p.add_argument("--translate-pairs", nargs="+", default=None,
                   help="language pairs, e.g. en-de (default: the task's)")
    p.add_argument("--generation", default=None, help='JSON overrides of the generation defaults, e.g. '
                   '\'{"caption": {"beam": 5}}\'')
    p.add_argument("--preprocess", default=None, help='JSON, for a model trained on tokenized text, e.g. '
                   '\'{"lowercase": true, "moses_tokenize": "en", "moses_escape": true, "bpe": "bpe.codes"}\' '
                   "(default: the task data's manifest.json entry, written by unix-prepare-multi30k --protocol "
                   "tok-bpe)")
    p.add_argument("--bpe-codes", default=None, help="subword-nmt BPE codes file (default: the one the task data's "
                   "manifest.json names)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    from unix.checkpoint import CheckpointError
    from unix.export import ExportError, export
    from unix.model_dir import ModelDirError

    try:
        scores = None
        if args.scores:
            with open(args.scores, encoding="utf-8") as f:
                scores = json.load(f)
        conf = export(args.checkpoint, args.out, fp16=args.fp16, task_data=args.task_data,
                      feature_cache=args.feature_cache, scores=scores, caption_langs=args.caption_langs,
                      translate_pairs=args.translate_pairs,
                      generation=json.loads(args.generation) if args.generation else None,
                      preprocess=json.loads(args.preprocess) if args.preprocess else None, bpe_codes=args.bpe_codes)
    except (ExportError, CheckpointError, ModelDirError, FileNotFoundError, json.JSONDecodeError) as e:
        return fail(e, args.debug, "unix-export")
    logging.getLogger("unix-export").info("wrote %s (task %s, %s)", args.out, conf["task"], conf["dtype"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Average the model weights of several checkpoints (as the MMT papers report for the last N epochs).

fairseq's own averaging script (``average_checkpoints.py`` of its repository) is not in the
fairseq wheel; this is the same averaging, reading checkpoints safely (``weights_only=True`` with
fairseq's allow-list; :func:`fairseq_plugins.checkpoint.average`).

Examples::

    # the last 10 epoch checkpoints (checkpointN.pt)
    unix-average-checkpoints --dir checkpoints/unix_ende --last 10 --out avg10.pt
    # the update checkpoints (checkpoint_E_U.pt, --save-interval-updates) of updates 201-300
    unix-average-checkpoints --dir checkpoints/scst --last-updates 3 --upper-bound 300 --out avg.pt
    # named checkpoints
    unix-average-checkpoints --inputs a/checkpoint_best.pt b/checkpoint_best.pt --out avg.pt
    # on a machine lent for training: what the run brings back (average.pt in fp16 + average.json)
    unix-average-checkpoints --dir checkpoints/run --last 10 --out back/run/average.pt --fp16 --record
"""

import argparse
import json
import logging
import os
import sys

import torch

from fairseq_plugins.checkpoint import AVERAGE_INFO, average, average_record, last_checkpoints, trained_updates

logger = logging.getLogger("average_checkpoints")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dir", help="checkpoint directory (with --last or --last-updates)")
    src.add_argument("--inputs", nargs="+", metavar="PT", help="the checkpoints to average")
    n = p.add_mutually_exclusive_group()
    n.add_argument("--last", type=int, help="average the last N epoch checkpoints (default 10)")
    n.add_argument("--last-updates", type=int, metavar="N",
                   help="average the last N update checkpoints (checkpoint_E_U.pt)")
    p.add_argument("--upper-bound", type=int, metavar="K",
                   help="with --dir: ignore checkpoints after epoch (or, with --last-updates, update) K")
    p.add_argument("--out", required=True)
    p.add_argument("--fp16", action="store_true", help="store the averaged floating-point weights in half precision")
    p.add_argument("--record", action="store_true",
                   help=f"write {AVERAGE_INFO} beside --out (its inputs, their kind, the run's updates from "
                        "checkpoint_last.pt): unix-results reads a run directory holding only average.pt and it")
    a = p.parse_args(argv)
    if a.inputs:
        if a.last or a.last_updates or a.upper_bound is not None:
            p.error("--inputs names the checkpoints; --last, --last-updates and --upper-bound go with --dir")
        missing = [x for x in a.inputs if not os.path.isfile(x)]
        if missing:
            p.error(f"no such checkpoint: {', '.join(missing)}")
        paths = a.inputs
    elif a.last_updates:
        paths = last_checkpoints(a.dir, a.last_updates, updates=True, upper_bound=a.upper_bound)
    else:
        paths = last_checkpoints(a.dir, a.last or 10, upper_bound=a.upper_bound)
    state = average(paths)
    if a.fp16:
        state["model"] = {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    torch.save(state, a.out)
    if a.record:
        last = os.path.join(a.dir, "checkpoint_last.pt") if a.dir else None
        updates = trained_updates(last) if last and os.path.exists(last) else None
        kind = "named" if a.inputs else "update" if a.last_updates else "epoch"
        with open(os.path.join(os.path.dirname(os.path.abspath(a.out)), AVERAGE_INFO), "w", encoding="utf-8") as f:
            json.dump(average_record(paths, kind, updates, a.fp16, os.path.basename(a.out)), f, indent=1)
    logger.info("averaged %s -> %s", ", ".join(os.path.basename(x) for x in paths), a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Average the model weights of several checkpoints (as the MMT papers report for the last N epochs).

fairseq's own ``scripts/average_checkpoints.py`` is not part of the fairseq wheel; this is the
same averaging, reading checkpoints safely (``weights_only=True`` with fairseq's allow-list).

Examples::

    # the last 10 epoch checkpoints (checkpointN.pt)
    python scripts/average_checkpoints.py --dir checkpoints/unix_ende --last 10 --out avg10.pt
    # the update checkpoints (checkpoint_E_U.pt, --save-interval-updates) of updates 201-300
    python scripts/average_checkpoints.py --dir checkpoints/scst --last-updates 3 --upper-bound 300 --out avg.pt
    # named checkpoints
    python scripts/average_checkpoints.py --inputs a/checkpoint_best.pt b/checkpoint_best.pt --out avg.pt
"""

import argparse
import logging
import os
import re
import sys
from typing import List, Optional

import torch

logger = logging.getLogger("average_checkpoints")


def last_checkpoints(directory: str, n: int, updates: bool = False, upper_bound: Optional[int] = None) -> List[str]:
    """The last ``n`` epoch (``checkpointN.pt``) or update (``checkpoint_E_U.pt``) checkpoints.

    Args:
        directory: a fairseq ``--save-dir``.
        n: how many to return, oldest first.
        updates: pick update checkpoints (ordered by U) instead of epoch checkpoints.
        upper_bound: ignore checkpoints after this epoch (or update).
    """
    pattern = r"checkpoint_\d+_(\d+)\.pt" if updates else r"checkpoint(\d+)\.pt"
    kind = "update" if updates else "epoch"
    found = []
    for name in os.listdir(directory):
        m = re.fullmatch(pattern, name)
        if m and (upper_bound is None or int(m.group(1)) <= upper_bound):
            found.append((int(m.group(1)), os.path.join(directory, name)))
    if len(found) < n:
        bound = f" up to {kind} {upper_bound}" if upper_bound is not None else ""
        raise ValueError(f"{directory}: {len(found)} {kind} checkpoints{bound}, {n} wanted")
    return [p for _, p in sorted(found)[-n:]]


def average(paths: List[str]) -> dict:
    from fairseq_plugins.checkpoint import install_safe_globals

    install_safe_globals()
    first = None
    sums = None
    for p in paths:
        state = torch.load(p, map_location="cpu", weights_only=True)
        params = state["model"]
        if sums is None:
            first, sums = state, {k: v.clone().double() if v.is_floating_point() else v.clone()
                                  for k, v in params.items()}
        else:
            if set(params) != set(sums):
                raise ValueError(f"{p}: its parameters differ from {paths[0]}'s")
            for k, v in params.items():
                if v.is_floating_point():
                    sums[k] += v.double()
    first["model"] = {k: (v / len(paths)).to(first["model"][k].dtype) if v.is_floating_point() else v
                      for k, v in sums.items()}
    first.pop("last_optimizer_state", None)
    return first


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
    torch.save(average(paths), a.out)
    logger.info("averaged %s -> %s", ", ".join(os.path.basename(x) for x in paths), a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

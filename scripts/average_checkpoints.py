#!/usr/bin/env python
"""Average the model weights of the last N epoch checkpoints (as the MMT papers report).

fairseq's own ``scripts/average_checkpoints.py`` is not part of the fairseq wheel; this is the
same averaging, reading checkpoints safely (``weights_only=True`` with fairseq's allow-list).

Example::

    python scripts/average_checkpoints.py --dir checkpoints/unix_ende --last 10 --out avg10.pt
"""

import argparse
import logging
import os
import re
import sys
from typing import List

import torch

logger = logging.getLogger("average_checkpoints")


def last_epoch_checkpoints(directory: str, n: int) -> List[str]:
    found = []
    for name in os.listdir(directory):
        m = re.fullmatch(r"checkpoint(\d+)\.pt", name)
        if m:
            found.append((int(m.group(1)), os.path.join(directory, name)))
    if len(found) < n:
        raise ValueError(f"{directory}: {len(found)} epoch checkpoints, {n} wanted")
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
    p.add_argument("--dir", required=True, help="checkpoint directory")
    p.add_argument("--last", type=int, default=10, help="average the last N epoch checkpoints")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    paths = last_epoch_checkpoints(a.dir, a.last)
    torch.save(average(paths), a.out)
    logger.info("averaged %s -> %s", ", ".join(os.path.basename(x) for x in paths), a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Seconds per update of each published-protocol system, for planning the 8,000-update runs.

Runs each training script of the recipe twice on the real data, stopping after 1 and after
1 + N updates (``--disable-validation --no-save``), and reports the difference divided by N: the
time of one update at the recipe's batch (4,096 tokens), data loading included, start-up excluded.
Both CPU time (what one dedicated thread would take: robust to other jobs on a shared machine) and
wall time are given.

Example (one torch thread)::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python scripts/time_published_recipe.py \\
        --data data-bin/multi30k_tok_ende --features data-bin/feats_lite0 \\
        --images ../shared/data/flickr8k/images --updates 10 --work /tmp/timing
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

RECIPES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "multi30k_mmt")


def systems(a):
    images = ["--image-features", a.features, "--image-root", a.images]
    return {
        "fairseq transformer": ["train_published_transformer.sh"],
        "unix_small text-only": ["train_published_unix.sh", "--no-images"],
        "unix_small visual tokens": ["train_published_unix.sh", *images],
        "unix_small gated": ["train_published_unix.sh", *images, "--image-fusion", "gated"],
    }


def run(script, extra, a, save, updates):
    """(cpu seconds, wall seconds) of one training run stopping after ``updates`` updates."""
    cmd = ["bash", os.path.join(RECIPES, script), a.data, save, "en", a.tgt, *extra,
           "--disable-validation", "--no-save", "--log-interval", "1"]
    env = {**os.environ, "MAX_UPDATE": str(updates)}
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    with open(save + ".log", "w") as log:
        subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="unix-prepare-multi30k --protocol tok-bpe output")
    p.add_argument("--tgt", default="de")
    p.add_argument("--features", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--updates", type=int, default=10)
    p.add_argument("--work", required=True)
    a = p.parse_args(argv)
    os.makedirs(a.work, exist_ok=True)
    out = {}
    for name, (script, *extra) in systems(a).items():
        stem = os.path.join(a.work, name.replace(" ", "_"))
        cpu1, wall1 = run(script, extra, a, stem + "_1", 1)
        cpu2, wall2 = run(script, extra, a, stem + f"_{1 + a.updates}", 1 + a.updates)
        out[name] = {"cpu_s_per_update": round((cpu2 - cpu1) / a.updates, 3),
                     "wall_s_per_update": round((wall2 - wall1) / a.updates, 3),
                     "updates_per_s_one_thread": round(a.updates / (cpu2 - cpu1), 3)}
        sys.stdout.write(json.dumps({name: out[name]}) + "\n")
        sys.stdout.flush()
    with open(os.path.join(a.work, "timing.json"), "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

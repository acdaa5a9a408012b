#!/usr/bin/env python
"""Evaluate trained Multi30K systems and write the results table (with command and commit).

For each system of a JSON config (see examples/multi30k_mmt/systems.json): average the last N
epoch checkpoints, run ``fairseq-generate --beam 5`` on test_2016_flickr, and score
(a) tokenized BLEU comparable with the published tables and (b) sacreBLEU, on all 1,000
sentences and on the sentences whose image is available. Systems with images are also
decoded with the images shuffled among those sentences (does the model use the image?).

Example::

    python scripts/mmt_results.py --config examples/multi30k_mmt/systems.json \\
        --data ../shared/data --bin data-bin/multi30k --out examples/multi30k_mmt/RESULTS.md
"""

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys

import torch

from fairseq_plugins.checkpoint import average, last_checkpoints
from scripts import ROOT, load_config, provenance, slug
from unix.checkpoint import load_state
from unix.metrics.bleu import score

logger = logging.getLogger("mmt_results")
# Published tokenized BLEU (a) on test_2016_flickr, shown under the measured rows of the same pair.
PUBLISHED = {("en", "de"): [("Transformer-tiny, text-only (Revisit-MMT, Wu et al. ACL 2021)", 41.02),
                            ("gated fusion MMT (Revisit-MMT, Wu et al. ACL 2021)", 41.96)]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="JSON list of systems")
    p.add_argument("--data", default="../shared/data", help="root of multi30k/ and flickr8k/")
    p.add_argument("--bin", required=True, help="binarized data (unix-prepare-multi30k)")
    p.add_argument("--out", required=True, help="markdown file to write")
    p.add_argument("--work", default=None, help="where generate outputs go (default: next to --out)")
    p.add_argument("--var", action="append", default=[], help="NAME=VALUE substituted for {NAME} in the config")
    return p.parse_args(argv)


def generate(bin_dir, ckpt, system, out_path, extra=()):
    cmd = ["fairseq-generate", bin_dir, "--user-dir", os.path.join(ROOT, "fairseq_plugins"),
           "--task", system["task"], "-s", system["src"], "-t", system["tgt"], "--path", ckpt,
           "--gen-subset", "test", "--beam", "5", "--max-tokens", "4096", "--post-process", "sentencepiece",
           "--required-batch-size-multiple", "1", *system.get("generate_args", []), *extra]
    logger.info("$ %s > %s", " ".join(shlex.quote(c) for c in cmd), out_path)
    with open(out_path, "w") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.DEVNULL, check=True)
    return cmd


def trained_updates(path: str) -> int:
    """Number of updates a fairseq checkpoint was saved at (loaded with the safe allow-list)."""
    return load_state(path)["optimizer_history"][-1]["num_updates"]


def short_of(path: str, updates: int) -> str:
    """Why checkpoint ``path`` does not count as trained: it has fewer than ``updates`` updates
    ("" = it has them all)."""
    done = trained_updates(path)
    return f"training not finished ({done} of {updates} updates in {path})" if done < updates else ""


def unfinished(system) -> str:
    """Why ``system`` cannot be scored yet ("" = it can): no checkpoints, or training not done.

    A system with ``"updates": N`` in the config counts as trained only when its
    ``checkpoint_last.pt`` has N updates: averaging the first epochs of a run would give a
    meaningless row.
    """
    ckpt_dir = system["checkpoints"]
    if not os.path.isdir(ckpt_dir):
        return f"no checkpoints at {ckpt_dir}"
    want, last = system.get("updates"), os.path.join(ckpt_dir, "checkpoint_last.pt")
    if want:  # the run's progress is in checkpoint_last.pt (the final epoch may end without an epoch file)
        if not os.path.exists(last):
            return f"no {last} to tell how far training went"
        why = short_of(last, want)
        if why:
            return why
    try:
        last_checkpoints(ckpt_dir, system.get("average", 10))
    except ValueError as e:
        return str(e)
    return ""


def evaluate(system, a, work):
    name, tgt = system["name"], system["tgt"]
    stem = slug(name)
    ckpt_dir = system["checkpoints"]
    avg = os.path.join(work, f"{stem}.avg{system.get('average', 10)}.pt")
    paths = last_checkpoints(ckpt_dir, system.get("average", 10))
    torch.save(average(paths), avg)
    updates = trained_updates(paths[-1])
    m30k = os.path.join(a.data, "multi30k")
    ref = os.path.join(m30k, f"test_2016_flickr.{tgt}")
    ref_tok = os.path.join(m30k, "tok", f"test_2016_flickr.lc.norm.tok.{tgt}")
    subset = os.path.join(a.bin, "test.images.txt")
    out = os.path.join(work, f"{stem}.test.txt")
    cmd = generate(a.bin, avg, system, out)
    row = {"name": name, "src": system["src"], "tgt": tgt, "updates": updates,
           "epochs": [os.path.basename(p) for p in (paths[0], paths[-1])],
           "generate": " ".join(shlex.quote(c) for c in cmd),
           "all": score(out, ref, tgt, ref_tok),
           "with_image": score(out, ref, tgt, ref_tok, subset)}
    if system.get("images"):
        out_shuf = os.path.join(work, f"{stem}.test.shuffled.txt")
        generate(a.bin, avg, system, out_shuf, ["--shuffle-images"])
        row["shuffled"] = score(out_shuf, ref, tgt, ref_tok, subset)
    return row


def fmt(s):
    return f"{s['tokenized_bleu']['bleu']:.2f} / {s['sacrebleu']['bleu']:.2f}" if s else "-"


def write_markdown(rows, a, path, missing=()):
    lines = [
        "# Multi30K test_2016_flickr results",
        "",
        provenance(),
        "",
        "Each cell: (a) tokenized BLEU-4 on lowercased Moses-tokenised text, comparable with the published "
        "tables / (b) sacreBLEU on raw true-case text. Checkpoints: average of the last epoch checkpoints.",
        "",
        "| system | updates | averaged | all 1000 (a / b) | with image (a / b) | shuffled images (a / b) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['updates']} | {r['epochs'][0]}..{r['epochs'][1]} | {fmt(r['all'])} | "
                     f"{fmt(r['with_image'])} (n={r['with_image']['n']}) | {fmt(r.get('shuffled'))} |")
    for pair in dict.fromkeys((r["src"], r["tgt"]) for r in rows):
        for name, bleu in PUBLISHED.get(pair, []):
            lines.append(f"| published: {name} | - | - | {bleu:.2f} / - | - | - |")
    if missing:
        lines += ["", "Not in the table yet:", ""] + [f"- {name}: {why}" for name, why in missing]
    sig = rows[0]["all"]["sacrebleu"]["signature"] if rows else ""
    lines += ["", f"sacreBLEU signature: `{sig}`", "", "Generate commands:", ""]
    lines += [f"- {r['name']}: `{r['generate']}`" for r in rows]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump(rows, f, indent=1)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(message)s")
    a = parse_args(argv)
    systems = load_config(a.config, a.var)
    work = a.work or os.path.join(os.path.dirname(os.path.abspath(a.out)), "eval")
    os.makedirs(work, exist_ok=True)
    rows, missing = [], []
    for system in systems:
        why = unfinished(system)
        if why:
            logger.warning("skipping %s: %s", system["name"], why)
            missing.append((system["name"], why))
            continue
        rows.append(evaluate(system, a, work))
    write_markdown(rows, a, a.out, missing)
    logger.info("wrote %s", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Measure what pre-training buys and write the table (with command and commit).

Reads a JSON config (see ``examples/pretraining/experiments.json``) naming:

* ``retrieval``: a list of test sets, each with the pre-trained checkpoint and the arguments of
  :mod:`unix.cli.eval_retrieval`; the checkpoint is evaluated as trained and, as the column
  without pre-training, with the same architecture and fresh weights (``--random-init``);
* ``mmt``: Multi30K systems in the format of :mod:`scripts.mmt_results` (typically ``unix_mmt``
  fine-tuned from the pre-trained checkpoint and trained from scratch, same budget);
* ``caption``: ``unix_caption`` checkpoints scored by :mod:`scripts.caption_results`;
* ``note``: a paragraph written under the title (what was pre-trained on, how long).

Every entry may give ``"updates": N``; an entry whose checkpoint has not reached N updates is
listed under "Not measured yet" instead of being scored, so a half-trained run never lands in the
table. ``{NAME}`` in the config is replaced by ``--var NAME=VALUE``.

Example::

    python scripts/pretrain_results.py --config examples/pretraining/experiments.json \\
        --var RUNS=runs --var BIN=data-bin --data ../shared/data --out examples/pretraining/RESULTS.md
"""

import argparse
import json
import logging
import os
import re
import sys
from types import SimpleNamespace
from typing import Dict, List, Optional, Tuple

from scripts import caption_results, load_config, mmt_results, provenance, slug
from unix.cli import eval_retrieval

logger = logging.getLogger("pretrain_results")
RECALL_KEY = re.compile(r"^(?:(?P<lang>[a-z]{2})_(?P<dir>i2t|t2i)|(?P<pair>[a-z]{2}2[a-z]{2}))_r(?P<k>\d+)$")
CAPTION_COLUMNS = ("BLEU-4", "METEOR", "CIDEr")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="JSON with retrieval / mmt / caption entries")
    p.add_argument("--data", default="../shared/data", help="root of multi30k/ and flickr8k/ (MT references)")
    p.add_argument("--out", required=True, help="markdown file to write (a .json beside it too)")
    p.add_argument("--work", default=None, help="where intermediate outputs go (default: eval/ next to --out)")
    p.add_argument("--var", action="append", default=[], help="NAME=VALUE substituted for {NAME} in the config")
    p.add_argument("--random-init-seed", type=int, default=1, help="seed of the row without pre-training")
    return p.parse_args(argv)


def not_ready(path: str, updates: Optional[int]) -> str:
    """Why checkpoint ``path`` cannot be scored yet ("" = it can)."""
    if not os.path.exists(path):
        return f"no checkpoint {path}"
    return mmt_results.short_of(path, updates) if updates else ""


def retrieval(entry: Dict, work: str, seed: int, index: int = 0) -> List[Tuple[str, Dict[str, float]]]:
    """[(column name, {metric: recall})] for the pre-trained checkpoint and its random-init twin."""
    rows = []
    for name, extra in ((entry["name"], []), (f"same model, random weights (seed {seed}): no pre-training",
                                              ["--random-init", str(seed)])):
        out = os.path.join(work, f"retrieval_{index}_{len(rows)}.json")
        eval_retrieval.main(["--path", entry["checkpoint"], *entry["args"], *extra, "--out", out])
        with open(out, encoding="utf-8") as f:
            rows.append((name, json.load(f)))
    return rows


def caption(entry: Dict, work: str) -> Dict:
    out = os.path.join(work, f"caption_{slug(entry['name'])}.md")
    caption_results.main(["--data", entry["data"], "--path", entry["checkpoint"],
                          "--langs", *entry.get("langs", ["en"]),
                          "--out", out, "--label", entry["name"], "--", *entry.get("generate_args", [])])
    with open(os.path.splitext(out)[0] + ".json", encoding="utf-8") as f:
        result = json.load(f)
    return {"name": entry["name"], "updates": mmt_results.trained_updates(entry["checkpoint"]), **result}


def retrieval_table(rows: List[Tuple[str, Dict[str, float]]]) -> List[str]:
    """One line per metric (``en i2t R@1`` ...), one column per row of ``rows``."""
    keys = sorted(rows[0][1], key=_metric_order)
    lines = ["| metric | " + " | ".join(name for name, _ in rows) + " |", "|---|" + "---|" * len(rows)]
    for key in keys:
        cells = " | ".join(f"{r.get(key, float('nan')):.2f}" for _, r in rows)
        lines.append(f"| {_metric_label(key)} | {cells} |")
    return lines


def _metric_order(key: str):
    m = RECALL_KEY.match(key)
    if not m:
        return (2, key, 0)
    if m["pair"]:
        return (1, m["pair"], int(m["k"]))
    return (0, f"{m['lang']}_{m['dir']}", int(m["k"]))


def _metric_label(key: str) -> str:
    m = RECALL_KEY.match(key)
    if not m:
        return key
    direction = "image->text" if m["dir"] == "i2t" else "text->image"
    what = m["pair"].replace("2", "->") if m["pair"] else f"{m['lang']} {direction}"
    return f"{what} R@{m['k']}"


def caption_table(rows: List[Dict]) -> List[str]:
    lines = ["| model | updates | lang | photos | " + " | ".join(CAPTION_COLUMNS) + " |",
             "|---|---|---|---|" + "---|" * len(CAPTION_COLUMNS)]
    for r in rows:
        for lang, s in r["results"].items():
            cells = [f"{100.0 * s[c]:.2f}" if c in s else "n/a" for c in CAPTION_COLUMNS]
            lines.append(f"| {r['name']} | {r['updates']} | {lang} | {s['images']} | " + " | ".join(cells) + " |")
    return lines


def mmt_table(rows: List[Dict]) -> List[str]:
    lines = ["| system | updates | all (a / b) | with image (a / b) | shuffled images (a / b) |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['updates']} | {mmt_results.fmt(r['all'])} | "
                     f"{mmt_results.fmt(r['with_image'])} (n={r['with_image']['n']}) | "
                     f"{mmt_results.fmt(r.get('shuffled'))} |")
    return lines


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(message)s")
    a = parse_args(argv)
    cfg = load_config(a.config, a.var)
    work = a.work or os.path.join(os.path.dirname(os.path.abspath(a.out)), "eval")
    os.makedirs(work, exist_ok=True)
    missing, result = [], {"retrieval": [], "mmt": [], "caption": []}

    for i, entry in enumerate(cfg.get("retrieval", [])):
        why = not_ready(entry["checkpoint"], entry.get("updates"))
        if why:
            missing.append((f"{entry['name']} on {entry['set']}", why))
        else:
            result["retrieval"].append({"set": entry["set"], "rows": retrieval(entry, work, a.random_init_seed, i)})
    for system in cfg.get("mmt", []):
        why = mmt_results.unfinished(system)
        if why:
            missing.append((system["name"], why))
        else:
            result["mmt"].append(mmt_results.evaluate(system, SimpleNamespace(data=a.data, bin=system["bin"]), work))
    for entry in cfg.get("caption", []):
        why = not_ready(entry["checkpoint"], entry.get("updates"))
        if why:
            missing.append((entry["name"], why))
        else:
            result["caption"].append(caption(entry, work))

    lines = ["# Pre-training: what it buys", "", provenance(), ""]
    if cfg.get("note"):
        lines += [cfg["note"], ""]
    for r in result["retrieval"]:
        lines += [f"## Retrieval on {r['set']} (recall@K, %)", "", *retrieval_table(r["rows"]), ""]
    if result["mmt"]:
        lines += ["## Multi30K test_2016_flickr after fine-tuning",
                  "", "(a) tokenized BLEU on the lowercased tokenized release / (b) sacreBLEU.", "",
                  *mmt_table(result["mmt"]), ""]
    if result["caption"]:
        lines += ["## Captioning after fine-tuning (pycocoevalcap, x100)", "", *caption_table(result["caption"]), ""]
    if missing:
        lines += ["## Not measured yet", ""] + [f"- {name}: {why}" for name, why in missing] + [""]
    for name, why in missing:
        logger.warning("not measured: %s: %s", name, why)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    with open(os.path.splitext(a.out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump({**result, "missing": missing}, f, indent=1)
    logger.info("wrote %s", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

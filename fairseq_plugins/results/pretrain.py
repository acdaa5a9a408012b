"""``unix-results pretrain``: what pre-training buys, as a table (with command and commit).

Reads a JSON config (see ``examples/pretraining/experiments.json``) naming:

* ``retrieval``: a list of test sets, each with the pre-trained checkpoint and the arguments of
  ``unix-eval-retrieval``; the checkpoint is evaluated as trained and, as the column without
  pre-training, with the same architecture and fresh weights (``--random-init``);
* ``mmt``: Multi30K systems in the format of ``unix-results mmt`` (typically ``unix_mmt``
  fine-tuned from the pre-trained checkpoint and trained from scratch, same budget);
* ``caption``: ``unix_caption`` checkpoints scored by ``unix-results caption``;
* ``note``: a paragraph written under the title (what was pre-trained on, how long).

Every entry may give ``"updates": N``; an entry whose checkpoint has not reached N updates is
listed under "Not measured yet" instead of being scored, so a half-trained run never lands in the
table. ``{NAME}`` in the config is replaced by ``--var NAME=VALUE``.

Example::

    unix-results pretrain --config examples/pretraining/experiments.json \\
        --var RUNS=runs --var BIN=data-bin --data ../shared/data --out examples/pretraining/RESULTS.md
"""

import json
import logging
import os
import re
import subprocess
import sys
from types import SimpleNamespace
from typing import Dict, List, Optional, Tuple

from unix.provenance import load_config, provenance, slug
from fairseq_plugins.results import caption, mmt
from fairseq_plugins.results.common import beside, bleu_cell, task_parser, write_json, write_markdown

logger = logging.getLogger(__name__)
RECALL_KEY = re.compile(r"^(?:(?P<lang>[a-z]{2})_(?P<dir>i2t|t2i)|(?P<pair>[a-z]{2}2[a-z]{2}))_r(?P<k>\d+)$")
CAPTION_COLUMNS = ("BLEU-4", "METEOR", "CIDEr")


def add_arguments(p) -> None:
    p.add_argument("--config", required=True, help="JSON with retrieval / mmt / caption entries")
    p.add_argument("--data", default="../shared/data", help="root of multi30k/ and flickr8k/ (MT references)")
    p.add_argument("--out", required=True, help="markdown file to write (a .json beside it too)")
    p.add_argument("--work", default=None, help="where intermediate outputs go (default: eval/ next to --out)")
    p.add_argument("--var", action="append", default=[], help="NAME=VALUE substituted for {NAME} in the config")
    p.add_argument("--random-init-seed", type=int, default=1, help="seed of the row without pre-training")


def run_retrieval(argv: List[str]) -> int:
    """``unix-eval-retrieval`` with command-line arguments ``argv``, as a command (it writes ``--out``)."""
    return subprocess.run([sys.executable, "-m", "unix.cli.eval_retrieval", *argv]).returncode


def run_caption(argv: List[str]) -> str:
    """``unix-results caption`` with command-line arguments ``argv`` (it writes ``--out`` and its JSON)."""
    return caption.run(task_parser(caption).parse_args(argv))


def not_ready(path: str, updates: Optional[int]) -> str:
    """Why checkpoint ``path`` cannot be scored yet ("" = it can)."""
    if not os.path.exists(path):
        return f"no checkpoint {path}"
    return mmt.short_of(path, updates) if updates else ""


def retrieval(entry: Dict, work: str, seed: int, index: int = 0) -> List[Tuple[str, Dict[str, float]]]:
    """[(column name, {metric: recall})] for the pre-trained checkpoint and its random-init twin."""
    rows = []
    for name, extra in ((entry["name"], []), (f"same model, random weights (seed {seed}): no pre-training",
                                              ["--random-init", str(seed)])):
        out = os.path.join(work, f"retrieval_{index}_{len(rows)}.json")
        run_retrieval(["--path", entry["checkpoint"], *entry["args"], *extra, "--out", out])
        with open(out, encoding="utf-8") as f:
            rows.append((name, json.load(f)))
    return rows


def caption_entry(entry: Dict, work: str) -> Dict:
    out = os.path.join(work, f"caption_{slug(entry['name'])}.md")
    run_caption(["--data", entry["data"], "--path", entry["checkpoint"], "--langs", *entry.get("langs", ["en"]),
                 "--out", out, "--label", entry["name"], "--", *entry.get("generate_args", [])])
    with open(beside(out, ".json"), encoding="utf-8") as f:
        result = json.load(f)
    return {"name": entry["name"], "updates": mmt.trained_updates(entry["checkpoint"]), **result}


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
        lines.append(f"| {r['name']} | {r['updates']} | {bleu_cell(r['all'])} | "
                     f"{bleu_cell(r['with_image'])} (n={r['with_image']['n']}) | {bleu_cell(r.get('shuffled'))} |")
    return lines


def measure(cfg: Dict, a, work: str):
    """(result, missing): ``{"retrieval", "mmt", "caption"}`` rows of the entries that are trained,
    ``[(name, why)]`` of those that are not."""
    missing, result = [], {"retrieval": [], "mmt": [], "caption": []}
    for i, entry in enumerate(cfg.get("retrieval", [])):
        why = not_ready(entry["checkpoint"], entry.get("updates"))
        if why:
            missing.append((f"{entry['name']} on {entry['set']}", why))
        else:
            result["retrieval"].append({"set": entry["set"], "rows": retrieval(entry, work, a.random_init_seed, i)})
    for system in cfg.get("mmt", []):
        why = mmt.unfinished(system)
        if why:
            missing.append((system["name"], why))
        else:
            result["mmt"].append(mmt.evaluate(system, SimpleNamespace(data=a.data, bin=system["bin"]), work))
    for entry in cfg.get("caption", []):
        why = not_ready(entry["checkpoint"], entry.get("updates"))
        if why:
            missing.append((entry["name"], why))
        else:
            result["caption"].append(caption_entry(entry, work))
    return result, missing


def run(a) -> str:
    cfg = load_config(a.config, a.var)
    work = a.work or os.path.join(os.path.dirname(os.path.abspath(a.out)), "eval")
    os.makedirs(work, exist_ok=True)
    result, missing = measure(cfg, a, work)
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
    write_markdown(a.out, lines, end="")
    write_json(beside(a.out, ".json"), {**result, "missing": missing})
    logger.info("wrote %s", a.out)
    return ""

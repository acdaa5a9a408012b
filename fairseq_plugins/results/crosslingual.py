"""``unix-results crosslingual``: zero-shot cross-lingual VQA and retrieval per language, mean over seeds.

Reads a JSON config (``{NAME}`` replaced by ``--var NAME=VALUE``) with a ``note`` and up to three
experiment lists; every entry names an ``init`` label (``scratch``, ``pretrained`` ...), one
checkpoint per seed (``checkpoints``, ``seeds``) and optionally the ``updates`` they must have reached:

* ``vqa_zero_shot``: ``unix_vqa`` checkpoints decoded with ``fairseq-generate --beam 5
  --scoring vqa_accuracy`` on each language's test split of the easy-VQA data-bin ``data``
  (``languages``: ``{"en": "test", "de": "test_de", ...}``, the default); the accuracy is
  recomputed from the printed answers (:func:`fairseq_plugins.results.vqa.checked_accuracy`);
* ``retrieval_zero_shot``, ``rc3``: ``unix-eval-retrieval`` (``args``: its options but ``--path``
  and ``--out``); per language of its JSON, ``R@K`` (K = 1, 5, 10) = the mean of image->text and
  text->image R@K, and both directions of R@1 as rows of their own.

An entry may name its test ``set`` (e.g. ``Multi30K test2016``, ``Flickr8k test``): a column of the tables.

``args`` of a VQA entry: more fairseq-generate options (``--image-root``, ``--image-features``...).
An entry with a checkpoint missing or short of ``updates`` is listed under "Not measured yet",
never scored. Outputs go to ``--work``, named by the command and the checkpoint's mtime: a rerun
reuses them (adding a seed evaluates only that seed). Writes the rows as JSON (``--out``) and the
tables between the ``crosslingual-results`` markers of every ``--readme`` (``--readme FILE=vqa_zero_shot``:
only that experiment's table; without ``--readme``: into a ``.md`` beside the JSON, with the config's note).

Example::

    unix-results crosslingual --config examples/crosslingual/crosslingual.json --var RUNS=runs \\
        --out examples/crosslingual/RESULTS_crosslingual.json --readme examples/crosslingual/README.md
"""

import datetime
import hashlib
import json
import logging
import os
from typing import Dict, List, Tuple

from unix.provenance import git_commit, load_config, provenance, results_work_dir
from fairseq_plugins.results.common import (beside, generate_command, missing_lines, quote, replace_block,
                                            run_generate, write_json, write_markdown)
from fairseq_plugins.results.mmt import trained_updates
from fairseq_plugins.results.pretrain import RECALL_KEY, not_ready, run_retrieval
from fairseq_plugins.results.vqa import checked_accuracy

logger = logging.getLogger(__name__)
EXPERIMENTS = {"vqa_zero_shot": "Zero-shot VQA: easy-VQA test accuracy (%), questions in each language",
               "retrieval_zero_shot": "Zero-shot retrieval (recall@K, %)",
               "rc3": "Retrieval after pre-training with and without RC3 (recall@K, %)"}
LANGUAGES = {"en": "test", "de": "test_de", "fr": "test_fr", "cs": "test_cs"}
ORDER = ("en", "de", "fr", "cs")
METRICS = ("accuracy", "R@1", "R@5", "R@10", "image->text R@1", "text->image R@1")
BEGIN, END = "<!-- crosslingual-results:start -->", "<!-- crosslingual-results:end -->"


def add_arguments(p) -> None:
    p.add_argument("--config", required=True, help="JSON with vqa_zero_shot / retrieval_zero_shot / rc3 entries")
    p.add_argument("--out", required=True, help="JSON file to write; without --readme the markdown tables go next to it (.md)")
    p.add_argument("--readme", action="append", default=[], metavar="FILE[=EXPERIMENT,...]",
                   help="also put the tables (only those of the named experiments, with =...) between the "
                        "crosslingual-results markers of this file (repeatable)")
    p.add_argument("--work", default=None, help="where the evaluation outputs go and are reused from "
                                                "(default: eval/<stem of --out>/ next to it)")
    p.add_argument("--var", action="append", default=[], help="NAME=VALUE substituted for {NAME} in the config")


def check_config(cfg, path: str) -> None:
    """One-line errors naming the config for unknown keys, entries without their keys, seed counts."""
    if not isinstance(cfg, dict):
        raise SystemExit(f"{path}: expected a JSON object with {', '.join(EXPERIMENTS)}")
    unknown = sorted(set(cfg) - set(EXPERIMENTS) - {"note"})
    if unknown:
        raise SystemExit(f"{path}: unknown key(s) {', '.join(unknown)} (expected note, {', '.join(EXPERIMENTS)})")
    for experiment in EXPERIMENTS:
        for i, entry in enumerate(cfg.get(experiment, [])):
            need = ("init", "checkpoints", "seeds") + (("data",) if experiment == "vqa_zero_shot" else ())
            lacking = [k for k in need if k not in entry]
            if lacking:
                raise SystemExit(f"{path}: {experiment}[{i}] has no {', '.join(lacking)}")
            if len(entry["checkpoints"]) != len(entry["seeds"]) or not entry["seeds"]:
                raise SystemExit(f"{path}: {experiment}[{i}]: {len(entry['checkpoints'])} checkpoints for "
                                 f"{len(entry['seeds'])} seeds (one checkpoint per seed)")


def cached(work: str, kind: str, key: List[str], ckpt: str, ext: str) -> Tuple[str, bool]:
    """(output path for command ``key`` on checkpoint ``ckpt``, whether it is already there): the name
    hashes the command and the checkpoint's mtime, so a retrained checkpoint is evaluated again."""
    digest = hashlib.sha1(f"{quote(key)}|{os.stat(ckpt).st_mtime_ns}".encode()).hexdigest()[:16]
    out = os.path.join(work, f"{kind}_{digest}{ext}")
    if os.path.exists(out):
        logger.info("reusing %s", out)
    return out, os.path.exists(out)


def vqa_scores(entry: Dict, ckpt: str, work: str) -> Dict[Tuple[str, str], Tuple[float, str]]:
    """``{(language, "accuracy"): (accuracy %, generate command)}`` of one checkpoint."""
    scores = {}
    for lang, subset in entry.get("languages", LANGUAGES).items():
        cmd = generate_command(entry["data"], "unix_vqa", "--path", ckpt, "--gen-subset", subset, "--beam", "5",
                               "--batch-size", "128", "--scoring", "vqa_accuracy", "--post-process",
                               "sentencepiece", *entry.get("args", []))
        out, done = cached(work, f"vqa_{subset}", cmd, ckpt, ".txt")
        if not done:
            run_generate(cmd, out + ".part")  # renamed once complete: a failed run leaves nothing to reuse
            os.replace(out + ".part", out)
        scores[(lang, "accuracy")] = (checked_accuracy(out)[0]["accuracy"], quote(cmd))
    return scores


def retrieval_scores(entry: Dict, ckpt: str, work: str) -> Dict[Tuple[str, str], Tuple[float, str]]:
    """``{(language, metric): (recall %, command)}`` of one checkpoint, metrics ``R@1``, ``R@5``, ``R@10``
    (mean of both directions), ``image->text R@1``, ``text->image R@1``, for the languages of its JSON."""
    argv = ["--path", ckpt, *entry.get("args", [])]
    out, done = cached(work, "retrieval", argv, ckpt, ".json")
    argv += ["--out", out]
    cmd = quote(["python", "-m", "unix.cli.eval_retrieval", *argv])
    if not done and (run_retrieval(argv) != 0 or not os.path.exists(out)):
        raise RuntimeError(f"unix-eval-retrieval failed: {cmd}")
    with open(out, encoding="utf-8") as f:
        result = json.load(f)
    recall = {}
    for key, value in result.items():
        m = RECALL_KEY.match(key)
        if m and m["lang"]:
            recall.setdefault(m["lang"], {})[(m["dir"], m["k"])] = float(value)
    scores = {}
    for lang, r in recall.items():
        for k in ("1", "5", "10"):
            if ("i2t", k) in r and ("t2i", k) in r:
                scores[(lang, f"R@{k}")] = ((r[("i2t", k)] + r[("t2i", k)]) / 2, cmd)
        for direction, name in (("i2t", "image->text R@1"), ("t2i", "text->image R@1")):
            if (direction, "1") in r:
                scores[(lang, name)] = (r[(direction, "1")], cmd)
    return scores


def not_measured(entry: Dict) -> str:
    """Why an entry is not scored ("" = every seed's checkpoint is there and trained)."""
    for seed, ckpt in zip(entry["seeds"], entry["checkpoints"]):
        why = not_ready(ckpt, entry.get("updates"))
        if why:
            return f"seed {seed}: {why}"
    return ""


def entry_rows(experiment: str, entry: Dict, work: str, commit: str) -> List[Dict]:
    """The rows of one entry: one per (language, metric), mean over its seeds."""
    score = vqa_scores if experiment == "vqa_zero_shot" else retrieval_scores
    per_seed = [score(entry, ckpt, work) for ckpt in entry["checkpoints"]]
    updates = min(trained_updates(ckpt) for ckpt in entry["checkpoints"])
    rows = []
    for lang, metric in sorted(per_seed[0], key=lambda k: (_rank(k[0], ORDER), k[0], _rank(k[1], METRICS))):
        if any((lang, metric) not in s for s in per_seed):
            raise ValueError(f"{experiment} {entry['init']}: {metric} for {lang} missing for some seeds")
        values = [s[(lang, metric)][0] for s in per_seed]
        rows.append({"experiment": experiment, "init": entry["init"], "set": entry.get("set", ""),
                     "language": lang, "metric": metric,
                     "value": round(sum(values) / len(values), 2), "value_per_seed": [round(v, 2) for v in values],
                     "updates": updates, "seeds": list(entry["seeds"]),
                     "command": [s[(lang, metric)][1] for s in per_seed], "commit": commit})
    return rows


def _rank(x: str, order) -> int:
    return order.index(x) if x in order else len(order)


def languages(rows: List[Dict]) -> List[str]:
    """The languages of ``rows``: en, de, fr, cs first, then the others alphabetically."""
    seen = {r["language"] for r in rows}
    return sorted(seen, key=lambda x: (_rank(x, ORDER), x))


def tables(rows: List[Dict], missing: List[Dict]) -> List[str]:
    """One table per experiment (a column per language), then the entries not measured."""
    lines = []
    for experiment, title in EXPERIMENTS.items():
        mine = [r for r in rows if r["experiment"] == experiment]
        if not mine:
            continue
        langs = languages(mine)
        sets = any(r.get("set") for r in mine)
        lines += ["", f"**{experiment}**: {title}, mean over seeds", "",
                  "| " + ("test set | " if sets else "") + "init | metric | updates | seeds | " + " | ".join(langs) + " |",
                  "|" + "---|" * (4 + sets + len(langs))]
        cells = {}
        for r in mine:
            key = ((r.get("set", ""),) if sets else ()) + (r["init"], r["metric"], r["updates"],
                                                            ", ".join(map(str, r["seeds"])))
            cells.setdefault(key, {})[r["language"]] = f"{r['value']:.2f}"
        lines += [f"| {' | '.join(map(str, key))} | " + " | ".join(c.get(x, "-") for x in langs) + " |"
                  for key, c in cells.items()]
    return lines + missing_lines([(f"{m['experiment']}, {m['init']}", m["why"]) for m in missing],
                                 "Not measured yet:")


def readme_targets(specs: List[str]) -> List[Tuple[str, List[str]]]:
    """``[(file, experiments)]`` of ``--readme FILE[=EXPERIMENT,...]`` (all experiments when none named)."""
    targets = []
    for spec in specs:
        path, _, names = spec.partition("=")
        chosen = [n for n in names.split(",") if n] or list(EXPERIMENTS)
        unknown = [n for n in chosen if n not in EXPERIMENTS]
        if unknown:
            raise SystemExit(f"--readme {spec}: unknown experiment(s) {', '.join(unknown)} "
                             f"(known: {', '.join(EXPERIMENTS)})")
        targets.append((path, chosen))
    return targets


def run(a) -> str:
    cfg = load_config(a.config, a.var)
    check_config(cfg, a.config)
    readmes = readme_targets(a.readme)
    for readme, _ in readmes:  # before hours of evaluation
        replace_block(readme, "", BEGIN, END, check_only=True)
    work = a.work or results_work_dir(a.out)
    os.makedirs(work, exist_ok=True)
    commit, rows, missing = git_commit(), [], []
    for experiment in EXPERIMENTS:
        for entry in cfg.get(experiment, []):
            why = not_measured(entry)
            if why:
                logger.warning("not measured: %s, %s: %s", experiment, entry["init"], why)
                missing.append({"experiment": experiment, "init": entry["init"], "why": why})
            else:
                rows += entry_rows(experiment, entry, work, commit)
    write_json(a.out, {"provenance": {"command": a.command, "commit": commit,
                                      "time": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")},
                       "note": cfg.get("note"), "rows": rows, "not_measured": missing},
               ensure_ascii=False, newline=True)
    table = tables(rows, missing)
    if not a.readme:  # the README blocks are the tables when given (an example holds one results table)
        note = ["", cfg["note"]] if cfg.get("note") else []
        write_markdown(beside(a.out, ".md"), ["# Zero-shot cross-lingual results", "", provenance(), *note, *table])
    for readme, chosen in readmes:
        mine = tables([r for r in rows if r["experiment"] in chosen], [m for m in missing if m["experiment"] in chosen])
        replace_block(readme, "\n".join([provenance(), *mine]) + "\n", BEGIN, END)
    logger.info("wrote %s (%d rows, %d not measured)", a.out, len(rows), len(missing))
    return ""

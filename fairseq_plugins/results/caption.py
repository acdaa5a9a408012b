"""``unix-results caption``: a ``unix_caption`` checkpoint on the test split of each language.

For every language it runs ``fairseq-generate --scoring cider`` on ``test_<lang>``, scores the
output like ``unix-score-captions`` (BLEU-1..4, METEOR for English, ROUGE-L, CIDEr-D;
pycocoevalcap on PTB tokens), checks that the CIDEr-D printed by the fairseq scorer equals the one
recomputed from the references file, and writes a markdown table with the command and commit.

Several checkpoints (``--path A B --label "a" "b"``) give one row each in the same table (e.g.
cross-entropy training and its SCST fine-tuning). A ``--path`` may name an ensemble in fairseq's
form, ``A.pt:B.pt`` (fairseq-generate averages the models' log-probabilities at every step).
``--row-args`` gives a row its own extra fairseq-generate arguments (one string per ``--path``,
``""`` for none), so one table can compare decoding settings of the same checkpoint.

``--generated`` scores outputs that ``fairseq-generate`` already wrote (for instance on a GPU
machine whose checkpoints did not come back) instead of running it: one file template per row,
``{subset}`` standing for ``test_<lang>``. The beam size printed on the output's last line must be
``--beam``, and a CIDEr-D printed there must match the recomputed one; the table names the files,
so say in ``--note`` how they were generated.

Example::

    unix-results caption --data data-bin/captions --path runs/caption_lite0/checkpoint_best.pt \\
        --langs en de --out examples/captioning/RESULTS.md \\
        -- --image-root ../shared/data/flickr8k/images --image-features data-bin/feats_lite0
"""

import os
import shlex
from typing import Dict, Optional

from unix.data.captions import parse_generate_output
from unix.metrics.caption import coco_scores
from unix.data.caption_outputs import pair_up
from unix.provenance import checkpoint_labels, provenance, results_work_dir
from fairseq_plugins.results.common import (beside, generate_command, last_printed, printed_float, quote, run_generate,
                                 write_json, write_markdown)

COLUMNS = ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
# Published anchor on the Flickr8k test split (English), for the table's last rows.
ANCHORS = (
    ("Show, Attend and Tell, soft attention (Xu et al., 2015)", {"BLEU-1": 67.0, "BLEU-4": 19.5, "METEOR": 18.93}),
    ("Show, Attend and Tell, hard attention (Xu et al., 2015)", {"BLEU-1": 67.0, "BLEU-4": 21.3, "METEOR": 20.30}),
)


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, help="output directory of unix-prepare-captions")
    rows = p.add_mutually_exclusive_group(required=True)
    rows.add_argument("--path", nargs="+",
                      help="checkpoint(s): one table row per checkpoint (or A.pt:B.pt ensemble) and language")
    rows.add_argument("--generated", nargs="+", metavar="TEMPLATE",
                      help="score existing fairseq-generate outputs instead: one file template per row, "
                           "'{subset}' standing for the split (e.g. gen/ens.{subset}.txt); needs --label")
    p.add_argument("--langs", nargs="+", default=["en", "de"])
    p.add_argument("--split", default="test")
    p.add_argument("--beam", type=int, default=3)
    p.add_argument("--max-len-b", type=int, default=40)
    p.add_argument("--out", required=True, help="markdown file to write (a .json beside it too)")
    p.add_argument("--label", nargs="+", default=None,
                   help="one label per --path (default: the checkpoint path)")
    p.add_argument("--row-args", nargs="+", default=None, metavar="ARGS",
                   help="one string of extra fairseq-generate arguments per --path ('' for none), "
                        "e.g. '' '--no-repeat-ngram-size 2' (an option starting with - needs a space: "
                        "' --beam-stop best')")
    p.add_argument("--note", default="", help="one paragraph about the run, written under the table")
    p.add_argument("extra", nargs="*", help="more fairseq-generate arguments (after --)")


def generate(a, path: str, subset: str, out_path: str, row_args=()):
    cmd = generate_command(a.data, "unix_caption", "--path", path, "--gen-subset", subset, "--beam", str(a.beam),
                           "--max-len-b", str(a.max_len_b), "--batch-size", "64", "--scoring", "cider",
                           "--post-process", "sentencepiece", *a.extra, *row_args)
    return run_generate(cmd, out_path)


def printed_cider(out_path: str) -> Optional[float]:
    """The ``CIDEr-D = x`` figure of fairseq-generate's last line (x100), or None."""
    return printed_float(out_path, r"CIDEr-D = ([\d.]+)")


def printed_beam(out_path: str) -> Optional[int]:
    """The beam size of fairseq-generate's summary line (``Generate test_en with beam=3: ...``), or None."""
    value = last_printed(out_path, r"^Generate \S+ with beam=(\d+)")
    return None if value is None else int(value)


def score(out_path: str, refs_path: str, lang: str) -> Dict[str, object]:
    gen = parse_generate_output(out_path)
    _, hyps, refs = pair_up(gen, out_path, refs_path)
    return coco_scores(hyps, refs, lang)


def format_rows(label: str, results: Dict[str, Dict[str, object]]):
    rows = []
    for lang, s in results.items():
        cells = [f"{100.0 * s[c]:.2f}" if c in s else "n/a" for c in COLUMNS]
        rows.append(f"| {label} | {lang} | {s['images']} | {s['refs_per_image']:.2f} | " + " | ".join(cells) + " |")
    return rows


def evaluate(a, path: str, work: str, row_args=()):
    """Generate (or, with ``--generated``, read: ``path`` is then the row's file template) and score
    every language of one row.

    Returns:
        (results, commands), both keyed by language.
    """
    results, commands = {}, {}
    for lang in a.langs:
        subset = f"{a.split}_{lang}"
        if a.generated is None:
            out = os.path.join(work, f"gen_{subset}.txt")
            command = quote(generate(a, path, subset, out, row_args))
        else:
            out = path.replace("{subset}", subset)
            if not os.path.isfile(out):
                raise FileNotFoundError(f"--generated {path}: no output {out} for {subset}")
            beam = printed_beam(out)
            if beam != a.beam:
                raise ValueError(f"{out}: generated with beam {beam}, the table says beam {a.beam} (--beam)")
            command = f"scored from {out} (generated elsewhere)"
        s = score(out, os.path.join(a.data, f"{subset}.refs.txt"), lang)
        printed = printed_cider(out)
        # generated here, fairseq's cider scorer must have printed CIDEr-D; generated elsewhere, it may not have
        missing = printed is None and a.generated is None
        if missing or (printed is not None and abs(printed - 100.0 * s["CIDEr"]) > 0.01):
            raise ValueError(f"{out}: fairseq's cider scorer printed {printed}, "
                             f"recomputed {100.0 * s['CIDEr']:.2f}")
        results[lang], commands[lang] = s, command
    return results, commands


def check_rows(a):
    """(paths or templates, labels, extra generate arguments per row) of the options; bad combinations
    end the command with a message."""
    if a.generated is not None:
        if a.row_args is not None:
            raise SystemExit("--row-args applies to --path (generation here), not to --generated outputs")
        if a.label is None or len(a.label) != len(a.generated):
            raise SystemExit(f"--generated: needs one --label per template ({len(a.generated)})")
        bad = [t for t in a.generated if "{subset}" not in t]
        if bad:
            raise SystemExit(f"--generated: a template needs '{{subset}}': {bad[0]}")
    paths = a.path if a.path is not None else a.generated
    labels = a.label if a.generated is not None else checkpoint_labels(a.path, a.label)
    if a.row_args is not None and len(a.row_args) != len(paths):
        raise SystemExit(f"--row-args: {len(a.row_args)} strings for {len(paths)} checkpoints")
    row_args = [shlex.split(r) for r in a.row_args] if a.row_args else [[] for _ in paths]
    return paths, labels, row_args


def run(a) -> str:
    """Write the table and its JSON; returns the table's rows (for the terminal)."""
    paths, labels, row_args = check_rows(a)
    base = results_work_dir(a.out)
    runs = []
    for k, (path, label) in enumerate(zip(paths, labels)):
        work = base if len(paths) == 1 else os.path.join(base, f"model{k + 1}")
        if a.generated is None:
            os.makedirs(work, exist_ok=True)
        results, commands = evaluate(a, path, work, row_args[k])
        key = "checkpoint" if a.generated is None else "generated"
        runs.append({"label": label, key: path, "results": results, "commands": commands,
                     "generate_args": row_args[k]})
    lines = ["# Captioning results", "",
             provenance(), "",
             "pycocoevalcap 1.2 on lowercased PTB tokens, x100; beam "
             f"{a.beam}. METEOR is English-only in pycocoevalcap (n/a elsewhere); SPICE is skipped "
             "(it downloads Stanford CoreNLP models).", "",
             "| model | lang | photos | refs/photo | " + " | ".join(COLUMNS) + " |",
             "|---|---|---|---|" + "---|" * len(COLUMNS)]
    for r in runs:
        lines += format_rows(r["label"], r["results"])
    if "en" in a.langs:
        for name, vals in ANCHORS:
            lines.append(f"| {name} | en | 1000 | 5 | " + " | ".join(
                f"{vals[c]:.2f}" if c in vals else "-" for c in COLUMNS) + " |")
    if a.note:
        lines += ["", a.note]
    lines += ["", "Generate commands:" if a.generated is None else "Outputs:", ""]
    for r in runs:
        lines += [f"- {r['label']}, {lang}: `{c}`" for lang, c in r["commands"].items()]
    write_markdown(a.out, lines)
    keys = ("results", "commands", "checkpoint", "generated")
    write_json(beside(a.out, ".json"),
               {k: runs[0][k] for k in keys if k in runs[0]} if len(runs) == 1 else {"models": runs})
    return "\n".join(lines[6:])

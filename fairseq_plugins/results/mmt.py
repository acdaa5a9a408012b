"""``unix-results mmt``: trained Multi30K systems on test_2016_flickr (with command and commit).

For each system of a JSON config (see examples/multi30k_mmt/systems.json): average the last N
epoch checkpoints, run ``fairseq-generate --beam 5`` on test_2016_flickr, and score
(a) tokenized BLEU comparable with the published tables and (b) sacreBLEU, on all 1,000
sentences and on the sentences whose image is available. Systems with images are also
decoded with the images shuffled among those sentences (does the model use the image?).

Example::

    unix-results mmt --config examples/multi30k_mmt/systems.json \\
        --data ../shared/data --bin data-bin/multi30k --out examples/multi30k_mmt/RESULTS.md
"""

import logging
import os

import torch

from fairseq_plugins.checkpoint import average, imported_average, last_checkpoints, trained_updates
from unix.metrics.bleu import score
from unix.provenance import load_config, provenance, slug
from fairseq_plugins.results.common import (beside, bleu_cell, generate_command, missing_lines, quote, run_generate, write_json,
                                 write_markdown)

logger = logging.getLogger(__name__)
# Published tokenized BLEU (a) on test_2016_flickr, shown under the measured rows of the same pair.
PUBLISHED = {("en", "de"): [("Transformer-tiny, text-only (Revisit-MMT, Wu et al. ACL 2021)", 41.02),
                            ("gated fusion MMT (Revisit-MMT, Wu et al. ACL 2021)", 41.96)]}


def add_arguments(p) -> None:
    p.add_argument("--config", required=True, help="JSON list of systems")
    p.add_argument("--data", default="../shared/data", help="root of multi30k/ and flickr8k/")
    p.add_argument("--bin", required=True, help="binarized data (unix-prepare-multi30k)")
    p.add_argument("--out", required=True, help="markdown file to write")
    p.add_argument("--work", default=None, help="where generate outputs go (default: next to --out)")
    p.add_argument("--var", action="append", default=[], help="NAME=VALUE substituted for {NAME} in the config")


def generate(bin_dir, ckpt, system, out_path, extra=()):
    cmd = generate_command(bin_dir, system["task"], "-s", system["src"], "-t", system["tgt"], "--path", ckpt,
                           "--gen-subset", "test", "--beam", "5", "--max-tokens", "4096",
                           "--post-process", "sentencepiece", "--required-batch-size-multiple", "1",
                           *system.get("generate_args", []), *extra)
    return run_generate(cmd, out_path, keep_stderr=False)


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
    imported = imported_average(ckpt_dir)
    if imported:  # trained on another machine, which sent back its average
        return imported_short_of(imported, system)
    want, last = system.get("updates"), os.path.join(ckpt_dir, "checkpoint_last.pt")
    if want:  # the run's progress is in checkpoint_last.pt (the final epoch may end without an epoch file)
        if not os.path.exists(last):
            return f"no {last} to tell how far training went"
        why = short_of(last, want)
        if why:
            return why
    try:
        last_checkpoints(ckpt_dir, system.get("average", 10), updates=system.get("average_updates", False))
    except ValueError as e:
        return str(e)
    return ""


def imported_short_of(imported, system) -> str:
    """Why the average a run brought back does not count ("" = it does): other checkpoints averaged than the
    config's ``average`` (epoch ones, or update ones with ``average_updates``), or fewer updates trained."""
    n, kind = system.get("average", 10), "update" if system.get("average_updates") else "epoch"
    if (imported["n"], imported["kind"]) != (n, kind):
        return f"{imported['path']}: the average of {imported['n']} {imported['kind']} checkpoints, {n} {kind} ones wanted"
    want = system.get("updates")
    if want and (imported["updates"] or 0) < want:
        return f"training not finished ({imported['updates']} of {want} updates in {imported['path']})"
    return ""


def average_sources(ckpt_dir: str, system):
    """(files the decoded model comes from, the imported record or None): the last ``average`` checkpoints
    of a run (epoch ones, or update ones with ``average_updates``), or the average it brought back from
    another machine (:func:`fairseq_plugins.checkpoint.imported_average`)."""
    imported = imported_average(ckpt_dir)
    if imported:
        return [imported["path"]], imported
    return last_checkpoints(ckpt_dir, system.get("average", 10), updates=system.get("average_updates", False)), None


def averaged_model(sources, imported, out: str, write: bool = True):
    """(checkpoint to decode, names of the checkpoints averaged, updates trained or None) for what
    :func:`average_sources` returned: the imported average, or ``sources`` averaged into ``out`` (not written
    with ``write=False``: the decoded outputs are already there)."""
    if imported:
        return imported["path"], imported["inputs"], imported["updates"]
    if write:
        torch.save(average(sources), out)
    return out, [os.path.basename(p) for p in sources], None


def run_average(ckpt_dir: str, system, out: str):
    """:func:`averaged_model` of the run in ``ckpt_dir``."""
    return averaged_model(*average_sources(ckpt_dir, system), out)


def evaluate(system, a, work):
    name, tgt = system["name"], system["tgt"]
    stem = slug(name)
    ckpt_dir = system["checkpoints"]
    avg, names, updates = run_average(ckpt_dir, system, os.path.join(work, f"{stem}.avg{system.get('average', 10)}.pt"))
    updates = updates or trained_updates(os.path.join(ckpt_dir, names[-1]))
    m30k = os.path.join(a.data, "multi30k")
    ref = os.path.join(m30k, f"test_2016_flickr.{tgt}")
    ref_tok = os.path.join(m30k, "tok", f"test_2016_flickr.lc.norm.tok.{tgt}")
    subset = os.path.join(a.bin, "test.images.txt")
    out = os.path.join(work, f"{stem}.test.txt")
    cmd = generate(a.bin, avg, system, out)
    row = {"name": name, "src": system["src"], "tgt": tgt, "updates": updates,
           "epochs": [names[0], names[-1]],
           "generate": quote(cmd),
           "all": score(out, ref, tgt, ref_tok),
           "with_image": score(out, ref, tgt, ref_tok, subset)}
    if system.get("images"):
        out_shuf = os.path.join(work, f"{stem}.test.shuffled.txt")
        generate(a.bin, avg, system, out_shuf, ["--shuffle-images"])
        row["shuffled"] = score(out_shuf, ref, tgt, ref_tok, subset)
    return row


def write_tables(rows, path, missing=()):
    """The markdown table of ``rows`` into ``path``, the rows as JSON beside it."""
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
        lines.append(f"| {r['name']} | {r['updates']} | {r['epochs'][0]}..{r['epochs'][1]} | {bleu_cell(r['all'])} | "
                     f"{bleu_cell(r['with_image'])} (n={r['with_image']['n']}) | {bleu_cell(r.get('shuffled'))} |")
    for pair in dict.fromkeys((r["src"], r["tgt"]) for r in rows):
        for name, bleu in PUBLISHED.get(pair, []):
            lines.append(f"| published: {name} | - | - | {bleu:.2f} / - | - | - |")
    lines += missing_lines(missing)
    sig = rows[0]["all"]["sacrebleu"]["signature"] if rows else ""
    lines += ["", f"sacreBLEU signature: `{sig}`", "", "Generate commands:", ""]
    lines += [f"- {r['name']}: `{r['generate']}`" for r in rows]
    write_markdown(path, lines)
    write_json(beside(path, ".json"), rows)


def run(a) -> str:
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
    write_tables(rows, a.out, missing)
    logger.info("wrote %s", a.out)
    return ""

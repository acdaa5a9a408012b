"""``unix-benchmark precision``: training-step time of the core model in fp32 and under fp16 / bf16 autocast, one fixed batch shape.

No fairseq and no data: one random batch of the shapes of a captioning / MMT batch (``--batch``
samples, ``--src-len`` text tokens, ``--visual-tokens`` x ``--feature-dim`` image features,
``--tgt-len`` target tokens), forward + cross-entropy + backward + Adam step, timed after warm-up
steps, every precision in the same process; ratios against fp32. A plain stack of ``nn.Linear``
layers of the model's width is timed beside it (``--no-linear-peer`` skips it) so a slowdown can
be told apart from the model's own code. ``--profile`` prints torch.profiler's top operators of
the bf16 step. Because the shape never changes, this measures steady-state arithmetic only,
not per-shape setup costs (``unix-benchmark train`` and ``unix-benchmark caption`` use real batches).

Example (GPU)::

    unix-benchmark precision --device cuda --arch unix_small --batch 256 --profile
"""

import argparse

import torch
import torch.nn.functional as F

from fairseq_plugins.benchmark.timing import autocast, default_device, report, sync, time_steps

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=default_device())
    p.add_argument("--arch", default="unix_small")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--src-len", type=int, default=16)
    p.add_argument("--tgt-len", type=int, default=14)
    p.add_argument("--visual-tokens", type=int, default=49)
    p.add_argument("--feature-dim", type=int, default=1280)
    p.add_argument("--vocab", type=int, default=10001)
    p.add_argument("--steps", type=int, default=20, help="timed steps per precision")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--precisions", default="fp32,fp16,bf16")
    p.add_argument("--no-linear-peer", action="store_true")
    p.add_argument("--profile", action="store_true", help="print the top operators of 3 bf16 steps")
    p.add_argument("--json", default=None)


def build_step(args, linear_peer: bool):
    """A training step of the model (or of the linear peer) on one fixed batch; takes an autocast dtype or None."""
    from unix import UnixConfig, UnixModel

    torch.manual_seed(0)
    dev, V = args.device, args.vocab
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, V, (args.batch, args.src_len), generator=g).to(dev)          # (B, S)
    prev = torch.randint(4, V, (args.batch, args.tgt_len), generator=g).to(dev)         # (B, T)
    feats = torch.rand(args.batch, args.visual_tokens, args.feature_dim, generator=g).to(dev)  # (B, N, C)
    mask = torch.ones(args.batch, dtype=torch.bool, device=dev)
    cfg = UnixConfig.from_arch(args.arch, image_feature_dim=args.feature_dim)
    if linear_peer:  # the decoder's share of linear layers, nothing else
        width = cfg.embed_dim
        model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(16)],
                                    torch.nn.Linear(width, V)).to(dev)
        x = torch.randn(args.batch * args.tgt_len, width, generator=g).to(dev)
        forward = lambda: model(x)  # noqa: E731
    else:
        model = UnixModel(cfg, V, 1).to(dev).train()
        forward = lambda: model(src, prev, image_features=feats, image_mask=mask).reshape(-1, V)  # noqa: E731
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    target = prev.reshape(-1)

    def step(dtype):
        with autocast(dev, dtype):
            logits = forward()                                    # (B*T, V)
            loss = F.cross_entropy(logits.float(), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step


def profile_bf16(args) -> str:
    """torch.profiler's table of the top operators of 3 bf16 steps of the model."""
    from torch.profiler import ProfilerActivity, profile

    step = build_step(args, False)
    time_steps(step, torch.bfloat16, args.device, 1, args.warmup)
    cuda = str(args.device).startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            step(torch.bfloat16)
        sync(args.device)
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=12, max_name_column_width=60)


def run(args: argparse.Namespace) -> int:
    names = [n for n in args.precisions.split(",") if n]
    unknown = [n for n in names if n not in PRECISIONS]
    if unknown or "fp32" not in names:
        raise SystemExit(f"--precisions takes {','.join(PRECISIONS)} and must include fp32; got {args.precisions}")
    res = {"device": args.device, "arch": args.arch, "batch": args.batch, "ms_per_step": {}}
    lines = [f"{args.arch}, device {args.device}, batch {args.batch} x ({args.src_len} text + "
             f"{args.visual_tokens} visual tokens) -> {args.tgt_len} target tokens, {args.steps} timed steps"]
    for peer in ([False] if args.no_linear_peer else [False, True]):
        label = "linear_stack" if peer else args.arch
        step = build_step(args, peer)
        times = {n: time_steps(step, PRECISIONS[n], args.device, args.steps, args.warmup) for n in names}
        res["ms_per_step"][label] = {n: 1000 * t for n, t in times.items()}
        for n, t in times.items():
            lines.append(f"{label:14s} {n}: {1000 * t:8.2f} ms/step  ({t / times['fp32']:.2f}x fp32)")
    report(lines, res, args.json)
    if args.profile:
        print(profile_bf16(args))
    return 0

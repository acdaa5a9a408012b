"""What the benchmarks share: timing loops, GPU sync, autocast, the report files, the machine.

Every kind of ``unix-benchmark`` times its systems in one process, interleaved (a batch or a call
of each system in turn), so that a change of machine load hits every system alike, and prints one
line per figure; ``--json`` and ``--markdown`` keep the figures (the markdown file starts with
:func:`unix.provenance.provenance`: command, commit, time).
"""

import argparse
import datetime
import json
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch

from unix.provenance import provenance


# -- device and precision ---------------------------------------------------------------------------------------
def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu`` (the default of every ``--device``)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def autocast(device, dtype: Optional[torch.dtype] = None):
    """``torch.autocast`` to ``dtype`` (e.g. ``torch.bfloat16``) on ``device``; a no-op context when None."""
    return torch.autocast(str(device).split(":")[0], dtype=dtype or torch.float32, enabled=dtype is not None)


def amp_dtype(args: argparse.Namespace) -> Optional[torch.dtype]:
    """The autocast dtype of ``--bf16`` (None without it)."""
    return torch.bfloat16 if args.bf16 else None


def sync(device) -> None:
    """Wait for the GPU's queued work (timers read the clock only after it); nothing on a CPU."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def to_device(batch: dict, device) -> dict:
    """A fairseq batch moved to ``device`` (left as it is on a CPU)."""
    from fairseq import utils

    return utils.move_to_cuda(batch) if str(device).startswith("cuda") else batch


def add_run_options(p: argparse.ArgumentParser, bf16_help: Optional[str] = None, markdown: bool = True) -> None:
    """The options every fairseq-batch kind shares: ``--device``, ``--threads``, ``--bf16`` (when
    ``bf16_help`` is given), ``--json`` and ``--markdown``."""
    p.add_argument("--device", default=default_device())
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    if bf16_help:
        p.add_argument("--bf16", action="store_true", help=bf16_help)
    p.add_argument("--json", default=None, help="also write the figures here")
    if markdown:
        p.add_argument("--markdown", default=None, help="also write a markdown report (with command and commit)")


# -- timing loops -------------------------------------------------------------------------------------------------
class TrainTimer:
    """Times training steps of one model; steps of several timers can be interleaved (rounds) so a
    change of machine load hits every model alike.

    Args:
        model: a fairseq model (moved to ``device``, put in training mode).
        criterion: a fairseq criterion, called as ``criterion(model, batch)``.
        device: where the batches are.
        dtype: the autocast dtype of the forward and the loss (None: fp32).
    """

    def __init__(self, model, criterion, device, dtype: Optional[torch.dtype] = None):
        self.model, self.criterion, self.device, self.dtype = model.to(device).train(), criterion, device, dtype
        self.opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4, betas=(0.9, 0.98))
        self.seconds, self.updates, self.tokens = 0.0, 0, 0

    def step(self, batch: dict, timed: bool = True) -> None:
        """One update (forward, loss, backward, Adam) on ``batch``; counted unless ``timed`` is False."""
        sync(self.device)
        t0 = time.perf_counter()
        with autocast(self.device, self.dtype):
            loss, _, _ = self.criterion(self.model, batch)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        sync(self.device)
        if timed:
            self.seconds += time.perf_counter() - t0
            self.updates += 1
            self.tokens += batch["ntokens"]

    def result(self) -> Dict[str, float]:
        return {"updates_per_s": self.updates / self.seconds, "target_tokens_per_s": self.tokens / self.seconds,
                "updates": self.updates}


def time_steps(step: Callable, dtype, device, steps: int, warmup: int) -> float:
    """Seconds per call of ``step(dtype)``: ``warmup`` untimed calls, then the mean of ``steps``."""
    for _ in range(warmup):
        step(dtype)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(dtype)
    sync(device)
    return (time.perf_counter() - t0) / steps


def time_interleaved(runners: Dict[str, Callable], rounds: int) -> Tuple[dict, dict, dict]:
    """Seconds per call of each runner, calls interleaved round by round (one untimed call first).

    Returns:
        ``(wall, cpu, outputs)``: per runner the wall-clock and the process CPU times of its calls
        (CPU time leaves out the time the process waited for a core: on a shared machine it is the
        steadier measure of one thread's work) and the output of its warm-up call.
    """
    outputs = {name: run() for name, run in runners.items()}  # warm-up, kept for checks
    wall = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            t0, c0 = time.perf_counter(), time.process_time()
            run()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - t0)
    return wall, cpu, outputs


def peer_ratios(times: Dict[str, List[float]], batch: int, sizes: Dict[str, int], clock: str,
                ref: str = "unix") -> Tuple[List[str], dict]:
    """The printed lines and the figures of one clock of :func:`time_interleaved`: per runner the
    median seconds per call (and range) and sentences/s (``batch`` per call), then the speed of
    ``ref`` over each peer as the ratio of the medians and as the median of the per-round ratios.

    Args:
        times: per runner, seconds of each timed call (rounds in order).
        batch: sentences per call.
        sizes: per runner, its parameter count.
        clock: ``cpu`` or ``wall`` (named in the heading line).
        ref: the runner whose speed-up over the others is reported.
    """
    median = {name: statistics.median(t) for name, t in times.items()}
    rate = {name: batch / t for name, t in median.items()}
    lines = [f"-- {clock} time (median per call, range)"]
    for name in times:
        lines.append(f"{name:8s} {sizes[name] / 1e6:5.2f}M params  {median[name]:.3f} s/call ({min(times[name]):.3f}-"
                     f"{max(times[name]):.3f})  {rate[name]:6.1f} sentences/s")
    ratios = {}
    for name in times:
        if name != ref:
            per_round = statistics.median(t / u for t, u in zip(times[name], times[ref]))
            ratios[f"{ref}/{name}"] = {"medians": rate[ref] / rate[name], "per_round_median": per_round}
            lines.append(f"{ref}/{name} speed: {rate[ref] / rate[name]:.2f}x (ratio of medians), {per_round:.2f}x "
                         f"(median of per-round ratios)")
    return lines, {"median_s": median, "times_s": times, "sentences_per_s": rate, "ratios": ratios}


# -- reports ------------------------------------------------------------------------------------------------------
def report(lines: List[str], res: dict, json_path: Optional[str] = None, markdown_path: Optional[str] = None,
           title: str = "") -> None:
    """Print ``lines``; write ``res`` to ``json_path`` and the lines under ``# title`` and the
    provenance sentence to ``markdown_path`` (each when given)."""
    print("\n".join(lines))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(res, f, indent=1)
    if markdown_path:
        with open(markdown_path, "w") as f:
            f.write(f"# {title}\n\n{provenance()}\n\n```\n" + "\n".join(lines) + "\n```\n")


# -- the machine --------------------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe() -> str:
    """One line naming the machine: date, accelerator or CPU model and torch threads, torch version
    (``unix-benchmark device``; the Multi30K training scripts append it to ``<save dir>/device.txt``)."""
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        dev = f"{n} x {torch.cuda.get_device_name(0)}" if n > 1 else torch.cuda.get_device_name(0)
    else:
        dev = f"cpu: {cpu_model()}, {torch.get_num_threads()} torch thread(s)"
    return f"{datetime.datetime.now():%Y-%m-%d %H:%M} | {dev} | torch {torch.__version__}"

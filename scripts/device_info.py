#!/usr/bin/env python
"""Print one line naming the machine a run uses: date, accelerator or CPU model, threads, torch.

The Multi30K training scripts append it to ``<save dir>/device.txt``, and the results command
(``scripts/mmt_protocol_results.py``) reports it in each row's ``device``.

Example::

    python scripts/device_info.py    # 2026-12-06 19:40 | cpu: AMD EPYC 7B13, 1 torch thread(s) | torch 2.14.1
"""

import datetime
import platform
import sys


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
    import torch

    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        dev = f"{n} x {torch.cuda.get_device_name(0)}" if n > 1 else torch.cuda.get_device_name(0)
    else:
        dev = f"cpu: {cpu_model()}, {torch.get_num_threads()} torch thread(s)"
    return f"{datetime.datetime.now():%Y-%m-%d %H:%M} | {dev} | torch {torch.__version__}"


def main(argv=None) -> int:
    sys.stdout.write(describe() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

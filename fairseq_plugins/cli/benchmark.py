"""``unix-benchmark KIND ...``: how fast unix trains and generates, beside its peers, in one process.

Kinds: ``train`` (unix_small vs fairseq's transformer: training and generation on Multi30K
batches), ``caption`` (unix_caption's batchings, with and without ``--group-by-photo``),
``generate`` (beam search: unix vs fairseq's generator vs Hugging Face's ``generate``),
``precision`` (a training step in fp32 / fp16 / bf16), ``device`` (one line naming the machine).
``unix-benchmark KIND --help`` lists a kind's options. The systems of a kind are timed
interleaved, so that a change of machine load hits them alike; ``--json`` (and ``--markdown``,
with command and commit) keep the figures.
"""

import argparse
import logging
import sys
from typing import List, Optional

from fairseq_plugins.benchmark import caption, generate, precision, train
from fairseq_plugins.benchmark.timing import describe

PROG = "unix-benchmark"
KINDS = {"train": train, "caption": caption, "generate": generate, "precision": precision}
DEVICE_DOC = """``unix-benchmark device``: print one line naming the machine a run uses: date, accelerator or CPU model, threads, torch.

The Multi30K training scripts append it to ``<save dir>/device.txt``, and ``unix-results
mmt-protocol`` reports it in each row's ``device``.

Example::

    unix-benchmark device    # 2026-12-06 19:40 | cpu: AMD EPYC 7B13, 1 torch thread(s) | torch 2.14.1
"""


def _summary(doc: str) -> str:
    """A kind's one-line help: the first line of its docstring after ``unix-benchmark KIND``: ."""
    return doc.splitlines()[0].split(": ", 1)[-1]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    for name, module in KINDS.items():
        module.add_arguments(sub.add_parser(name, help=_summary(module.__doc__), description=module.__doc__,
                                            formatter_class=argparse.RawDescriptionHelpFormatter))
    sub.add_parser("device", help=_summary(DEVICE_DOC), description=DEVICE_DOC,
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    a = build_parser().parse_args(argv)
    if a.kind == "device":
        print(describe())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(message)s")
    return KINDS[a.kind].run(a)


if __name__ == "__main__":
    sys.exit(main())

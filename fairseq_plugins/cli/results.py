"""``unix-results TASK ...``: write an example's results table from checkpoints or kept outputs.

Tasks: ``caption`` (examples/captioning), ``mmt`` (examples/multi30k_mmt, our protocol),
``mmt-protocol`` (examples/multi30k_mmt, the published tok-bpe protocol), ``vqa`` (examples/vqa),
``pretrain`` (examples/pretraining), ``crosslingual`` (examples/crosslingual: zero-shot VQA and
retrieval per language). ``unix-results TASK --help`` lists a task's options. Every
table starts with the command that wrote it, the commit of the code and the time, and comes with
a JSON file of its rows.
"""

import argparse
import logging
import sys
from typing import List, Optional

from unix.provenance import command_line
from fairseq_plugins.results import caption, crosslingual, mmt, mmt_protocol, pretrain, vqa
from fairseq_plugins.results.common import task_parser

PROG = "unix-results"
TASKS = {"caption": caption, "mmt": mmt, "mmt-protocol": mmt_protocol, "vqa": vqa, "pretrain": pretrain,
         "crosslingual": crosslingual}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, module in TASKS.items():
        task_parser(module, sub.add_parser(name, help=module.__doc__.splitlines()[0].split(": ", 1)[-1],
                                           description=module.__doc__,
                                           formatter_class=argparse.RawDescriptionHelpFormatter))
    return p


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(message)s")
    a = build_parser().parse_args(argv)
    a.command = command_line(argv, PROG) if argv is not None else command_line()
    summary = TASKS[a.task].run(a)
    if summary:
        print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a results file came from: the command, the commit of the code and the time.

Every table the ``unix-results`` and ``unix-benchmark`` commands write starts with
:func:`provenance`; :func:`git_commit` is also stamped into exported model cards
(:mod:`unix.export`). Also here: the small helpers those commands share for their inputs
(``--var`` configs, file-name stems, per-results-file work folders, row labels).
"""

import datetime
import json
import os
import re
import shlex
import subprocess
import sys
from typing import List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git_commit(code: Sequence[str] = ("*.py", "*.sh")) -> str:
    """Short commit hash of the checkout, or ``unknown`` (stamped into every results file).

    ``<hash>+dirty`` when tracked files matching ``code`` differ from that commit, so a results file
    written from uncommitted code says so. Other files (results tables being rewritten, READMEs) and
    untracked files do not count.
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        if not commit:
            return "unknown"
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *code],
                                 cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        return commit + "+dirty" if changed else commit
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _program(path: str) -> str:
    """How to write the running program: ``python <path relative to the root>`` for a ``.py`` file,
    the bare name for an installed command (``unix-results``)."""
    if path.endswith(".py"):
        return "python " + shlex.quote(os.path.relpath(path, ROOT))
    return shlex.quote(os.path.basename(path))


def command_line(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> str:
    """A command line, shell-quoted.

    ``argv`` and ``prog`` (e.g. ``unix-results``) when a command's ``main(argv)`` was called with
    arguments (from another program or a test); otherwise the running process's ``sys.argv``.
    """
    if argv is not None and prog is not None:
        return " ".join([prog] + [shlex.quote(x) for x in argv])
    return " ".join([_program(sys.argv[0])] + [shlex.quote(x) for x in sys.argv[1:]])


def provenance() -> str:
    """The sentence every results file starts with: the command, the commit and the time."""
    return (f"Written by `{command_line()}` at commit `{git_commit()}` on "
            f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}. Do not edit by hand.")


def load_config(path: str, variables: Sequence[str]) -> object:
    """A JSON config with every ``{NAME}`` replaced by the value of ``NAME=VALUE`` in ``variables``
    (the commands' repeated ``--var`` option). A ``{NAME}`` left without a value is an error."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for item in variables:
        if "=" not in item:
            raise SystemExit(f"--var {item!r}: expected NAME=VALUE")
        name, value = item.split("=", 1)
        text = text.replace("{" + name + "}", value)
    left = sorted(set(re.findall(r"\{([A-Z_]+)\}", text)))
    if left:
        raise SystemExit(f"{path}: no --var for {', '.join(left)}")
    return json.loads(text)


def slug(name: str) -> str:
    """``name`` as a file-name stem: runs of other characters than ``A-Za-z0-9_.-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def results_work_dir(out: str) -> str:
    """The folder, created, for the intermediate outputs behind the results file ``out``:
    ``<its folder>/eval/<its stem>``, so two results files written at once never share outputs."""
    work = os.path.join(os.path.dirname(os.path.abspath(out)), "eval", os.path.splitext(os.path.basename(out))[0])
    os.makedirs(work, exist_ok=True)
    return work


def checkpoint_labels(paths: Sequence[str], labels: Optional[Sequence[str]]) -> List[str]:
    """One label per checkpoint: ``labels`` (the ``--label`` option) or, when not given, the checkpoint
    paths themselves; a count that differs from ``paths`` (``--path``) ends the command with a message."""
    labels = list(labels) if labels else list(paths)
    if len(labels) != len(paths):
        raise SystemExit(f"{len(paths)} checkpoints (--path) but {len(labels)} labels (--label)")
    return labels

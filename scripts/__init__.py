"""Command-line tools of unix; each module has ``main(argv=None)``."""

import datetime
import json
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git_commit() -> str:
    """Short commit hash of the checkout, or ``unknown`` (stamped into every results file).

    ``<hash>+dirty`` when tracked code (``*.py``, ``*.sh``) differs from that commit, so a results file
    written from uncommitted code says so. Other files (results tables being rewritten, READMEs) and
    untracked files do not count.
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        if not commit:
            return "unknown"
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "*.py", "*.sh"],
                                 cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        return commit + "+dirty" if changed else commit
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command_line(argv=None, script=None) -> str:
    """A script's command line, relative to the repository root, shell-quoted.

    ``argv`` and ``script`` (its ``__file__``) when the script's ``main(argv)`` was called with
    arguments (from another program or a test); otherwise the running process's ``sys.argv``.
    """
    if argv is not None and script is not None:
        return " ".join(shlex.quote(x) for x in [os.path.relpath(script, ROOT)] + list(argv))
    return " ".join(shlex.quote(x) for x in [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])


def load_config(path: str, variables) -> object:
    """A JSON config with every ``{NAME}`` replaced by the value of ``NAME=VALUE`` in ``variables``
    (the scripts' repeated ``--var`` option). A ``{NAME}`` left without a value is an error."""
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


def checkpoint_labels(paths, labels):
    """One label per checkpoint: ``labels`` (the ``--label`` option) or, when not given, the checkpoint
    paths themselves; a count that differs from ``paths`` (``--path``) ends the script with a message."""
    labels = list(labels) if labels else list(paths)
    if len(labels) != len(paths):
        raise SystemExit(f"{len(paths)} checkpoints (--path) but {len(labels)} labels (--label)")
    return labels


def provenance() -> str:
    """The sentence every results file starts with: the command, the commit and the time."""
    return (f"Written by `python {command_line()}` at commit `{git_commit()}` on "
            f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}. Do not edit by hand.")

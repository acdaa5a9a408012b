"""Command-line tools of unix; each module has ``main(argv=None)``."""

import datetime
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git_commit() -> str:
    """Short commit hash of the checkout, or ``unknown`` (stamped into every results file)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip() or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command_line() -> str:
    """The running script's command line, relative to the repository root, shell-quoted."""
    return " ".join(shlex.quote(x) for x in [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])


def provenance() -> str:
    """The sentence every results file starts with: the command, the commit and the time."""
    return (f"Written by `python {command_line()}` at commit `{git_commit()}` on "
            f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}. Do not edit by hand.")

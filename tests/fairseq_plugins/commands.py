"""The tests' runner of fairseq's and the project's commands (fairseq-train, fairseq-generate, ...)."""

import os
import subprocess

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
USER_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "fairseq_plugins")


def run(cmd, **kw) -> subprocess.CompletedProcess:
    """Run ``cmd`` (paths allowed) on one thread; a failure raises with the end of its stderr."""
    cmd = [str(c) for c in cmd]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return proc

"""``unix-results mmt-protocol --train``: train the runs the table lacks, one after another, then score them.

Each run of a results config (``examples/multi30k_mmt/systems_published.json``) carries the command that
trains it (``command``; a system pre-trained first also has ``pretrain_command``, run before its first
run). ``--train`` runs, in config order, the command of every run that is neither finished here nor carried
from the earlier results file: the training scripts resume from ``checkpoint_last.pt``, so the same command
started again after an interruption (or on the next machine, given the run directory) goes on where it
stopped. Each run's output is appended to ``<run dir>/train.log``; then the table is written as without
``--train``. A run being trained holds ``<run dir>/train.lock``: a second ``--train`` started beside the first
(a second lane on a machine with cores to spare) skips it and trains the next one. ``--only REGEX`` (searched
in ``<system> (<pair>) seed <N>``) picks runs; ``--dry-run`` prints the commands that would run, and where each
run stands (the update its ``checkpoint_last.pt`` resumes at; being trained by another ``--train``), and runs
nothing.

A run whose binarized data or image features are not there is skipped with a warning (README section 4 prepares
each data directory); a command that fails stops the whole, naming its log. Commands name the scripts relative to
the repository root (``bash examples/...``), as the README's do: run from there.

Example (both unix text-only seeds of the En-De table, on this machine, then the table)::

    unix-results mmt-protocol --config examples/multi30k_mmt/systems_published.json --var RUNS=checkpoints \\
        --var BIN_ENDE=data-bin/multi30k_tok_ende ... --out examples/multi30k_mmt/RESULTS_published_protocol.json \\
        --train --only "unix_small, text-only \\(en-de\\)"
"""

import fcntl
import logging
import os
import re
import subprocess
from typing import Callable, Dict, List, Optional, Sequence

from fairseq_plugins.checkpoint import trained_updates

logger = logging.getLogger(__name__)


def add_arguments(p) -> None:
    p.add_argument("--train", action="store_true",
                   help="first train, one after another, the runs not finished here (each command resumes)")
    p.add_argument("--only", default=None, metavar="REGEX",
                   help="with --train: only the runs whose '<system> (<pair>) seed <N>' matches")
    p.add_argument("--dry-run", action="store_true", help="with --train: print the commands, run nothing")


def planned(systems: Sequence[Dict], waiting: Callable[[Dict], List[Dict]], only: str = None) -> List[Dict]:
    """The commands ``--train`` runs, in order: ``{"name", "dir", "command", "log"}`` per step.

    Args:
        systems: the config's systems (variables substituted).
        waiting: ``system -> [{"seed", ...}]``, its runs to train (not finished, not carried).
        only: a regular expression searched in ``<system> (<pair>) seed <N>``; None: every run.
    """
    steps = []
    for system in systems:
        todo = []
        for p in waiting(system):
            run = next(r for r in system["runs"] if r["seed"] == p["seed"])
            name = f"{system['system']} ({system['pair']}) seed {run['seed']}"
            if only and not re.search(only, name):
                continue
            absent = [d for d in [system["bin"]] + re.findall(r"--image-features (\S+)", run["command"])
                      if not os.path.isdir(d)]
            if absent:
                logger.warning("%s: no %s (README section 4 prepares it): not trained", name, absent[0])
                continue
            todo.append({"name": name, "dir": run["dir"], "command": run["command"],
                         "log": os.path.join(run["dir"], "train.log"), "updates": system.get("updates")})
        if todo and system.get("pretrain_command"):
            todo.insert(0, dict(todo[0], name=f"{system['system']} ({system['pair']}): pre-training",
                                command=system["pretrain_command"], pretrain=True))
        steps += todo
    return steps


def take_lock(lock) -> bool:
    """Take the exclusive lock of the open file ``lock`` without waiting; False if another process holds it."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def locked(run_dir: str) -> bool:
    """Whether another process holds ``<run_dir>/train.lock`` (a ``--train`` training that run now)."""
    path = os.path.join(run_dir, "train.lock")
    if not os.path.exists(path):
        return False
    with open(path) as lock:  # closing it lets go of a lock taken here
        return not take_lock(lock)


def progress(step: Dict) -> Optional[str]:
    """Where a run step stands: ``resumes at update N of M`` (its ``checkpoint_last.pt``), ``being trained by
    another --train`` (its lock is held); None for a run not started, or a pre-training step (its directory is
    the pre-training command's own)."""
    if step.get("pretrain"):
        return None
    said = []
    last = os.path.join(step["dir"], "checkpoint_last.pt")
    if os.path.exists(last):
        total = f" of {step['updates']}" if step.get("updates") else ""
        said.append(f"resumes at update {trained_updates(last)}{total}")
    if locked(step["dir"]):
        said.append("being trained by another --train")
    return "; ".join(said) or None


def listing(steps: Sequence[Dict]) -> str:
    """``--dry-run``'s output: per step a comment (number, name, log, :func:`progress`) and its command."""
    lines = []
    for i, s in enumerate(steps, 1):
        where = progress(s)
        lines += [f"# {i}/{len(steps)} {s['name']} (log: {s['log']})" + (f": {where}" if where else ""), s["command"]]
    return "\n".join(lines) or "# nothing to train"


def check_scripts(steps: Sequence[Dict]) -> None:
    """Refuse (naming the script) commands whose ``bash SCRIPT`` is not found from the current directory."""
    for s in steps:
        for script in re.findall(r"\bbash (\S+\.sh)", s["command"]):
            if not os.path.exists(script):
                raise FileNotFoundError(f"{s['name']}: {script} not found from {os.getcwd()}: run from the "
                                        f"repository root (the config's commands name the scripts from there)")


def train(steps: Sequence[Dict], dry_run: bool = False) -> str:
    """Run ``steps`` (:func:`planned`) one after another, each appending to its log.

    Returns:
        ``dry_run``: the steps as comment + command lines (nothing is run); else "".

    Raises:
        RuntimeError: a command failed (naming it and its log); the steps after it are not run.
    """
    check_scripts(steps)
    if dry_run:
        return listing(steps)
    for i, s in enumerate(steps, 1):
        os.makedirs(s["dir"], exist_ok=True)
        with open(os.path.join(s["dir"], "train.lock"), "w") as lock:
            if not take_lock(lock):  # held while it trains: a second --train (another lane) goes on with the next run
                logger.warning("%s: another --train is training %s: skipped", s["name"], s["dir"])
                continue
            logger.info("training %d/%d: %s (log: %s)", i, len(steps), s["name"], s["log"])
            with open(s["log"], "a", encoding="utf-8") as log:
                code = subprocess.run(["bash", "-c", s["command"]], stdout=log, stderr=subprocess.STDOUT).returncode
        if code:
            raise RuntimeError(f"{s['name']}: exit status {code}; see {s['log']} (the command: {s['command']})")
    return ""

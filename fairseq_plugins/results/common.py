"""What the results tables share: running fairseq-generate, its summary line, the output files.

Every table is a markdown file that starts with :func:`unix.provenance.provenance` (command,
commit, time) and lists the fairseq-generate commands behind its rows, with a JSON file of the
same rows beside it.
"""

import argparse
import json
import logging
import os
import re
import shlex
import subprocess
from typing import Dict, Iterable, List, Optional, Sequence

from unix.data.generate_output import open_text
from unix.provenance import ROOT

logger = logging.getLogger(__name__)
USER_DIR = os.path.join(ROOT, "fairseq_plugins")
SAMPLE_LINE = ("S-", "T-", "H-", "D-", "P-")


def task_parser(module, parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    """``parser`` (a new one by default) with the options of the task ``module`` (its
    ``add_arguments``); the module's docstring is the description."""
    if parser is None:
        parser = argparse.ArgumentParser(description=module.__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    return parser


def quote(cmd: Sequence[str]) -> str:
    """``cmd`` as one shell-quoted line."""
    return " ".join(shlex.quote(c) for c in cmd)


def generate_command(data: str, task: str, *args: str) -> List[str]:
    """``fairseq-generate DATA --user-dir fairseq_plugins --task TASK ARGS...``."""
    return ["fairseq-generate", data, "--user-dir", USER_DIR, "--task", task, *args]


def run_generate(cmd: Sequence[str], out_path: str, keep_stderr: bool = True) -> List[str]:
    """Run ``cmd`` with its stdout (and stderr, with ``keep_stderr``) into ``out_path``; returns ``cmd``."""
    logger.info("$ %s > %s", quote(cmd), out_path)
    with open(out_path, "w", encoding="utf-8") as f:
        subprocess.run(list(cmd), stdout=f, stderr=subprocess.STDOUT if keep_stderr else subprocess.DEVNULL,
                       check=True)
    return list(cmd)


def last_printed(out_path: str, pattern: str, skip_samples: bool = False) -> Optional[str]:
    """Group 1 of the last line of a fairseq-generate output (plain or ``.gz``) that matches ``pattern``
    (searched), or None; ``skip_samples``: not on the ``S-``/``T-``/``H-``/``D-``/``P-`` lines."""
    value = None
    with open_text(out_path) as f:
        for line in f:
            if skip_samples and line.startswith(SAMPLE_LINE):
                continue
            m = re.search(pattern, line)
            if m:
                value = m.group(1)
    return value


def printed_float(out_path: str, pattern: str, skip_samples: bool = False) -> Optional[float]:
    """:func:`last_printed` as a number."""
    value = last_printed(out_path, pattern, skip_samples)
    return None if value is None else float(value)


def bleu_cell(s: Optional[Dict]) -> str:
    """An MMT table cell: ``(a) tokenized BLEU / (b) sacreBLEU`` of a :mod:`score_mmt` result, ``-`` for none."""
    return f"{s['tokenized_bleu']['bleu']:.2f} / {s['sacrebleu']['bleu']:.2f}" if s else "-"


def missing_lines(missing: Iterable, title: str = "Not in the table yet:") -> List[str]:
    """``["", title, "", "- name: why", ...]`` for the entries that could not be scored (none: ``[]``)."""
    missing = list(missing)
    if not missing:
        return []
    return ["", title, ""] + [f"- {name}: {why}" for name, why in missing]


def write_markdown(path: str, lines: Sequence[str], end: str = "\n") -> None:
    """The table ``lines`` into ``path``, followed by ``end``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + end)


def write_json(path: str, obj, ensure_ascii: bool = True, newline: bool = False) -> None:
    """``obj`` as JSON (indent 1) into ``path``; ``newline`` ends the file with one."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=ensure_ascii)
        if newline:
            f.write("\n")


def replace_block(path: str, table: str, begin: str, end: str, check_only: bool = False) -> None:
    """Put ``table`` between the marker lines ``begin`` and ``end`` of the file ``path`` (the rest of
    the file unchanged); ``check_only``: only check that the markers are there.

    Raises:
        ValueError: the markers are missing (or out of order), naming the file.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if begin not in text or end not in text or text.index(begin) > text.index(end):
        raise ValueError(f"{path}: no '{begin}' ... '{end}' block to write the table into")
    if check_only:
        return
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + begin + "\n" + table + end + tail)


def beside(path: str, suffix: str) -> str:
    """``path`` with its extension replaced by ``suffix`` (``.json`` beside a ``.md``)."""
    return os.path.splitext(path)[0] + suffix

"""What the inference commands share: options, input files, output rows, and one-line errors.

A bad input (missing or corrupt photo, empty sentence or question) does not stop a command: it is
listed on stderr as ``file:line: what is wrong (fix: ...)``, the other inputs are written, and the
command exits with status 2. A problem with the whole run (a language the model lacks, files
that are not aligned, a bad model directory) is one line and status 2, with nothing written.
``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple

EXIT_BAD_INPUT = 2


class CommandError(Exception):
    """A problem with the whole run: reported as one line, exit status 2."""


def setup_logging(level: int = logging.WARNING) -> None:
    logging.basicConfig(level=level, format="%(levelname)s | %(name)s | %(message)s", stream=sys.stderr)


PROG = ["unix"]  # the running command's name, set by run_command


def prog() -> str:
    return PROG[0]


def fail(error: BaseException, debug: bool = False, name: Optional[str] = None) -> int:
    """Report ``error`` as one line on stderr (a traceback too with ``debug``); returns status 2."""
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    msg = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    print(f"{name or prog()}: error: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model directory (unix-export) or bundled model name "
                   "(default: the bundled model for the job: unix_small_ende_caption captions, unix_small_ende_mmt "
                   "translates)")
    p.add_argument("--format", choices=("tsv", "jsonl"), default="tsv", help="output format (default tsv)")
    p.add_argument("--output", "-o", default=None, help="output file (default: stdout)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--batch-size", type=int, default=16, help="inputs per forward pass")
    p.add_argument("--beam", type=int, default=None, help="beam size (default: the model's)")
    p.add_argument("--nbest", type=int, default=1, help="hypotheses per input to write")
    p.add_argument("--lenpen", type=float, default=None, help="length penalty (default: the model's)")
    p.add_argument("--max-len-b", type=int, default=None, help="longest output in tokens (default: the model's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def generation_options(args) -> Dict[str, Any]:
    return {"beam": args.beam, "lenpen": args.lenpen, "max_len_b": args.max_len_b}


def read_lines(path: str, what: str) -> List[str]:
    """Lines of a text file (``-`` = stdin), without their newline.

    Raises:
        CommandError: a missing or non-UTF-8 file.
    """
    try:
        if path == "-":
            return [line.rstrip("\r\n") for line in sys.stdin]
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\r\n") for line in f]
    except FileNotFoundError:
        raise CommandError(f"{path}: {what} not found")
    except UnicodeDecodeError as e:
        raise CommandError(f"{path}: {what} is not UTF-8 text ({e.reason} at byte {e.start})")


def image_paths(lines: Sequence[str], root: Optional[str]) -> List[Optional[str]]:
    """Image list lines -> paths (None for an empty line), relative to ``root`` when given."""
    out: List[Optional[str]] = []
    for line in lines:
        name = line.strip()
        out.append(None if not name else (name if root is None or os.path.isabs(name) else os.path.join(root, name)))
    return out


def check_aligned(n: int, m: int, first: str, second: str) -> None:
    if n != m:
        raise CommandError(f"{second}: {m} lines but {first} has {n}; the files must be aligned line by line "
                           "(fix: one line per input, an empty line where there is no image)")


def fix_for(error: BaseException) -> str:
    """The advice written after a bad input's message."""
    msg = str(error)
    if "not found" in msg:
        return "check the path (names in a list are relative to --image-root)"
    if "cannot read image" in msg or "not an image" in msg:
        return "re-encode the photo in a format PIL reads (JPEG, PNG ...) or drop that line"
    if "empty" in msg:
        return "fill or remove the line"
    if "no image" in msg:
        return "give the photo on that line of the image list"
    if "tokens; the model reads at most" in msg:
        return "split the sentence"
    return "fix or remove that input"


class BadInputs:
    """Collects bad inputs by index; ``names[i]`` says where input ``i`` came from."""

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        self.errors: List[Tuple[int, BaseException]] = []

    def __call__(self, index: int, error: BaseException) -> None:
        self.errors.append((index, error))

    def report(self, debug: bool = False) -> int:
        """List the bad inputs on stderr (sorted by input); returns the exit status."""
        for i, e in sorted(self.errors, key=lambda x: x[0]):
            if debug:
                traceback.print_exception(e, file=sys.stderr)
            msg = str(e).strip().splitlines()[0]
            print(f"{prog()}: {msg} (fix: {fix_for(e)})", file=sys.stderr)
        if self.errors:
            print(f"{prog()}: {len(self.errors)} of {len(self.names)} inputs skipped (listed above); "
                  "the others are written", file=sys.stderr)
            return EXIT_BAD_INPUT
        return 0


class Writer:
    """Writes one row per input (``nbest`` rows with ``--nbest``) as TSV or JSONL.

    TSV columns: the ``fields`` given, then ``[rank]`` (with nbest > 1), ``text``, ``score``.
    JSONL: the fields, ``text``, ``score`` and with nbest > 1 ``nbest`` (a list of ``{text, score}``).
    """

    def __init__(self, out: IO[str], fmt: str, nbest: int):
        self.out, self.fmt, self.nbest = out, fmt, nbest

    def write(self, fields: Dict[str, Any], result) -> None:
        hyps = result if isinstance(result, list) else [result]
        if self.fmt == "jsonl":
            row = dict(fields, text=hyps[0].text if hyps else "", score=round(hyps[0].score, 6) if hyps else None)
            if self.nbest > 1:
                row["nbest"] = [{"text": h.text, "score": round(h.score, 6)} for h in hyps]
            self.out.write(json.dumps(row, ensure_ascii=False) + "\n")
            return
        cols = ["" if v is None else str(v).replace("\t", " ") for v in fields.values()]
        for rank, h in enumerate(hyps, start=1):
            extra = [str(rank)] if self.nbest > 1 else []
            self.out.write("\t".join(cols + extra + [h.text, f"{h.score:.6f}"]) + "\n")


def open_output(path: Optional[str]) -> IO[str]:
    if not path:
        return sys.stdout
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    return open(path, "w", encoding="utf-8")


def write_results(args, rows, bad: "BadInputs") -> int:
    """Write ``(fields, result)`` rows (a ``None`` result: a bad input, skipped) to ``--output`` in
    ``--format``; then report the bad inputs. Returns the exit status."""
    out = open_output(args.output)
    try:
        writer = Writer(out, args.format, args.nbest)
        for fields, result in rows:
            if result is not None:
                writer.write(fields, result)
    finally:
        if out is not sys.stdout:
            out.close()
    return bad.report(args.debug)


def load_pipeline(args, use: str):
    """``--model``, or the bundled model for ``use`` (``caption``, ``translate``, ``answer``)."""
    from unix.pipeline import load

    return load(args.model, device=args.device, use=use)


def show_progress(args, n: int) -> bool:
    return not args.no_progress and n > args.batch_size


def run_command(body, args, name: str) -> int:
    """Run ``body(args) -> status`` as command ``name``, a run-level problem as one line and status 2."""
    from unix.data.images import ImageError
    from unix.data.inputs import InputError
    from unix.data.tokenizer import UnknownLanguageError
    from unix.model_dir import ModelDirError

    PROG[0] = name
    try:
        return body(args)
    except (CommandError, ModelDirError, UnknownLanguageError, InputError, ImageError, ValueError, RuntimeError) as e:
        return fail(e, args.debug)

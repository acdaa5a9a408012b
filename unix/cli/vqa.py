"""``unix-vqa --model M --images LIST --questions FILE``: answer a question about each photo.

Example::

    unix-vqa --model models/easy_vqa --images test_images.txt --image-root data/easy_vqa/images \\
        --questions test_questions.txt --answers model -o answers.tsv

``--images`` and ``--questions`` are aligned line by line. ``--answers FILE`` (one answer a line)
or ``--answers model`` (the model's own list) decodes closed-set: only those answers can come out.
Writes ``line<TAB>answer<TAB>score`` (TSV) or JSON lines. An empty question or a missing photo is
listed on stderr and skipped, the other lines are answered, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import sys

from unix.cli.common import (BadInputs, CommandError, add_common_args, check_aligned, generation_options,
                             image_paths, load_pipeline, read_lines, run_command, setup_logging,
                             show_progress, write_results)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="unix-vqa", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, help="image list, one photo a line")
    p.add_argument("--image-root", default=None, help="directory the names of --images are relative to")
    p.add_argument("--questions", required=True, help="questions, one a line, aligned with --images")
    p.add_argument("--answers", default=None, help="closed-set decoding: answer list file (one a line), or "
                   "'model' for the model's own list (default: free generation)")
    p.add_argument("--lang", default=None, help="answer language (default: the model's)")
    add_common_args(p)
    return p.parse_args(argv)


def run(args) -> int:
    questions = read_lines(args.questions, "question file")
    if not questions:
        raise CommandError(f"{args.questions}: no questions")
    lines = read_lines(args.images, "image list")
    check_aligned(len(questions), len(lines), args.questions, args.images)
    images = image_paths(lines, args.image_root)
    answers = None
    if args.answers == "model":
        answers = True
    elif args.answers:
        answers = [a.strip() for a in read_lines(args.answers, "answer list")]
        empty = [n for n, a in enumerate(answers, start=1) if not a]
        if empty:
            raise CommandError(f"{args.answers}:{empty[0]}: empty answer (fix: remove the line)")
    names = [f"{args.questions}:{n} / {args.images}:{n}" for n in range(1, len(questions) + 1)]
    m = load_pipeline(args, "answer")
    bad = BadInputs(names)
    results = m.answer(images, questions, answers=answers, lang=args.lang, batch_size=args.batch_size,
                       nbest=args.nbest, return_scores=True, names=names, on_error=bad,
                       progress=show_progress(args, len(questions)), **generation_options(args))

    def fields(n: int) -> dict:  # the line number; with --format jsonl the inputs too
        if args.format != "jsonl":
            return {"line": n}
        return {"line": n, "question": questions[n - 1], "image": images[n - 1]}

    return write_results(args, ((fields(n), r) for n, r in enumerate(results, start=1)), bad)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    return run_command(run, args, "unix-vqa")


if __name__ == "__main__":
    sys.exit(main())

"""``unix-translate --model M --src en --tgt de``: translate sentences, each with its photo or none.

Examples::

    echo "A dog runs on the beach ." | unix-translate --model models/unix_ende --src en --tgt de
    unix-translate --model models/unix_ende --src en --tgt de --input test.en \\
        --images test_images.txt --image-root ../shared/data/flickr8k/images -o test.hyp.tsv

Sentences come from ``--input`` (default: stdin), one a line; ``--images`` is aligned with them
line by line (an empty line = no photo). Writes ``line<TAB>translation<TAB>score`` (TSV) or JSON
lines. An empty sentence or a missing/unreadable photo is listed on stderr and skipped, the other
lines are translated, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import sys

from unix.cli.common import (BadInputs, CommandError, add_common_args, check_aligned, generation_options,
                             image_paths, load_pipeline, read_lines, run_command, setup_logging,
                             show_progress, write_results)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="unix-translate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default="en", help="source language (default en)")
    p.add_argument("--tgt", default="de", help="target language (default de)")
    p.add_argument("--input", "-i", default="-", help="sentences, one a line (default: stdin)")
    p.add_argument("--images", default=None, help="image list aligned with the sentences (empty line = no photo)")
    p.add_argument("--image-root", default=None, help="directory the names of --images are relative to")
    add_common_args(p)
    return p.parse_args(argv)


def run(args) -> int:
    where = "stdin" if args.input == "-" else args.input
    sentences = read_lines(args.input, "input")
    if not sentences:
        raise CommandError(f"{where}: no sentences")
    images = None
    if args.images:
        lines = read_lines(args.images, "image list")
        check_aligned(len(sentences), len(lines), where, args.images)
        images = image_paths(lines, args.image_root)
    names = [f"{where}:{n}" for n in range(1, len(sentences) + 1)]
    if images is not None:
        names = [f"{where}:{n}" if p is None else f"{where}:{n} / {args.images}:{n}" for n, p in
                 enumerate(images, start=1)]
    m = load_pipeline(args, "translate")
    bad = BadInputs(names)
    results = m.translate(sentences, images=images, src=args.src, tgt=args.tgt, batch_size=args.batch_size,
                          nbest=args.nbest, return_scores=True, names=names, on_error=bad,
                          progress=show_progress(args, len(sentences)), **generation_options(args))

    def fields(n: int) -> dict:  # the line number; with --format jsonl the inputs too
        if args.format != "jsonl":
            return {"line": n}
        return {"line": n, "source": sentences[n - 1], "image": images[n - 1] if images else None}

    return write_results(args, ((fields(n), r) for n, r in enumerate(results, start=1)), bad)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    return run_command(run, args, "unix-translate")


if __name__ == "__main__":
    sys.exit(main())

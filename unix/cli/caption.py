"""``unix-caption PHOTO... --model M --lang de``: caption photos with a trained model.

Examples::

    unix-caption photos/*.jpg --model models/unix_caption --lang de
    unix-caption --image-list test_images.txt --image-root ../shared/data/flickr8k/images \\
        --model models/unix_caption --format jsonl -o captions.jsonl

Writes ``photo<TAB>caption<TAB>score`` (``--format tsv``) or JSON lines. A missing or unreadable
photo is listed on stderr and skipped; the others are captioned; the exit status is then 2.
"""

from __future__ import annotations

import argparse
import sys

from unix.cli.common import (BadInputs, CommandError, add_common_args, generation_options, image_paths,
                             load_pipeline, read_lines, run_command, setup_logging, show_progress, write_results)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="unix-caption", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", nargs="*", help="photo files (any format PIL reads)")
    p.add_argument("--image-list", default=None, help="file with one photo name a line (instead of, or besides, PHOTO)")
    p.add_argument("--image-root", default=None, help="directory the names of --image-list are relative to")
    p.add_argument("--lang", default="en", help="caption language (default en)")
    add_common_args(p)
    return p.parse_args(argv)


def run(args) -> int:
    names = list(args.photos)
    paths = list(args.photos)
    if args.image_list:
        lines = read_lines(args.image_list, "image list")
        for n, (line, path) in enumerate(zip(lines, image_paths(lines, args.image_root)), start=1):
            if path is not None:  # empty lines of a plain photo list are skipped
                names.append(f"{args.image_list}:{n}")
                paths.append(path)
    if not paths:
        raise CommandError("no photos: give PHOTO arguments or --image-list FILE")
    m = load_pipeline(args, "caption")
    bad = BadInputs(names)
    results = m.caption(paths, lang=args.lang, batch_size=args.batch_size, nbest=args.nbest, return_scores=True,
                        names=names, on_error=bad, progress=show_progress(args, len(paths)), **generation_options(args))
    return write_results(args, (({"image": path}, result) for path, result in zip(paths, results)), bad)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    return run_command(run, args, "unix-caption")


if __name__ == "__main__":
    sys.exit(main())

"""A gallery of test photos with their generated captions in several languages beside a reference.

Writes ``<out>/index.html`` (thumbnails in ``<out>/thumbs/``) and ``<out>/contact_sheet.png``
(:func:`unix.gallery.write_caption_page`, :func:`unix.gallery.write_contact_sheet`).
Every ``--generated LANG=FILE`` is a ``fairseq-generate`` output over the *same* split, so that
sample id ``i`` is line ``i + 1`` of ``--images`` (caption other languages with
``--caption-lang``, e.g. ``--gen-subset test_en --caption-lang fr``).

Example::

    unix-gallery --images data-bin/captions/test_en.images.txt \\
        --image-root ../shared/data/flickr8k/images --references data-bin/captions/test_en.refs.txt \\
        --generated en=runs/cap/gen_test_en.txt de=runs/cap/gen_test_en.de.txt --out runs/cap/gallery
"""

import argparse
import logging
import os
import sys
from typing import Dict, List, Optional

from unix.data.captions import CaptionDataError, join_pieces, parse_generate_output
from unix.data.images import load_image, read_image_list
from unix.gallery import write_caption_page, write_contact_sheet
from unix.data.caption_outputs import read_references

logger = logging.getLogger("gallery")



def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, help="image list of the split (<split>.images.txt)")
    p.add_argument("--image-root", default=None, help="directory the image names are relative to")
    p.add_argument("--generated", nargs="+", required=True, metavar="LANG=FILE",
                   help="fairseq-generate outputs over that split, one per language")
    p.add_argument("--references", default=None, help="<split>.refs.txt aligned with --images (first one shown)")
    p.add_argument("--ref-lang", default="en", help="language of --references (a label)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--num", type=int, default=24, help="number of photos (the first N sample ids)")
    p.add_argument("--columns", type=int, default=4, help="photos per row of the contact sheet")
    p.add_argument("--thumb", type=int, default=224, help="thumbnail size in pixels")
    p.add_argument("--font", default=None, help="TrueType font for the contact sheet (default: DejaVu Sans)")
    return p.parse_args(argv)


def read_generated(specs: List[str], num_images: int) -> Dict[str, Dict[int, str]]:
    """``["en=gen.txt", ...]`` -> language -> sample id -> caption (ids checked against the list)."""
    out: Dict[str, Dict[int, str]] = {}
    for spec in specs:
        lang, sep, path = spec.partition("=")
        if not sep or not lang or not path:
            raise ValueError(f"--generated expects LANG=FILE, got {spec!r}")
        caps = {i: join_pieces(v.get("D", v.get("H", ""))) for i, v in parse_generate_output(path).items()
                if "D" in v or "H" in v}
        beyond = [i for i in caps if i >= num_images]
        if beyond:
            raise CaptionDataError(f"{path}: sample id {max(beyond)} but the image list has {num_images} lines: "
                                   "generate over the split of --images")
        out[lang] = caps
    return out


def first_references(path: Optional[str]) -> List[str]:
    if not path:
        return []
    return [refs[0] for refs in read_references(path)]


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    paths = read_image_list(args.images, args.image_root)
    generated = read_generated(args.generated, len(paths))
    langs = list(generated)
    refs = first_references(args.references)
    if refs and len(refs) != len(paths):
        raise CaptionDataError(f"{args.references}: {len(refs)} lines but {args.images} has {len(paths)}")
    ids = sorted(set.intersection(*(set(c) for c in generated.values())))[: args.num]
    if not ids:
        raise CaptionDataError("no sample id is captioned in every --generated file")
    os.makedirs(os.path.join(args.out, "thumbs"), exist_ok=True)
    rows = []
    for i in ids:
        if paths[i] is None:
            raise CaptionDataError(f"{args.images}:{i + 1}: empty line, no photo for sample {i}")
        im = load_image(paths[i], where=f"{args.images}:{i + 1}").resize((args.thumb, args.thumb))
        name = f"{i:05d}.jpg"
        im.save(os.path.join(args.out, "thumbs", name), quality=85)
        rows.append({"id": i, "name": os.path.basename(paths[i]), "thumb": name, "image": im,
                     "captions": {lang: generated[lang][i] for lang in langs},
                     "reference": refs[i] if refs else ""})
    page = write_caption_page(args.out, rows, langs, args.ref_lang)
    sheet = write_contact_sheet(args.out, rows, langs, args.ref_lang, args.columns, args.thumb, args.font)
    logger.info("%d photos, languages %s: %s, %s", len(rows), ", ".join(langs), page, sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())

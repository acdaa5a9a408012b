"""A self-contained HTML page of evaluation results (:mod:`unix.evaluation`): photos with their outputs.

Captioning results of several languages over the same photos become one table (photo, a caption
per language, the first reference of each); a translation result becomes a table of the
sentences that have a photo (photo, source, translation, reference). Thumbnails are written
beside the page (``thumbs/``), so the directory can be copied or served as it is.

``unix-gallery`` pages captions read from ``fairseq-generate`` outputs instead
(:func:`write_caption_page`, with a contact sheet: :func:`write_contact_sheet`).
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
import textwrap
from typing import Dict, List, Optional, Sequence

from unix.data.images import load_image

logger = logging.getLogger(__name__)

THUMB = 160
STYLE = ("body{font-family:sans-serif;margin:1em 2em} td{vertical-align:top;padding:4px 8px;max-width:320px} "
         "table{border-collapse:collapse;margin-bottom:2em} tr{border-bottom:1px solid #ddd} "
         ".ref{color:#666} .scores{background:#f4f4f4;padding:6px}")
# TrueType fonts with the accented letters of de/fr/cs (Pillow's built-in font lacks e.g. "ü").
FONTS = ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
         "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf", "/Library/Fonts/Arial.ttf",
         "C:/Windows/Fonts/arial.ttf")


def _thumb(out: str, path: str, cache: Dict[str, str]) -> str:
    """Write a thumbnail of ``path`` once; return its name relative to the page."""
    if path not in cache:
        name = hashlib.sha1(path.encode("utf-8")).hexdigest()[:12] + ".jpg"
        im = load_image(path)
        im.thumbnail((THUMB, THUMB))
        im.save(os.path.join(out, "thumbs", name), quality=85)
        cache[path] = "thumbs/" + name
    return cache[path]


def _scores(r) -> str:
    s = ", ".join(f"{html.escape(k)} <b>{v:.2f}</b>" for k, v in r.scores.items())
    return f"<p class=\"scores\">{html.escape(r.task)} {html.escape(r.lang)} ({len(r.rows)} inputs): {s}</p>"


def write_gallery(out: str, results: Sequence, title: str = "unix", num: int = 24) -> str:
    """Write ``<out>/index.html`` for ``results`` (:class:`unix.evaluation.Result`); return its path.

    Args:
        out: output directory (created).
        results: captioning results (one per language, over the same photos) and translation results.
        title: page title.
        num: rows shown per table.
    """
    e = html.escape
    os.makedirs(os.path.join(out, "thumbs"), exist_ok=True)
    thumbs: Dict[str, str] = {}
    parts: List[str] = [f"<h1>{e(title)}</h1>"]
    captions = [r for r in results if r.task == "caption"]
    if captions:
        by_photo: Dict[str, Dict[str, tuple]] = {}
        for r in captions:
            for row in r.rows:
                by_photo.setdefault(row.photo, {})[r.lang] = (row.output, row.refs[0] if row.refs else "")
        langs = [r.lang for r in captions]
        parts.append("<h2>Captions</h2>" + "".join(_scores(r) for r in captions))
        head = "".join(f"<th>{e(lang)}</th>" for lang in langs)
        rows = []
        for photo, outs in list(by_photo.items())[:num]:
            cells = "".join(
                f"<td lang=\"{e(lang)}\">{e(outs[lang][0])}<br><span class=\"ref\">ref: {e(outs[lang][1])}</span></td>"
                if lang in outs else "<td></td>" for lang in langs)
            rows.append(f"<tr><td><img src=\"{e(_thumb(out, photo, thumbs))}\" width=\"{THUMB}\"><br>"
                        f"<small>{e(os.path.basename(photo))}</small></td>{cells}</tr>")
        parts.append(f"<table><tr><th>photo</th>{head}</tr>\n" + "\n".join(rows) + "</table>")
    for r in (r for r in results if r.task == "translate"):
        parts.append(f"<h2>Translation {e(r.lang)}</h2>" + _scores(r))
        rows = []
        for row in [x for x in r.rows if x.photo][:num]:
            rows.append(f"<tr><td><img src=\"{e(_thumb(out, row.photo, thumbs))}\" width=\"{THUMB}\"></td>"
                        f"<td>{e(row.source)}</td><td>{e(row.output)}</td>"
                        f"<td class=\"ref\">{e(row.refs[0] if row.refs else '')}</td></tr>")
        parts.append("<table><tr><th>photo</th><th>source</th><th>translation</th><th>reference</th></tr>\n"
                     + "\n".join(rows) + "</table>")
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    path = os.path.join(out, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path


def write_caption_page(out: str, rows: List[Dict], langs: List[str], ref_lang: str) -> str:
    """Write ``<out>/index.html``: a photo, its caption per language and a reference per row; return its path.

    Args:
        out: output directory; the thumbnails are ``thumbs/<row["thumb"]>`` in it, written already.
        rows: one dict per photo: ``name``, ``thumb``, ``captions`` (language -> caption), ``reference``.
        langs: the caption columns, in order.
        ref_lang: the language of the references (a label).
    """
    e = html.escape
    head = "".join(f"<th>{e(lang)}</th>" for lang in langs) + f"<th>reference ({e(ref_lang)})</th>"
    body = []
    for r in rows:
        cells = "".join(f"<td lang=\"{e(lang)}\">{e(r['captions'].get(lang, ''))}</td>" for lang in langs)
        body.append(f"<tr><td><img src=\"thumbs/{e(r['thumb'])}\" alt=\"{e(r['name'])}\" width=\"160\"><br>"
                    f"<small>{e(r['name'])}</small></td>{cells}<td>{e(r['reference'])}</td></tr>")
    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>unix captions</title>"
            "<style>body{font-family:sans-serif} td{vertical-align:top;padding:4px;max-width:260px} "
            "table{border-collapse:collapse} tr{border-bottom:1px solid #ccc}</style></head><body>\n"
            f"<h1>Generated captions ({len(rows)} photos)</h1>\n<table><tr><th>photo</th>{head}</tr>\n"
            + "\n".join(body) + "\n</table></body></html>\n")
    path = os.path.join(out, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path


def load_font(path: Optional[str] = None, size: int = 12):
    """The first TrueType font found (``path`` first); Pillow's built-in font as a last resort."""
    from PIL import ImageFont

    for candidate in ([path] if path else []) + list(FONTS):
        try:
            return ImageFont.truetype(candidate, size)
        except OSError:
            if candidate == path:
                raise FileNotFoundError(f"--font: cannot load {path}")
    logger.warning("no TrueType font found: accented letters may not render on the contact sheet (use --font)")
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def write_contact_sheet(out: str, rows: List[Dict], langs: List[str], ref_lang: str, columns: int,
                        thumb: int, font_path: Optional[str] = None) -> str:
    """Write ``<out>/contact_sheet.png``: ``rows`` (with their ``image``, ``thumb`` x ``thumb`` pixels) on a
    grid of ``columns``, each photo above its captions; return its path."""
    from PIL import Image, ImageDraw

    font = load_font(font_path)
    width = max(12, thumb // 7)
    texts = []
    for r in rows:
        lines = []
        for lang in langs + ["ref"]:
            text = r["reference"] if lang == "ref" else r["captions"].get(lang, "")
            label = f"ref ({ref_lang})" if lang == "ref" else lang
            lines += textwrap.wrap(f"{label}: {text}", width) or [f"{label}:"]
        texts.append(lines)
    line_h = 15
    cell_h = thumb + 8 + line_h * max(len(t) for t in texts)
    cols = max(1, min(columns, len(rows)))
    n_rows = (len(rows) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (thumb + 10) + 10, n_rows * (cell_h + 10) + 10), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (r, lines) in enumerate(zip(rows, texts)):
        x, y = 10 + (k % cols) * (thumb + 10), 10 + (k // cols) * (cell_h + 10)
        sheet.paste(r["image"], (x, y))
        for j, line in enumerate(lines):
            draw.text((x, y + thumb + 4 + j * line_h), line, fill=(0, 0, 0), font=font)
    path = os.path.join(out, "contact_sheet.png")
    sheet.save(path)
    return path

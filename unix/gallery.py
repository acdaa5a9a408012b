"""A self-contained HTML page of evaluation results (:mod:`unix.evaluation`): photos with their outputs.

Captioning results of several languages over the same photos become one table (photo, a caption
per language, the first reference of each); a translation result becomes a table of the
sentences that have a photo (photo, source, translation, reference). Thumbnails are written
beside the page (``thumbs/``), so the directory can be copied or served as it is.
"""

from __future__ import annotations

import hashlib
import html
import os
from typing import Dict, List, Sequence

from unix.data.images import load_image

THUMB = 160
STYLE = ("body{font-family:sans-serif;margin:1em 2em} td{vertical-align:top;padding:4px 8px;max-width:320px} "
         "table{border-collapse:collapse;margin-bottom:2em} tr{border-bottom:1px solid #ddd} "
         ".ref{color:#666} .scores{background:#f4f4f4;padding:6px}")


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

"""A tiny generated stand-in for ../shared/data (Flickr8k + Multi30K) for the captioning tests.

16 photos (4 colours x 4 shapes) named like Flickr8k files (``2003_ab12.jpg``), five English
Flickr8k captions each, and Multi30K Task 2 (en + de) / Task 1 (de, fr, cs) files whose image
names (``2003.jpg``) map to them. Multi30K's splits deliberately disagree with Flickr8k's (a
Flickr8k test photo sits in Multi30K's train split), one Multi30K image has no Flickr8k photo,
and the Multi30K English captions repeat Flickr8k's with other spacing (near-duplicates).
"""

from pathlib import Path
from typing import Dict, List

COLORS = {"red": ("rot", "rouge", "červený", (220, 30, 30)), "green": ("grün", "vert", "zelený", (30, 180, 30)),
          "blue": ("blau", "bleu", "modrý", (30, 30, 220)), "yellow": ("gelb", "jaune", "žlutý", (230, 200, 20))}
SHAPES = {"square": ("Quadrat", "carré", "čtverec"), "circle": ("Kreis", "cercle", "kruh"),
          "triangle": ("Dreieck", "triangle", "trojúhelník"), "bar": ("Balken", "barre", "pruh")}
EN = ["A {c} {s} .", "A {s} that is {c} .", "The {c} {s} on a white background .", "A picture of a {c} {s} .",
      "One {c} {s} ."]
DE = ["Ein {c} {s}.", "Ein {s}, das {c} ist.", "Das {c} {s} auf weißem Grund.", "Ein Bild: {c} {s}.",
      "Nur ein {c} {s}."]


def photos() -> List[Dict]:
    out = []
    for i, (c, s) in enumerate((c, s) for c in COLORS for s in SHAPES):
        out.append({"num": str(2000 + i), "file": f"{2000 + i}_ab{i:02d}.jpg", "color": c, "shape": s})
    return out


def draw(path: Path, color, shape: str, size: int = 48) -> None:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(im)
    box = (8, 8, size - 8, size - 8)
    if shape == "square":
        d.rectangle(box, fill=color)
    elif shape == "circle":
        d.ellipse(box, fill=color)
    elif shape == "triangle":
        d.polygon([(size // 2, 6), (6, size - 6), (size - 6, size - 6)], fill=color)
    else:
        d.rectangle((4, size // 2 - 5, size - 4, size // 2 + 5), fill=color)
    im.save(path, "JPEG", quality=90)


def captions(p: Dict, lang: str) -> List[str]:
    c, s = p["color"], p["shape"]
    if lang == "en":
        return [t.format(c=c, s=s) for t in EN]
    if lang == "de":
        return [t.format(c=COLORS[c][0], s=SHAPES[s][0]) for t in DE]
    k = {"fr": 1, "cs": 2}[lang]
    return [f"{SHAPES[s][k]} {COLORS[c][k]}"]


def _write(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")


def build_raw_data(root: Path) -> Path:
    """Write ``root/flickr8k`` and ``root/multi30k`` as in ../shared/data; return ``root``."""
    ps = photos()
    f8k, m30k = root / "flickr8k", root / "multi30k"
    (f8k / "images").mkdir(parents=True, exist_ok=True)
    for p in ps:
        draw(f8k / "images" / p["file"], COLORS[p["color"]][3], p["shape"])
    _write(f8k / "captions.txt", [f"{p['file']}#{k}\t{c}" for p in ps for k, c in enumerate(captions(p, "en"))])
    _write(f8k / "train_images.txt", [p["file"] for p in ps[:10]])
    _write(f8k / "dev_images.txt", [p["file"] for p in ps[10:13]])
    _write(f8k / "test_images.txt", [p["file"] for p in ps[13:]])
    # Multi30K: photos 2..15 (0 and 1 are Flickr8k-only), split differently; "9999.jpg" is not in Flickr8k.
    m_splits = {"train": ps[2:9] + ps[14:], "val": ps[9:12], "test": ps[12:14]}
    task2 = {"train": "train", "val": "val", "test": "test_2016"}
    task1 = {"train": "train", "val": "val", "test": "test_2016_flickr"}
    extra = {"en": "A purple star .", "de": "Ein lila Stern.", "fr": "étoile violette", "cs": "fialová hvězda"}
    task1_caption = {"en": lambda p: captions(p, "en")[0],
                     "de": lambda p: f"Hier ist ein {COLORS[p['color']][0]} {SHAPES[p['shape']][0]}.",
                     "fr": lambda p: captions(p, "fr")[0] + ".", "cs": lambda p: captions(p, "cs")[0] + "."}
    for key, members in m_splits.items():
        names = [f"{p['num']}.jpg" for p in members] + (["9999.jpg"] if key == "train" else [])
        unmapped = (lambda lang: [extra[lang]]) if key == "train" else (lambda lang: [])
        _write(m30k / "captions" / f"{task2[key]}_images.txt", names)
        for lang in ("en", "de"):
            for k in range(5):
                lines = [captions(p, lang)[k].replace(" .", ".") for p in members]
                _write(m30k / "captions" / f"{task2[key]}.{k + 1}.{lang}", lines + unmapped(lang))
        _write(m30k / "image_splits" / f"{task1[key]}.txt", names)
        for lang in ("en", "de", "fr", "cs"):
            _write(m30k / f"{task1[key]}.{lang}", [task1_caption[lang](p) for p in members] + unmapped(lang))
    return root


def train_spm(root: Path, raw: Path, vocab_size: int = 110) -> Path:
    """Train the 'project vocabulary' on all the tiny text (tags en/de/fr/cs, <mask>, <sep>)."""
    from unix.data.tokenizer import train_sentencepiece

    texts = [str(raw / "flickr8k" / "captions.txt")] + [str(p) for p in sorted((raw / "multi30k").rglob("*"))
                                                         if p.suffix in (".en", ".de", ".fr", ".cs")]
    root.mkdir(parents=True, exist_ok=True)
    plain = root / "spm_input.txt"
    with open(plain, "w", encoding="utf-8") as f:
        for t in texts:
            for line in open(t, encoding="utf-8"):
                f.write(line.split("\t")[-1])
    return Path(train_sentencepiece([str(plain)], str(root / "spm"), vocab_size=vocab_size, num_threads=1))


def direct_cider(hyps, refs) -> float:
    """pycocoevalcap's corpus CIDEr-D after its PTB tokenizer, called directly (the reference result)."""
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r} for r in rs] for i, rs in enumerate(refs)})
    res = tok.tokenize({i: [{"caption": h}] for i, h in enumerate(hyps)})
    return Cider().compute_score(gts, res)[0]


def direct_meteor(hyps, refs) -> float:
    """pycocoevalcap's corpus METEOR after its PTB tokenizer, called directly (the reference result)."""
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r} for r in rs] for i, rs in enumerate(refs)})
    res = tok.tokenize({i: [{"caption": h}] for i, h in enumerate(hyps)})
    return Meteor().compute_score(gts, res)[0]


def direct_bleu4(hyps, refs) -> float:
    """pycocoevalcap's corpus BLEU-4 after its PTB tokenizer, called directly (the reference result)."""
    import contextlib
    import io

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r} for r in rs] for i, rs in enumerate(refs)})
    res = tok.tokenize({i: [{"caption": h}] for i, h in enumerate(hyps)})
    with contextlib.redirect_stdout(io.StringIO()):
        return Bleu(4).compute_score(gts, res)[0][3]


def prepare_tiny(root: Path, *extra_args: str) -> Dict[str, Path]:
    """Raw data + vocabulary + ``unix-prepare-captions`` under ``root``; returns the paths."""
    from unix.cli import prepare_captions

    raw = build_raw_data(root / "raw")
    spm = train_spm(root / "spm", raw)
    out = root / "bin"
    prepare_captions.main(["--data", str(raw), "--spm-model", str(spm), "--out", str(out), *extra_args])
    return {"raw": raw, "spm": spm, "bin": out, "images": raw / "flickr8k" / "images"}

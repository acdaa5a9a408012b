"""unix-score-captions and unix-gallery on fairseq-generate outputs written here."""

import json
import shutil

import pytest

from unix.cli import gallery, score_captions
from unix.data.captions import CaptionDataError
from unix.data.images import ImageError
from unix.metrics.caption import MissingReferenceError

java = pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap needs java")

REFS_EN = [["A dog runs on the grass .", "a brown dog is running", "The dog plays outside ."],
           ["Two men sit on a bench .", "two people are sitting", "men on a bench in a park"],
           ["A red car in the street .", "a car is parked", "the red car waits"]]
HYPS_EN = ["a dog runs on the grass", "two men are sitting on a bench", "a <b>red</b> car & a bus"]


def write_generate_output(path, hyps, refs, tag="__en__", pieces=False):
    """What fairseq-generate prints (ids in a shuffled order, as batches come)."""
    out = []
    for i in sorted(range(len(hyps)), key=lambda k: (k * 7) % len(hyps)):
        hyp = " ".join("\u2581" + w for w in hyps[i].split()) if pieces else hyps[i]
        out += [f"S-{i}\t{tag}", f"T-{i}\t" + " <sep> ".join(refs[i]), f"H-{i}\t-0.3\t{hyp}", f"D-{i}\t-0.3\t{hyp}",
                f"P-{i}\t-0.1 -0.2"]
    path.write_text("\n".join(out + ["Generate test_en with beam=5: CIDEr-D = 0.00"]) + "\n", encoding="utf-8")
    return path


def write_refs(path, refs):
    path.write_text("".join(" <sep> ".join(r) + "\n" for r in refs), encoding="utf-8")
    return path


@java
def test_scores_equal_pycocoevalcap_and_non_english_gets_bleu_and_cider_only(tmp_path, capsys):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    gen = write_generate_output(tmp_path / "gen.txt", HYPS_EN, REFS_EN, pieces=True)
    refs = write_refs(tmp_path / "test_en.refs.txt", REFS_EN)
    score_captions.main(["--generate-output", str(gen), "--references", str(refs), "--json", str(tmp_path / "s.json")])
    table = capsys.readouterr().out
    scores = json.loads((tmp_path / "s.json").read_text())
    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r} for r in rs] for i, rs in enumerate(REFS_EN)})
    res = tok.tokenize({i: [{"caption": h}] for i, h in enumerate(HYPS_EN)})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert [scores[f"BLEU-{k}"] for k in range(1, 5)] == pytest.approx(bleu)
    assert scores["CIDEr"] == pytest.approx(Cider().compute_score(gts, res)[0]) and scores["lang"] == "en"
    assert 0 < scores["METEOR"] < 1 and 0 < scores["ROUGE-L"] < 1
    assert f"CIDEr    {100 * scores['CIDEr']:6.2f}" in table and "SPICE    skipped" in table
    assert "3 images, 3.00 references per image" in table

    de_refs = [["Ein Hund rennt.", "ein brauner Hund"], ["Zwei Männer sitzen.", "zwei Personen"]]
    gen_de = write_generate_output(tmp_path / "gen_de.txt", ["ein hund rennt", "zwei männer"], de_refs, "__de__")
    score_captions.main(["--generate-output", str(gen_de)])  # references from the T- lines
    table = capsys.readouterr().out
    assert "lang de" in table and "BLEU-4" in table and "CIDEr" in table
    assert "METEOR   skipped: pycocoevalcap runs METEOR 1.5 with English resources only" in table
    assert "ROUGE-L  skipped" in table


def test_missing_references_and_hypotheses_are_errors(tmp_path):
    gen = write_generate_output(tmp_path / "gen.txt", HYPS_EN, REFS_EN)
    bad = tmp_path / "bad.refs.txt"
    bad.write_text("a dog\n\nthe car\n")
    with pytest.raises(MissingReferenceError, match=r"bad.refs.txt:2: no reference for sample 1"):
        score_captions.main(["--generate-output", str(gen), "--references", str(bad)])
    more = write_refs(tmp_path / "more.refs.txt", REFS_EN + [["a cat"]])
    with pytest.raises(CaptionDataError, match=r"more.refs.txt:4: no hypothesis for sample 3"):
        score_captions.main(["--generate-output", str(gen), "--references", str(more)])
    fewer = write_refs(tmp_path / "fewer.refs.txt", REFS_EN[:2])
    with pytest.raises(CaptionDataError, match=r"sample id 2 has no line in .*fewer.refs.txt"):
        score_captions.main(["--generate-output", str(gen), "--references", str(fewer)])
    with pytest.raises(CaptionDataError, match="pass --lang"):
        score_captions.main(["--generate-output", str(write_generate_output(tmp_path / "g2.txt", HYPS_EN, REFS_EN,
                                                                               tag="a dog"))])


def test_gallery_writes_html_and_contact_sheet(tmp_path):
    from PIL import Image

    (tmp_path / "img").mkdir()
    names = []
    for k, (mode, color) in enumerate((("RGB", (200, 0, 0)), ("L", 100), ("CMYK", (0, 100, 200, 0)))):
        names.append(f"{k}_x.jpg")
        Image.new(mode, (50, 40), color).save(tmp_path / "img" / names[-1], "JPEG")
    images = tmp_path / "test_en.images.txt"
    images.write_text("".join(n + "\n" for n in names))
    refs = write_refs(tmp_path / "test_en.refs.txt", REFS_EN)
    en = write_generate_output(tmp_path / "en.txt", HYPS_EN, REFS_EN)
    de = write_generate_output(tmp_path / "de.txt", ["ein hund", "zwei männer", "ein rotes auto"], REFS_EN, "__de__")
    out = tmp_path / "gallery"
    gallery.main(["--images", str(images), "--image-root", str(tmp_path / "img"), "--generated", f"en={en}",
                  f"de={de}", "--references", str(refs), "--out", str(out), "--thumb", "64", "--columns", "2"])
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "a &lt;b&gt;red&lt;/b&gt; car &amp; a bus" in page and "<b>red" not in page
    assert "zwei männer" in page and "A dog runs on the grass ." in page and page.count("<img ") == 3
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.width == 2 * (64 + 10) + 10 and sheet.height > 2 * 64
    assert sorted(p.name for p in (out / "thumbs").iterdir()) == ["00000.jpg", "00001.jpg", "00002.jpg"]

    images.write_text(f"{names[0]}\nmissing.jpg\n{names[2]}\n")
    with pytest.raises(ImageError, match=r"test_en.images.txt:2: image not found"):
        gallery.main(["--images", str(images), "--image-root", str(tmp_path / "img"), "--generated", f"en={en}",
                      "--out", str(out)])
    images.write_text(f"{names[0]}\n{names[1]}\n")
    with pytest.raises(CaptionDataError, match=r"sample id 2 but the image list has 2 lines"):
        gallery.main(["--images", str(images), "--image-root", str(tmp_path / "img"), "--generated", f"en={en}",
                      "--out", str(out)])


@java
def test_bootstrap_intervals_thresholds_and_paired_difference(tmp_path, capsys):
    gen, other, refs = tmp_path / "gen.txt", tmp_path / "other.txt", tmp_path / "refs.txt"
    write_generate_output(gen, HYPS_EN, REFS_EN)
    write_generate_output(other, HYPS_EN, REFS_EN)
    write_refs(refs, REFS_EN)
    score_captions.main(["--generate-output", str(gen), "--references", str(refs), "--bootstrap", "40",
                         "--bootstrap-threshold", "BLEU-4=0", "CIDEr=1000", "--json", str(tmp_path / "s.json")])
    out = capsys.readouterr().out
    boot = json.loads((tmp_path / "s.json").read_text())["bootstrap"]
    assert sorted(boot["metrics"]) == ["BLEU-4", "CIDEr", "METEOR"] and boot["resamples"] == 40
    for name, m in boot["metrics"].items():
        assert m["low"] <= m["high"] and m["text"] in out
    assert boot["metrics"]["CIDEr"]["at_or_below"] == {"1000.0": 1.0}  # no resample reaches CIDEr-D 1000
    assert "(40 resamples of the 3 images, seed 0;" in out

    score_captions.main(["--generate-output", str(gen), "--references", str(refs), "--bootstrap", "40",
                         "--bootstrap-baseline", str(other), "--bootstrap-threshold", "BLEU-4=0", "CIDEr=1000",
                         "--json", str(tmp_path / "s2.json")])
    paired = json.loads((tmp_path / "s2.json").read_text())["bootstrap"]
    for m in paired["paired"].values():  # the same captions: no difference on any resample
        assert m["low"] == m["high"] == 0.0 and m["at_or_below"] == {"0.0": 1.0}
    # with a baseline the output's own intervals and thresholds are still reported, on the same draws
    assert paired["metrics"] == boot["metrics"]
    assert "METEOR minus that of" in capsys.readouterr().out
    with pytest.raises(ValueError, match="expected METRIC=VALUE"):
        score_captions.main(["--generate-output", str(gen), "--bootstrap", "5", "--bootstrap-threshold", "BLEU4=20"])
    write_generate_output(other, HYPS_EN[:2], REFS_EN[:2])
    with pytest.raises(CaptionDataError, match="no caption for sample id 2"):
        score_captions.main(["--generate-output", str(gen), "--references", str(refs), "--bootstrap", "5",
                             "--bootstrap-baseline", str(other)])

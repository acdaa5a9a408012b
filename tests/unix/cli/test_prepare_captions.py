"""unix-prepare-captions on a generated stand-in of ../shared/data, its errors, and on the real data."""

import json
import shutil
from pathlib import Path

import pytest

from unix.cli import prepare_captions
from tests.caption_data import build_raw_data, captions, photos, train_spm
from tests.conftest import SHARED_DATA, requires_shared_data
from unix.data.captions import CaptionDataError, read_flickr8k_captions
from unix.data.images import ImageError
from unix.data.tokenizer import UnknownLanguageError
from unix.metrics.caption import MissingReferenceError
from unix.metrics.references import split_references


def lines(path: Path):
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepare_raw")
    return {"raw": build_raw_data(root / "raw"), "spm": train_spm(root / "spm", root / "raw")}


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("prepared")
    data = root / "raw"
    shutil.copytree(raw["raw"], data)
    images = data / "flickr8k" / "images"
    ps = photos()
    Image.open(images / ps[0]["file"]).convert("L").save(images / ps[0]["file"], "JPEG")  # grayscale
    Image.open(images / ps[1]["file"]).convert("CMYK").save(images / ps[1]["file"], "JPEG")  # CMYK
    prepare_captions.main(["--data", str(data), "--spm-model", str(raw["spm"]), "--out", str(root / "bin"),
                           "--verify-images"])
    return root / "bin"


def test_captions_go_to_the_flickr8k_split_of_their_photo(prepared):
    ps = {p["file"]: p for p in photos()}
    train = set(lines(prepared / "train.images.txt"))
    for split in ("valid", "test"):
        for lang in ("en", "de", "fr", "cs"):
            assert not train & set(lines(prepared / f"{split}_{lang}.images.txt")), f"{split}_{lang} leaks"
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["splits"]["train"] == {"en": 50, "de": 48, "fr": 8, "cs": 8}
    assert manifest["sources"]["multi30k_lines_without_flickr8k_photo"] == 2  # 9999.jpg, Task 1 and Task 2
    # photos 14 and 15 are in Multi30K's *train* split but Flickr8k's test split: their German is test data
    test_de = lines(prepared / "test_de.images.txt")
    assert [ps[f]["num"] for f in test_de] == ["2013", "2014", "2015"]
    for photo, refs in zip(test_de, lines(prepared / "test_de.refs.txt")):
        refs = split_references(refs)
        assert len(refs) == 6 and refs[:5] == captions(ps[photo], "de")  # Task 2 (5) + Task 1 translation


def test_english_test_references_are_exactly_flickr8k_captions(prepared, raw):
    f8k = read_flickr8k_captions(str(raw["raw"] / "flickr8k" / "captions.txt"))
    test_en = lines(prepared / "test_en.images.txt")
    assert test_en == lines(raw["raw"] / "flickr8k" / "test_images.txt")
    for photo, refs in zip(test_en, lines(prepared / "test_en.refs.txt")):
        assert split_references(refs) == f8k[photo]  # Multi30K's re-spaced copies are not added
    assert lines(prepared / "test_fr.refs.txt") == ["cercle jaune.", "triangle jaune.", "barre jaune."]


def _broken(raw, tmp_path, edit):
    data = tmp_path / "raw"
    shutil.copytree(raw["raw"], data)
    edit(data)
    return ["--data", str(data), "--spm-model", str(raw["spm"]), "--out", str(tmp_path / "bin")]


def test_bad_input_is_reported_with_file_and_line(raw, tmp_path):
    ps = photos()
    cases = [
        (lambda d: (d / "flickr8k" / "images" / ps[14]["file"]).unlink(),
         ImageError, r"test_images.txt:2: photo not found"),
        (lambda d: (d / "flickr8k" / "captions.txt").write_text(
            "".join(f"{line}\n" for line in lines(d / "flickr8k" / "captions.txt") if ps[10]["file"] not in line)),
         MissingReferenceError, r"dev_images.txt:1: no caption for " + ps[10]["file"]),
        (lambda d: (d / "flickr8k" / "captions.txt").write_text("a.jpg#0\tfine\nno tab on this line\n"),
         CaptionDataError, r"captions.txt:2: expected"),
        (lambda d: (d / "multi30k" / "val.fr").write_text("une ligne\n"),
         CaptionDataError, r"val.fr: 1 lines but .*val.txt names 3 images"),
        (lambda d: (d / "multi30k" / "captions" / "val.2.de").write_text("a\nb <sep> c\nd\n"),
         CaptionDataError, r"val.2.de:2: caption contains the reserved symbol <sep>"),
        (lambda d: (d / "flickr8k" / "dev_images.txt").write_text(f"{ps[10]['file']}\n{ps[0]['file']}\n"),
         CaptionDataError, r"dev_images.txt:2: photo .* is also in .*train_images.txt:1"),
    ]
    for k, (edit, error, message) in enumerate(cases):
        with pytest.raises(error, match=message):
            prepare_captions.main(_broken(raw, tmp_path / str(k), edit))
    args = _broken(raw, tmp_path / "corrupt", lambda d: (d / "flickr8k" / "images" / ps[2]["file"]).write_bytes(b"x"))
    prepare_captions.collect(args[1], ["en"])  # existence is enough without --verify-images
    with pytest.raises(ImageError, match=r"train_images.txt:3: cannot read image"):
        prepare_captions.main(args + ["--verify-images"])
    with pytest.raises(UnknownLanguageError, match=r"unknown language 'xx'.*sentencepiece model"):
        prepare_captions.main(_broken(raw, tmp_path / "lang", lambda d: None) + ["--langs", "en", "xx"])


@requires_shared_data("flickr8k", "captions.txt")
@requires_shared_data("multi30k", "captions")
def test_real_flickr8k_and_multi30k_slice(tmp_path):
    from unix.data.tokenizer import train_sentencepiece

    m30k = SHARED_DATA / "multi30k"
    sample = tmp_path / "spm_input.txt"
    with open(sample, "w", encoding="utf-8") as f:
        for lang in ("en", "de", "fr", "cs"):
            f.writelines(x + "\n" for x in lines(m30k / f"train.{lang}")[:3000])
    spm = train_sentencepiece([str(sample)], str(tmp_path / "spm"), vocab_size=2000, num_threads=1)
    out = tmp_path / "bin"
    prepare_captions.main(["--data", str(SHARED_DATA), "--spm-model", spm, "--out", str(out), "--max-images", "40"])
    f8k = read_flickr8k_captions(str(SHARED_DATA / "flickr8k" / "captions.txt"))
    test_en = lines(out / "test_en.images.txt")
    assert test_en == lines(SHARED_DATA / "flickr8k" / "test_images.txt")[:40]
    assert [split_references(r) for r in lines(out / "test_en.refs.txt")] == [f8k[p] for p in test_en]
    train = set(lines(out / "train.images.txt"))
    assert len(train) == 40 and not train & set(test_en) and not train & set(lines(out / "valid_en.images.txt"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"]["multi30k_lines_without_flickr8k_photo"] > 20000  # most Flickr30k photos
    de = manifest["splits"]["test_de"]
    assert 20 <= de["photos"] <= 40 and de["refs_per_photo"] >= 5  # Task 2 (5) + Task 1 (1), deduplicated
    assert manifest["splits"]["test_cs"]["refs_per_photo"] == 1.0


def test_hold_out_multi30k_eval_photos_leaves_train_only(tmp_path):
    from unix.cli import prepare_captions

    (tmp_path / "multi30k" / "image_splits").mkdir(parents=True)
    (tmp_path / "flickr8k" / "images").mkdir(parents=True)
    for n in ("11", "22", "33", "44"):
        (tmp_path / "flickr8k" / "images" / f"{n}_x.jpg").write_bytes(b"")
    (tmp_path / "multi30k" / "image_splits" / "val.txt").write_text("22.jpg\n99.jpg\n")  # 99: not in Flickr8k
    (tmp_path / "multi30k" / "image_splits" / "test_2016_flickr.txt").write_text("44.jpg\n")
    photos = prepare_captions.multi30k_eval_photos(str(tmp_path))
    assert photos == ["22_x.jpg", "44_x.jpg"]
    splits = {"train": ["11_x.jpg", "22_x.jpg", "33_x.jpg"], "valid": ["44_x.jpg"], "test": []}
    assert prepare_captions.hold_out(splits, photos) == 1
    assert splits == {"train": ["11_x.jpg", "33_x.jpg"], "valid": ["44_x.jpg"], "test": []}
    (tmp_path / "multi30k" / "image_splits" / "val.txt").unlink()
    with pytest.raises(FileNotFoundError, match="val.txt"):
        prepare_captions.multi30k_eval_photos(str(tmp_path))

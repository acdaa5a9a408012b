"""unix-prepare-weak-captions on the generated stand-in of ../shared/data (tests/caption_data.py)."""

import json
import shutil

import pytest

from unix.cli import prepare_weak_captions
from tests.caption_data import build_raw_data, captions, photos, train_spm
from unix.data.captions import CaptionDataError
from unix.data.relevance import chrf_relevance, read_relevance


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("weak_raw")
    return {"raw": build_raw_data(root / "raw"), "spm": train_spm(root / "spm", root / "raw")}


def test_weak_german_pairs_with_chrf_relevance(raw, tmp_path):
    out = tmp_path / "weak"
    assert prepare_weak_captions.main(["--data", str(raw["raw"]), "--spm-model", str(raw["spm"]),
                                       "--out", str(out)]) == 0
    ps = photos()
    # Multi30K train images 2..8 are Flickr8k train photos (9999.jpg has no photo; 14, 15 are Flickr8k
    # test photos, left out); none is a Flickr8k dev photo, so there is no valid split
    images = (out / "train.images.txt").read_text().splitlines()
    assert images == [p["file"] for p in ps[2:9] for _ in range(5)]
    assert not (out / "valid.images.txt").exists()
    rel = read_relevance(str(out / "train.relevance"), expected=35)
    rows = (out / "train.pairs.tsv").read_text(encoding="utf-8").splitlines()[1:]
    p = ps[2]
    weak = [c.replace(" .", ".") for c in captions(p, "de")]
    strict = "Hier ist ein rot Dreieck."  # tests/caption_data.py: Task 1 German of photo 2 (red triangle)
    assert [r.split("\t")[1:3] for r in rows[:5]] == [[w, strict] for w in weak]
    assert rel[:5] == pytest.approx([chrf_relevance(w, strict) for w in weak], abs=1e-6)
    assert len(set(rel)) > 1 and all(0 < r < 1 for r in rel)
    for ext in ("bin", "idx"):
        for side in ("tag", "cap"):
            assert (out / f"train.tag-cap.{side}.{ext}").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["train"]["pairs"] == 35 and manifest["splits"]["train"]["photos"] == 7


def test_floor_and_misaligned_lists(raw, tmp_path):
    out = tmp_path / "weak_floor"
    prepare_weak_captions.main(["--data", str(raw["raw"]), "--spm-model", str(raw["spm"]), "--out", str(out),
                                "--relevance-floor", "0.5", "--max-images", "3"])
    rel = read_relevance(str(out / "train.relevance"))
    assert len(rel) == 15 and min(rel) >= 0.5
    data = tmp_path / "raw"
    shutil.copytree(raw["raw"], data)
    strict_list = data / "multi30k" / "image_splits" / "train.txt"
    strict_list.write_text(strict_list.read_text().replace("2004.jpg", "7777.jpg"))
    with pytest.raises(CaptionDataError, match=r"train_images.txt:3: image 2004.jpg has no line in .*train.txt"):
        prepare_weak_captions.main(["--data", str(data), "--spm-model", str(raw["spm"]), "--out", str(tmp_path / "x")])

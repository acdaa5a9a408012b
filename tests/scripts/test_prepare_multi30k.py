"""scripts/prepare_multi30k.py on a slice of the real data (skipped without ../shared/data)."""

import pytest

from scripts import prepare_multi30k
from tests.conftest import SHARED_DATA, requires_shared_data


@requires_shared_data("multi30k")
@requires_shared_data("flickr8k", "images")
def test_prepare_slice(tmp_path):
    out = tmp_path / "bin"
    prepare_multi30k.main(["--data", str(SHARED_DATA), "--out", str(out), "--pairs", "en-de",
                           "--langs", "en", "de", "--vocab-size", "800", "--max-lines", "200"])
    for split in ("train", "valid", "test"):
        for lang in ("en", "de"):
            assert (out / f"{split}.en-de.{lang}.bin").exists()
        lines = (out / f"{split}.images.txt").read_text().splitlines()
        assert len(lines) == 200
        # Multi30K names map to Flickr8k files by their leading number
        found = [l for l in lines if l]
        assert found and all(l.endswith(".jpg") and (SHARED_DATA / "flickr8k" / "images" / l).exists() for l in found)
    names = (SHARED_DATA / "multi30k" / "image_splits" / "train.txt").read_text().splitlines()[:200]
    mapped = (out / "train.images.txt").read_text().splitlines()
    for n, m in zip(names, mapped):
        if m:
            assert m.split("_")[0] == n.split(".")[0]
    vocab = (out / "dict.txt").read_text().split("\n")
    assert "__en__ 1" in vocab and "__de__ 1" in vocab


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="Multi30K not found"):
        prepare_multi30k.main(["--data", str(tmp_path), "--out", str(tmp_path / "o")])


def _fake_tree(root):
    """A Multi30K/Flickr8k tree with 4 train photos, 2 of them in Flickr8k's dev / test splits."""
    (root / "multi30k" / "image_splits").mkdir(parents=True)
    (root / "flickr8k" / "images").mkdir(parents=True)
    for n in ("11", "22", "33", "44", "55"):
        (root / "flickr8k" / "images" / f"{n}_x.jpg").write_bytes(b"")
    (root / "multi30k" / "image_splits" / "train.txt").write_text("11.jpg\n22.jpg\n99.jpg\n33.jpg\n44.jpg\n22.jpg\n")
    for stem in ("val", "test_2016_flickr"):
        (root / "multi30k" / "image_splits" / f"{stem}.txt").write_text("22.jpg\n55.jpg\n")
    (root / "flickr8k" / "dev_images.txt").write_text("22_x.jpg\n")
    (root / "flickr8k" / "test_images.txt").write_text("44_x.jpg\n55_x.jpg\n")


def test_hold_out_flickr8k_eval_photos_blanks_only_training_lines(tmp_path):
    _fake_tree(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    hold_out = prepare_multi30k.flickr8k_eval_photos(str(tmp_path))
    assert hold_out == {"22_x.jpg", "44_x.jpg", "55_x.jpg"}
    found = prepare_multi30k.write_image_lists(str(tmp_path), str(out), hold_out=hold_out)
    assert (out / "train.images.txt").read_text().split("\n") == ["11_x.jpg", "", "", "33_x.jpg", "", "", ""]
    assert (out / "valid.images.txt").read_text().split("\n") == ["22_x.jpg", "55_x.jpg", ""]  # evaluation: kept
    assert found == {"train": 2, "valid": 2, "test": 2}
    prepare_multi30k.write_image_lists(str(tmp_path), str(out))  # default: every available photo
    assert (out / "train.images.txt").read_text().split("\n") == ["11_x.jpg", "22_x.jpg", "", "33_x.jpg", "44_x.jpg",
                                                                   "22_x.jpg", ""]


def test_hold_out_without_split_lists_is_a_clear_error(tmp_path):
    _fake_tree(tmp_path)
    (tmp_path / "flickr8k" / "test_images.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test_images.txt"):
        prepare_multi30k.flickr8k_eval_photos(str(tmp_path))

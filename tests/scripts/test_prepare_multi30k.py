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

"""Any image format PIL reads is cached from a directory; anything else is refused by name."""

import pytest
import torch

from unix.data.feature_cache import FeatureCache, build_feature_cache
from unix.data.images import ImageError, images_in_dir


def write_formats(d):
    from PIL import Image

    im = Image.new("RGB", (32, 32), (200, 30, 30))
    im.convert("P", palette=Image.Palette.ADAPTIVE).save(d / "palette.gif")  # was skipped: "no images to cache"
    im.save(d / "photo.webp")
    im.save(d / "photo.bmp")
    im.convert("L").save(d / "gray.tiff")
    im.save(d / "photo.JPG", "JPEG")


def test_every_pil_format_is_listed_and_cached(tmp_path):
    write_formats(tmp_path)
    (tmp_path / ".DS_Store").write_bytes(b"\0")  # hidden files are ignored
    paths = images_in_dir(str(tmp_path))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["gray.tiff", "palette.gif", "photo.JPG", "photo.bmp",
                                                    "photo.webp"]
    torch.manual_seed(0)
    cache = build_feature_cache(paths, str(tmp_path / "cache"), "test_efficientnet")
    assert len(FeatureCache(str(tmp_path / "cache")).index) == 5 == len(cache.index)


def test_other_files_and_empty_dirs_are_refused_by_name(tmp_path):
    write_formats(tmp_path)
    (tmp_path / "notes.txt").write_text("not a photo")
    with pytest.raises(ImageError, match=r"notes.txt: not an image format PIL reads \(1 such files in"):
        images_in_dir(str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match=r"empty: no image in this directory"):
        images_in_dir(str(tmp_path / "empty"))


def test_corrupt_image_is_refused_by_name(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(ImageError, match=r"cannot read image .*broken.jpg"):
        build_feature_cache(images_in_dir(str(tmp_path)), str(tmp_path / "cache"), "test_efficientnet")

"""Mean-pooled feature caches (one vector per image, what gated fusion reads)."""

import json

import numpy as np
import pytest
import torch

from unix.cli import build_features
from unix.data.feature_cache import FeatureCache, build_feature_cache, mean_pool_cache
from unix.models.image_encoder import ImageEncoder


@pytest.fixture
def photos(tmp_path):
    from PIL import Image

    paths = []
    rng = np.random.default_rng(0)
    for k in range(3):
        p = tmp_path / f"{k}.png"
        Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def test_mean_pooled_cache_is_the_mean_of_the_tokens(photos, tmp_path):
    full = build_feature_cache(photos, str(tmp_path / "full"), "test_efficientnet")
    pooled = mean_pool_cache(str(tmp_path / "full"), str(tmp_path / "mean"))
    m, n, c = full.features.shape
    assert n > 1 and pooled.features.shape == (m, 1, c) and pooled.index == full.index
    assert pooled.mean_pooled and not full.mean_pooled
    assert pooled.key == dict(full.key, tokens="mean")
    meta = json.loads((tmp_path / "mean" / "meta.json").read_text())
    assert meta["pooled_from"] == str(tmp_path / "full") and meta["shape"] == [m, 1, c]
    by_hand = np.asarray(full.features, dtype=np.float32).mean(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(pooled.features, dtype=np.float32), by_hand, rtol=1e-3, atol=1e-3)
    # gated fusion's pooled vector is the same from either cache (up to the fp16 rounding of the mean)
    enc = ImageEncoder(8, feature_dim=c, tokens=False).eval()
    with torch.no_grad():
        a = enc.pooled(features=torch.stack([full[p] for p in photos]))
        b = enc.pooled(features=torch.stack([pooled[p] for p in photos]))
    torch.testing.assert_close(a, b, atol=2e-3, rtol=1e-3)
    # built from the images directly: the same vectors (pooled before the fp16 rounding)
    direct = build_feature_cache(photos, str(tmp_path / "direct"), "test_efficientnet", mean_pool=True)
    assert direct.key == pooled.key and direct.features.shape == (m, 1, c)
    np.testing.assert_allclose(np.asarray(direct.features, dtype=np.float32), by_hand, rtol=1e-2, atol=1e-2)


def test_refusals(photos, tmp_path):
    build_feature_cache(photos, str(tmp_path / "full"), "test_efficientnet")
    mean_pool_cache(str(tmp_path / "full"), str(tmp_path / "mean"))
    with pytest.raises(ValueError, match="mean-pooled already"):
        mean_pool_cache(str(tmp_path / "mean"), str(tmp_path / "mean2"))
    with pytest.raises(ValueError, match="another directory"):
        mean_pool_cache(str(tmp_path / "full"), str(tmp_path / "full"))
    with pytest.raises(SystemExit):  # --from-cache only mean-pools
        build_features.main(["--from-cache", str(tmp_path / "full"), "--out", str(tmp_path / "x")])


def test_command_line(photos, tmp_path):
    build_feature_cache(photos, str(tmp_path / "full"), "test_efficientnet")
    assert build_features.main(["--from-cache", str(tmp_path / "full"), "--mean-pool", "--out",
                                str(tmp_path / "mean")]) == 0
    assert FeatureCache(str(tmp_path / "mean")).features.shape[1] == 1

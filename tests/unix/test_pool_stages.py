"""Hypercolumn visual tokens: earlier backbone stages pooled into the last map's grid."""

import pytest
import torch

from unix.data.feature_cache import FeatureCache, StaleCacheError, build_feature_cache, cache_key
from unix.data.images import build_transform, load_image
from unix.models.image_encoder import ImageEncoder, backbone_tokens, create_backbone, parse_stages


def test_parse_stages():
    assert parse_stages("") == () and parse_stages([]) == ()
    assert parse_stages("1, 0,1") == (0, 1) and parse_stages([2, 0]) == (0, 2)
    with pytest.raises(ValueError, match="integers"):
        parse_stages("0,a")
    with pytest.raises(ValueError, match=">= 0"):
        parse_stages("-1")


def test_pooled_stages_are_the_mean_of_each_cell():
    torch.manual_seed(0)
    net = create_backbone("test_efficientnet").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain = backbone_tokens(net, x)
        hyper = backbone_tokens(net, x, (0,))
        stage0 = net.forward_intermediates(x, indices=[0], intermediates_only=True)[0]  # (2, c0, H0, W0)
    c, c0 = net.num_features, net.feature_info[0]["num_chs"]
    h, w = net.forward_features(x).shape[-2:]
    assert hyper.shape == (2, h * w, c + c0)
    assert torch.equal(hyper[..., :c], plain)  # the last map's channels come first, unchanged
    # token (i, j) of the pooled stage = mean of its (H0/h x W0/w) cell, computed by hand
    sh, sw = stage0.shape[-2] // h, stage0.shape[-1] // w
    i, j = h - 1, 0
    cell = stage0[1, :, i * sh:(i + 1) * sh, j * sw:(j + 1) * sw].mean(dim=(1, 2))
    assert torch.allclose(hyper[1, i * w + j, c:], cell, atol=1e-5)


def test_bad_stage_index_is_refused_before_any_image():
    with pytest.raises(ValueError, match="out of range"):
        ImageEncoder(8, backbone="test_efficientnet", pool_stages="0,9")


def test_cache_with_stages_matches_the_pixel_path_and_refuses_other_stages(tmp_path):
    from PIL import Image

    paths = []
    for k, color in enumerate([(200, 30, 30), (30, 200, 30)]):
        p = tmp_path / f"{k}.png"
        Image.new("RGB", (40, 40), color).save(p)
        paths.append(str(p))
    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    torch.save(create_backbone("test_efficientnet").state_dict(), weights)
    cache = build_feature_cache(paths, str(tmp_path / "c"), "test_efficientnet", str(weights), pool_stages="0,1")
    enc = ImageEncoder(16, backbone="test_efficientnet", weights=str(weights), pool_stages="0,1").eval()
    assert cache.feature_dim == enc.feature_dim > enc.backbone.num_features
    tf = build_transform("test_efficientnet", train=False)
    pixels = torch.stack([tf(load_image(p)) for p in paths])
    with torch.no_grad():
        from_pixels = enc(images=pixels)
        from_cache = enc(features=torch.stack([cache[p] for p in paths]).float())
    assert torch.allclose(from_pixels, from_cache, atol=2e-2)  # the cache is fp16

    FeatureCache(str(tmp_path / "c"), expected_key=cache_key("test_efficientnet", str(weights), tf, (0, 1)))
    with pytest.raises(StaleCacheError, match="pool_stages"):
        FeatureCache(str(tmp_path / "c"), expected_key=cache_key("test_efficientnet", str(weights), tf))
    with pytest.raises(StaleCacheError, match="pool_stages"):
        FeatureCache(str(tmp_path / "c"), expected_key=cache_key("test_efficientnet", str(weights), tf, (0,)))

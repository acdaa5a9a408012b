"""The bundled models load from the package and still score what their model cards say (slow, real data)."""

import os

import pytest

from tests.conftest import SHARED_DATA, requires_shared_data
from unix.pipeline import BUNDLED_DIR, DEFAULT_MODELS, bundled_models, load

TRANSLATION_SLICE = "Multi30K test2016 en-de, first "
CAPTION_SLICE = "Flickr8k test captions en, first "
NAMES = bundled_models() or [pytest.param(None, marks=pytest.mark.skip(reason="no bundled model in this checkout"))]


def slice_size(key: str, prefix: str) -> int:
    """N of a model card's ``<prefix>N ...`` key."""
    return int(key[len(prefix):].split()[0])


def test_every_default_model_is_bundled_and_all_fit_the_budget():
    if not bundled_models():
        pytest.skip("no bundled model in this checkout")
    assert set(DEFAULT_MODELS.values()) <= set(bundled_models())
    size = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(BUNDLED_DIR) for f in files)
    assert size < 25_000_000  # the brief's budget for everything bundled


def test_the_default_models_translate_en_de_and_caption_en_and_de():
    if not bundled_models():
        pytest.skip("no bundled model in this checkout")
    assert ["en", "de"] in [list(p) for p in load(DEFAULT_MODELS["translate"]).config["languages"]["translate"]]
    assert set(load(DEFAULT_MODELS["caption"]).languages("caption")) >= {"en", "de"}


@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_is_fp16_and_declares_its_jobs(name):
    m = load(name)
    assert m.stored_dtype == "float16"
    assert m.languages("caption") or m.config["languages"]["translate"], f"{name} declares no job"
    for use, model in DEFAULT_MODELS.items():
        if model == name:  # the card of a default model must carry the slice its slow test checks
            prefix = CAPTION_SLICE if use == "caption" else TRANSLATION_SLICE
            assert any(k.startswith(prefix) for k in m.config["scores"]), (name, prefix)


@pytest.mark.slow
@requires_shared_data("multi30k", "tok")
@requires_shared_data("flickr8k", "images")
@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_reproduces_its_model_card_slices(name):
    from unix.evaluation import caption_test, translation_test

    m = load(name)
    checked = 0
    for key, scores in m.config["scores"].items():
        if key.startswith(TRANSLATION_SLICE):
            r = translation_test(m, str(SHARED_DATA), "en", "de", limit=slice_size(key, TRANSLATION_SLICE))
        elif key.startswith(CAPTION_SLICE):
            r = caption_test(m, str(SHARED_DATA), lang="en", limit=slice_size(key, CAPTION_SLICE))
        else:
            continue
        for metric, value in scores.items():
            assert r.scores[metric] == pytest.approx(value, abs=0.01), (key, metric)
        checked += 1
    if m.languages("caption"):
        photos = sorted(os.listdir(SHARED_DATA / "flickr8k" / "images"))[:4]
        captions = m.caption([str(SHARED_DATA / "flickr8k" / "images" / p) for p in photos], lang="de")
        assert all(isinstance(c, str) and c.strip() for c in captions)
    if name in DEFAULT_MODELS.values():
        assert checked, f"{name}: its model card has no slice to check"

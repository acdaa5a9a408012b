"""The bundled models load from the package and still score what their model cards say (slow, real data)."""

import os

import pytest

from tests.conftest import SHARED_DATA, requires_shared_data
from unix.pipeline import BUNDLED_DIR, DEFAULT_MODELS, bundled_models, load

SLICE_PREFIX = "Multi30K test2016 en-de, first "
NAMES = bundled_models() or [pytest.param(None, marks=pytest.mark.skip(reason="no bundled model in this checkout"))]


def test_every_default_model_is_bundled_and_all_fit_the_budget():
    if not bundled_models():
        pytest.skip("no bundled model in this checkout")
    assert set(DEFAULT_MODELS.values()) <= set(bundled_models())
    size = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(BUNDLED_DIR) for f in files)
    assert size < 25_000_000  # the brief's budget for everything bundled


@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_is_fp16_and_declares_its_languages(name):
    m = load(name)
    assert m.stored_dtype == "float16"
    assert ["en", "de"] in [list(p) for p in m.config["languages"]["translate"]]
    if name == DEFAULT_MODELS["caption"]:
        assert set(m.languages("caption")) >= {"en", "de"}


@pytest.mark.slow
@requires_shared_data("multi30k", "tok")
@requires_shared_data("flickr8k", "images")
@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_reproduces_its_model_card_slice(name):
    from unix.evaluation import translation_test

    m = load(name)
    key = next(k for k in m.config["scores"] if k.startswith(SLICE_PREFIX))
    n = int(key[len(SLICE_PREFIX):].split()[0])
    r = translation_test(m, str(SHARED_DATA), "en", "de", limit=n)
    for metric, value in m.config["scores"][key].items():
        assert r.scores[metric] == pytest.approx(value, abs=0.01), metric
    if m.languages("caption"):
        captions = m.caption([row.photo for row in r.rows if row.photo][:4], lang="de")
        assert all(isinstance(c, str) and c.strip() for c in captions)

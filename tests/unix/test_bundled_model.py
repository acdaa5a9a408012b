"""The bundled model loads from the package and still scores what its model card says (slow, real data)."""

import pytest

from tests.conftest import SHARED_DATA, requires_shared_data
from unix.pipeline import bundled_models, load

SLICE_PREFIX = "Multi30K test2016 en-de, first "


def bundled():
    names = bundled_models()
    if not names:
        pytest.skip("no bundled model in this checkout")
    return load(names[0])


def test_bundled_model_is_small_fp16_and_declares_its_languages():
    m = bundled()
    assert m.stored_dtype == "float16"
    assert set(m.languages("caption")) >= {"en", "de"}
    assert ["en", "de"] in [list(p) for p in m.config["languages"]["translate"]]
    import os

    size = sum(os.path.getsize(os.path.join(m.model_dir, f)) for f in os.listdir(m.model_dir))
    assert size < 25_000_000  # the brief's budget for everything bundled


@pytest.mark.slow
@requires_shared_data("multi30k", "tok")
@requires_shared_data("flickr8k", "images")
def test_bundled_model_reproduces_its_model_card_slice():
    from unix.evaluation import translation_test

    m = bundled()
    key = next(k for k in m.config["scores"] if k.startswith(SLICE_PREFIX))
    n = int(key[len(SLICE_PREFIX):].split()[0])
    r = translation_test(m, str(SHARED_DATA), "en", "de", limit=n)
    for metric, value in m.config["scores"][key].items():
        assert r.scores[metric] == pytest.approx(value, abs=0.01), metric
    captions = m.caption([row.photo for row in r.rows if row.photo][:4], lang="de")
    assert all(isinstance(c, str) and c.strip() for c in captions)

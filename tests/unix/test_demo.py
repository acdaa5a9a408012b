"""unix-demo and unix.evaluation end to end on a slice of the real test sets, with a tiny random model.

The model is a fake ``unix_pretrain`` checkpoint (random ``unix_tiny`` weights, the tiny corpus's
vocabulary) trained "on" a feature cache of a small random-but-stored backbone, exported with
``unix-export``: what is checked is the plumbing (the real photos go through the backbone, the
real sentences through the tokenizer, every input gets an output, scores and the gallery are
written), not the quality.
"""

import json

import pytest
import torch

from tests.conftest import SHARED_DATA, requires_shared_data
from tests.unix.model_fixtures import make_checkpoint
from unix.export import export

PRETRAIN_TASK = {"_name": "unix_pretrain"}


@pytest.fixture(scope="module")
def tiny_model_dir(tiny_corpus, tmp_path_factory):
    from unix.data.feature_cache import FeatureCache, build_feature_cache
    from unix.models.image_encoder import create_backbone

    tmp = tmp_path_factory.mktemp("demo_model")
    torch.manual_seed(5)
    torch.save(create_backbone("test_efficientnet").state_dict(), tmp / "backbone.pth")
    build_feature_cache([str(tiny_corpus / "images" / "red.png")], str(tmp / "feats"), "test_efficientnet",
                        str(tmp / "backbone.pth"))
    dim = FeatureCache(str(tmp / "feats")).feature_dim
    make_checkpoint(tmp / "ck.pt", tiny_corpus / "bin", dict(PRETRAIN_TASK, image_features=str(tmp / "feats")),
                    model_options={"image_feature_dim": dim})
    export(str(tmp / "ck.pt"), str(tmp / "model"), fp16=True, caption_langs=["en", "de"], translate_pairs=["en-de"],
           generation={"caption": {"beam": 2, "max_len_b": 8}, "translate": {"beam": 2, "max_len_b": 8}})
    return tmp / "model"


@requires_shared_data("multi30k", "tok")
@requires_shared_data("flickr8k", "images")
def test_evaluation_scores_every_input(tiny_model_dir):
    from unix.evaluation import caption_test, translation_test
    from unix.pipeline import load

    m = load(str(tiny_model_dir))
    r = caption_test(m, str(SHARED_DATA), lang="de", limit=3)
    assert len(r.rows) == 3 and all(isinstance(x.output, str) for x in r.rows)
    assert all(len(x.refs) >= 5 for x in r.rows)  # German: Task 2's five + Task 1's translation
    assert set(r.scores) == {"BLEU-4", "CIDEr-D"}  # METEOR is English-only in pycocoevalcap
    t = translation_test(m, str(SHARED_DATA), "en", "de", limit=12)
    assert len(t.rows) == 12
    assert {"BLEU (tok)", "sacreBLEU"} <= set(t.scores)
    with_photo = [x for x in t.rows if x.photo]
    assert with_photo and t.options["with_photo"] == len(with_photo) < 12  # only some test photos are in Flickr8k


@requires_shared_data("multi30k", "tok")
@requires_shared_data("flickr8k", "images")
def test_demo_prints_examples_scores_and_writes_gallery(tiny_model_dir, tmp_path, capsys):
    from unix.cli import demo

    out = tmp_path / "demo"
    rc = demo.main(["--model", str(tiny_model_dir), "--data", str(SHARED_DATA), "--out", str(out),
                    "--photos", "4", "--sentences", "10", "--examples", "2"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "caption en: BLEU-4" in text and "caption de: BLEU-4" in text and "translate en-de: BLEU (tok)" in text
    assert text.count("ref ") >= 6  # two examples per task, each with its reference
    scores = json.loads((out / "scores.json").read_text())
    assert [(s["task"], s["lang"], s["inputs"]) for s in scores] == \
        [("caption", "en", 4), ("caption", "de", 4), ("translate", "en-de", 10)]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("<img ") >= 4 and len(list((out / "thumbs").glob("*.jpg"))) >= 4


def test_demo_without_data_is_one_line_error(tiny_model_dir, tmp_path, capsys):
    from unix.cli import demo

    rc = demo.main(["--model", str(tiny_model_dir), "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere: no flickr8k/ and multi30k/ here" in err[0]


@requires_shared_data("multi30k", "tok")
@requires_shared_data("flickr8k", "images")
def test_demo_without_model_uses_the_bundled_model_of_each_job(tiny_model_dir, tmp_path, capsys, monkeypatch):
    import shutil

    import unix.pipeline as pipeline
    from unix.cli import demo

    for use in ("caption", "translate"):
        shutil.copytree(tiny_model_dir, tmp_path / "bundled" / pipeline.DEFAULT_MODELS[use])
    monkeypatch.setattr(pipeline, "BUNDLED_DIR", str(tmp_path / "bundled"))
    rc = demo.main(["--data", str(SHARED_DATA), "--out", str(tmp_path / "demo"), "--photos", "2", "--sentences", "3",
                    "--examples", "1"])
    assert rc == 0
    text = capsys.readouterr().out
    assert f"model: {pipeline.DEFAULT_MODELS['caption']} (" in text and " loaded for caption " in text
    assert f"model: {pipeline.DEFAULT_MODELS['translate']} (" in text and " loaded for translate " in text
    assert "translate en-de: BLEU (tok)" in text

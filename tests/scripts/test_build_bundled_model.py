"""scripts/build_bundled_model.py --from-run: a translation run trained elsewhere (the published protocol's
tok-bpe data) averaged, exported fp16 with its data's preprocessing, and described in its model card."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.unix.model_fixtures import MMT_TASK, make_checkpoint
from unix.pipeline import load

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_bundled_model.py"


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("build_bundled_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tok_run(tiny_corpus, tmp_path):
    """A run directory of three update checkpoints (different weights) on tok-bpe data."""
    data = tmp_path / "tok_data"
    data.mkdir()
    shutil.copy(tiny_corpus / "bin" / "dict.txt", data / "dict.txt")
    (data / "bpe.codes").write_text("#version: 0.2\nm a\nma n</w>\n")
    pre = {"normalize_punctuation": True, "lowercase": True, "moses_tokenize": "en", "moses_escape": True,
           "bpe": "bpe.codes"}
    (data / "manifest.json").write_text(json.dumps({"protocol": "tok-bpe", "preprocess": pre}))
    run = tmp_path / "run"
    run.mkdir()
    for seed, updates in enumerate((124, 248, 372)):
        make_checkpoint(run / f"checkpoint_1_{updates}.pt", data, MMT_TASK, seed=seed)
    make_checkpoint(run / "checkpoint3.pt", data, MMT_TASK, seed=9)  # an epoch file: not picked
    return run, pre


def test_from_run_exports_the_average_of_the_last_update_checkpoints(build, tok_run, tmp_path):
    run, pre = tok_run
    out = tmp_path / "model"
    assert build.main(["--work", str(tmp_path / "work"), "--recipe", "mmt", "--name", "unix_small_ende_mmt_tok",
                       "--from-run", str(run), "--update-checkpoints", "--average", "2", "--skip-eval",
                       "--out", str(out), "--note", "trained by train_published_unix.sh"]) == 0
    m = load(str(out))
    assert m.stored_dtype == "float16" and m.config["preprocess"] == pre and (out / "bpe.codes").exists()
    card = (out / "README.md").read_text()
    assert "the average of the update checkpoints 248, 372" in card and "trained by train_published_unix.sh" in card
    assert f"--from-run` from {run}" in card
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint3.pt", "checkpoint_1_124.pt", "checkpoint_1_248.pt",
                                                     "checkpoint_1_372.pt"]  # nothing written into the run
    # the weights are the mean of the last two update checkpoints (in fp16)
    states = [torch.load(run / f"checkpoint_1_{u}.pt", weights_only=False)["model"] for u in (248, 372)]
    name = next(k for k in states[0] if k.endswith("embed_tokens.weight"))
    mean = (states[0][name] + states[1][name]) / 2
    avg = torch.load(tmp_path / "work" / "average.pt", weights_only=False)["model"][name]
    assert torch.allclose(avg, mean, atol=1e-6)


def test_from_run_needs_a_name_and_the_translation_recipe(build, tok_run, tmp_path):
    run, _ = tok_run
    for argv in (["--from-run", str(run), "--recipe", "mmt"], ["--from-run", str(run), "--name", "x"]):
        with pytest.raises(SystemExit):
            build.main(["--work", str(tmp_path / "w"), *argv])
    with pytest.raises(SystemExit, match="3 update checkpoints, 4 wanted: train"):  # never an average of fewer
        build.main(["--work", str(tmp_path / "w"), "--recipe", "mmt", "--name", "x", "--from-run", str(run),
                    "--update-checkpoints", "--average", "4", "--skip-eval"])
    with pytest.raises(SystemExit, match="0 epoch checkpoints, 10 wanted: train"):  # epoch files wanted, none there
        build.main(["--work", str(tmp_path / "w"), "--recipe", "mmt", "--name", "x", "--from-run", str(tmp_path),
                    "--skip-eval"])

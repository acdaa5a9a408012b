"""unix-results pretrain: config, readiness checks and the tables, with stand-in evaluators."""

import json

import pytest

from fairseq_plugins.cli import results as cli
from fairseq_plugins.results import pretrain as pretrain_results


@pytest.fixture
def stand_ins(tmp_path, monkeypatch):
    """Replace the three evaluators and the checkpoint reader; record how they are called."""
    calls = {"retrieval": [], "caption": [], "mmt": []}
    updates = {}

    def fake_retrieval(argv):
        calls["retrieval"].append(argv)
        trained = "--random-init" not in argv
        out = argv[argv.index("--out") + 1]
        json.dump({"en_i2t_r1": 40.0 if trained else 0.5, "en_t2i_r1": 30.0 if trained else 0.1,
                   "en2de_r1": 80.0 if trained else 0.2, "en_i2t_r10": 90.0 if trained else 1.0}, open(out, "w"))
        return 0

    def fake_caption(argv):
        calls["caption"].append(argv)
        out = argv[argv.index("--out") + 1]
        json.dump({"results": {"en": {"BLEU-4": 0.2, "METEOR": 0.19, "CIDEr": 0.5, "images": 1000}},
                   "commands": {"en": "fairseq-generate ..."}, "checkpoint": argv[argv.index("--path") + 1]},
                  open(out.replace(".md", ".json"), "w"))
        return 0

    def fake_mmt(system, a, work):
        calls["mmt"].append((system, a))
        score = {"tokenized_bleu": {"bleu": 35.0}, "sacrebleu": {"bleu": 34.5}, "n": 243}
        return {"name": system["name"], "updates": system["updates"], "all": score, "with_image": score,
                "shuffled": score}

    monkeypatch.setattr(pretrain_results, "run_retrieval", fake_retrieval)
    monkeypatch.setattr(pretrain_results, "run_caption", fake_caption)
    monkeypatch.setattr(pretrain_results.mmt, "evaluate", fake_mmt)
    monkeypatch.setattr(pretrain_results.mmt, "trained_updates", lambda path: updates[str(path)])
    monkeypatch.setattr(pretrain_results.mmt, "unfinished",
                        lambda s: "" if updates.get(s["checkpoints"], 0) >= s["updates"] else "training not finished")
    return calls, updates


def write_config(tmp_path, runs):
    cfg = {
        "note": "Pre-trained for 1500 updates on four streams.",
        "retrieval": [{"name": "pre-trained", "set": "test_2016", "checkpoint": "{RUNS}/pre.pt", "updates": 1500,
                       "args": ["--dict", "{RUNS}/dict.txt"]},
                      {"name": "pre-trained", "set": "Flickr8k test", "checkpoint": "{RUNS}/pre.pt", "updates": 1600,
                       "args": []}],
        "mmt": [{"name": "from pre-training", "checkpoints": "{RUNS}/mmt_pre", "updates": 800, "bin": "{RUNS}/bin"},
                {"name": "from scratch", "checkpoints": "{RUNS}/mmt_scratch", "updates": 800, "bin": "{RUNS}/bin"}],
        "caption": [{"name": "caption from pre-training", "checkpoint": "{RUNS}/cap_pre.pt", "updates": 600,
                     "data": "{RUNS}/captions", "langs": ["en"], "generate_args": ["--image-root", "x"]},
                    {"name": "caption from scratch", "checkpoint": "{RUNS}/cap_scratch.pt", "updates": 600,
                     "data": "{RUNS}/captions"}],
    }
    path = tmp_path / "experiments.json"
    path.write_text(json.dumps(cfg))
    for name in ("pre.pt", "cap_pre.pt", "cap_scratch.pt"):
        (runs / name).write_text("checkpoint")
    return path


def test_tables_and_unfinished_runs_listed_not_scored(tmp_path, stand_ins):
    calls, updates = stand_ins
    runs = tmp_path / "runs"
    runs.mkdir()
    config = write_config(tmp_path, runs)
    updates.update({f"{runs}/pre.pt": 1500, f"{runs}/mmt_pre": 800, f"{runs}/mmt_scratch": 400,
                    f"{runs}/cap_pre.pt": 600, f"{runs}/cap_scratch.pt": 599})
    out = tmp_path / "RESULTS.md"
    assert cli.main(["pretrain", "--config", str(config), "--var", f"RUNS={runs}", "--out", str(out),
                                  "--data", "shared"]) == 0
    text = out.read_text()

    # retrieval: the checkpoint as trained, then its random-init twin
    assert [("--random-init" in argv) for argv in calls["retrieval"]] == [False, True]
    assert calls["retrieval"][1][calls["retrieval"][1].index("--random-init") + 1] == "1"
    assert all(argv[argv.index("--path") + 1] == f"{runs}/pre.pt" for argv in calls["retrieval"])
    assert "## Retrieval on test_2016 (recall@K, %)" in text and "Retrieval on Flickr8k" not in text
    assert "- pre-trained on Flickr8k test: training not finished (1500 of 1600" in text
    assert "| metric | pre-trained | same model, random weights (seed 1): no pre-training |" in text
    assert "| en image->text R@1 | 40.00 | 0.50 |" in text
    assert "| en->de R@1 | 80.00 | 0.20 |" in text
    assert text.index("en image->text R@1") < text.index("en image->text R@10") < text.index("en->de R@1")

    # MMT: the finished system scored with its own binarized data; the unfinished one listed
    assert [s["name"] for s, _ in calls["mmt"]] == ["from pre-training"]
    assert calls["mmt"][0][1].bin == f"{runs}/bin" and calls["mmt"][0][1].data == "shared"
    assert "| from pre-training | 800 | 35.00 / 34.50 | 35.00 / 34.50 (n=243) | 35.00 / 34.50 |" in text
    assert "- from scratch: training not finished" in text

    # captioning: 600 of 600 scored, 599 of 600 not
    assert len(calls["caption"]) == 1 and calls["caption"][0][-2:] == ["--image-root", "x"]
    assert "| caption from pre-training | 600 | en | 1000 | 20.00 | 19.00 | 50.00 |" in text
    assert "- caption from scratch: training not finished (599 of 600 updates" in text
    assert "Pre-trained for 1500 updates on four streams." in text and "commit" in text
    saved = json.loads(out.with_suffix(".json").read_text())
    assert len(saved["retrieval"]) == 1 and len(saved["retrieval"][0]["rows"]) == 2
    assert len(saved["missing"]) == 3


def test_missing_variable_and_missing_checkpoint(tmp_path, stand_ins):
    runs = tmp_path / "runs"
    runs.mkdir()
    config = write_config(tmp_path, runs)
    with pytest.raises(SystemExit, match="no --var for RUNS"):
        cli.main(["pretrain", "--config", str(config), "--out", str(tmp_path / "R.md")])
    assert pretrain_results.not_ready(str(runs / "absent.pt"), 10) == f"no checkpoint {runs}/absent.pt"

"""unix-results mmt-protocol --train: the runs the table lacks are trained one after another, then scored."""

import json

import pytest

from fairseq_plugins.cli import results as cli
from fairseq_plugins.results import mmt_protocol as results
from tests.fairseq_plugins.cli.test_results_mmt_protocol import REFS, write_gen

AVERAGE = {"file": "average.pt", "inputs": ["checkpoint23.pt", "checkpoint32.pt"], "n": 10, "kind": "epoch",
           "updates": 8000}


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A directory laid out like the repository root: a training script that leaves a finished run (the average
    a run brings back), one that fails, tok-bpe data, the references, and a config of three systems."""
    import torch

    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    torch.save({"model": {"w": torch.zeros(1)}}, tmp_path / "template.pt")
    (tmp_path / "examples" / "t.sh").write_text(
        'mkdir -p "$1" && cp template.pt "$1/average.pt" && echo \'' + json.dumps(AVERAGE) + '\' > "$1/average.json"'
        ' && echo "trained $1 seed $SEED" && echo "$1" >> order.txt\n')
    (tmp_path / "examples" / "fail.sh").write_text('echo "out of memory"; exit 3\n')
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "manifest.json").write_text(json.dumps({"protocol": "tok-bpe", "pair": "en-de"}))
    tok = tmp_path / "data" / "multi30k" / "tok"
    tok.mkdir(parents=True)
    (tok / "test_2016_flickr.lc.norm.tok.de").write_text("\n".join(REFS) + "\n")
    run = lambda seed, name, script="t.sh": {"seed": seed, "dir": f"runs/{name}{seed}",  # noqa: E731
                                            "command": f"SEED={seed} bash examples/{script} runs/{name}{seed}"}
    config = tmp_path / "systems.json"
    config.write_text(json.dumps([
        {"system": "A text-only", "pair": "en-de", "task": "translation", "bin": "bin", "updates": 8000,
         "runs": [run(1, "a"), run(2, "a")]},
        {"system": "B pre-trained", "pair": "en-de", "task": "translation", "bin": "bin", "updates": 8000,
         "pretrain_command": "bash examples/t.sh runs/pretrain", "runs": [run(1, "b")]},
        {"system": "C no data", "pair": "en-de", "task": "translation", "bin": "nowhere", "updates": 8000,
         "runs": [run(1, "c")]},
        {"system": "D no features", "pair": "en-de", "task": "translation", "bin": "bin", "updates": 8000,
         "runs": [dict(run(1, "d"), command="SEED=1 bash examples/t.sh runs/d1 --image-features feats_none")]}]))
    monkeypatch.setattr(results, "run_generate", lambda cmd, out_path, keep_stderr=True: write_gen(out_path, REFS))
    return tmp_path, ["mmt-protocol", "--config", str(config), "--data", "data", "--out", "R.json"]


def test_dry_run_lists_the_runs_to_train_in_order_and_runs_nothing(repo, capsys):
    root, argv = repo
    (root / "R.json").write_text(json.dumps([{  # seed 1 of A was scored on another machine: carried, not trained
        "system": "A text-only", "pair": "en-de", "bleu": 41.0, "meteor": None, "updates": 8000, "seeds": [1],
        "bleu_per_seed": [41.0], "commit": "abc1234", "device": "cpu"}]))
    cli.main(argv + ["--train", "--dry-run"])
    listing = capsys.readouterr().out
    assert listing.splitlines() == [
        "# 1/3 A text-only (en-de) seed 2 (log: runs/a2/train.log)", "SEED=2 bash examples/t.sh runs/a2",
        "# 2/3 B pre-trained (en-de): pre-training (log: runs/b1/train.log)", "bash examples/t.sh runs/pretrain",
        "# 3/3 B pre-trained (en-de) seed 1 (log: runs/b1/train.log)", "SEED=1 bash examples/t.sh runs/b1"]
    assert not (root / "runs").exists() and not (root / "order.txt").exists()
    cli.main(argv + ["--train", "--dry-run", "--only", r"^B .*seed 1"])
    assert "seed 2" not in capsys.readouterr().out


def test_train_then_score_keeps_carried_seeds_and_skips_runs_without_data(repo):
    root, argv = repo
    (root / "R.json").write_text(json.dumps([{
        "system": "A text-only", "pair": "en-de", "bleu": 41.0, "meteor": None, "updates": 8000, "seeds": [1],
        "bleu_per_seed": [41.0], "commit": "abc1234", "device": "cpu"}]))
    cli.main(argv + ["--train", "--only", "^A "])
    assert (root / "order.txt").read_text().split() == ["runs/a2"]  # A seed 1 carried, B not picked
    assert "trained runs/a2 seed 2" in (root / "runs" / "a2" / "train.log").read_text()
    rows = {r["system"]: r for r in json.loads((root / "R.json").read_text())}
    assert rows["A text-only"]["seeds"] == [1, 2] and rows["A text-only"]["bleu_per_seed"] == [41.0, 100.0]
    assert "B pre-trained" not in rows
    cli.main(argv + ["--train"])  # the rest: B's pre-training, then B; C has no data and is skipped
    assert (root / "order.txt").read_text().split() == ["runs/a2", "runs/pretrain", "runs/b1"]
    rows = {r["system"]: r for r in json.loads((root / "R.json").read_text())}
    assert rows["B pre-trained"]["bleu_per_seed"] == [100.0] and "C no data" not in rows and "D no features" not in rows
    assert "- C no data (en-de): seed 1: no checkpoints at runs/c1" in (root / "R.md").read_text()
    assert "- D no features (en-de): seed 1: no checkpoints at runs/d1" in (root / "R.md").read_text()


def test_a_failing_run_stops_the_rest_and_names_its_log(repo):
    root, argv = repo
    config = json.loads((root / "systems.json").read_text())
    config[0]["runs"][0]["command"] = "SEED=1 bash examples/fail.sh runs/a1"
    (root / "systems.json").write_text(json.dumps(config))
    with pytest.raises(RuntimeError, match=r"A text-only \(en-de\) seed 1: exit status 3; see runs/a1/train.log"):
        cli.main(argv + ["--train"])
    assert "out of memory" in (root / "runs" / "a1" / "train.log").read_text() and not (root / "order.txt").exists()


def test_commands_are_checked_from_the_repository_root_and_flags_go_with_train(repo, monkeypatch, tmp_path_factory):
    root, argv = repo
    with pytest.raises(ValueError, match="go with --train"):
        cli.main(argv + ["--dry-run"])
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    argv = [str(root / "systems.json") if a == str(root / "systems.json") else a for a in argv]
    monkeypatch.chdir(elsewhere)
    (elsewhere / "bin").mkdir()
    with pytest.raises(FileNotFoundError, match="examples/t.sh not found from .*: run from the repository root"):
        cli.main(argv + ["--train"])


def test_a_run_another_lane_is_training_is_skipped(repo):
    import fcntl

    root, argv = repo
    (root / "runs" / "a1").mkdir(parents=True)
    with open(root / "runs" / "a1" / "train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a --train in another process holds it
        cli.main(argv + ["--train", "--only", "^A "])
    assert (root / "order.txt").read_text().split() == ["runs/a2"]


def test_dry_run_says_where_each_run_stands(repo, capsys):
    import fcntl

    import torch

    root, argv = repo
    (root / "runs" / "a1").mkdir(parents=True)
    (root / "runs" / "a2").mkdir(parents=True)
    torch.save({"optimizer_history": [{"num_updates": 1200}]}, root / "runs" / "a1" / "checkpoint_last.pt")
    with open(root / "runs" / "a2" / "train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another lane trains seed 2
        cli.main(argv + ["--train", "--dry-run", "--only", "^A "])
    heads = [line for line in capsys.readouterr().out.splitlines() if line.startswith("#")]
    assert heads == ["# 1/2 A text-only (en-de) seed 1 (log: runs/a1/train.log): resumes at update 1200 of 8000",
                     "# 2/2 A text-only (en-de) seed 2 (log: runs/a2/train.log): being trained by another --train"]
    cli.main(argv + ["--train", "--dry-run", "--only", "^A .*seed 2"])  # the lock was let go: nothing said
    assert capsys.readouterr().out.splitlines()[0] == "# 1/1 A text-only (en-de) seed 2 (log: runs/a2/train.log)"

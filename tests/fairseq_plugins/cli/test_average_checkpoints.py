"""unix-average-checkpoints: the mean of the last N epoch or update checkpoints, or of named ones."""

import pytest
import torch

from fairseq_plugins.cli import average_checkpoints


def save(path, w, step):
    torch.save({"model": {"w": torch.tensor(w), "n": torch.tensor(step)}, "last_optimizer_state": {"x": 1},
                "optimizer_history": [{"num_updates": step}]}, path)


def test_average_of_last_two(tmp_path):
    save(tmp_path / "checkpoint1.pt", [0.0, 0.0], 1)
    save(tmp_path / "checkpoint2.pt", [1.0, 2.0], 2)
    save(tmp_path / "checkpoint10.pt", [3.0, 6.0], 10)  # numeric order, not text order
    save(tmp_path / "checkpoint_last.pt", [9.0, 9.0], 10)  # not an epoch checkpoint
    average_checkpoints.main(["--dir", str(tmp_path), "--last", "2", "--out", str(tmp_path / "avg.pt")])
    avg = torch.load(tmp_path / "avg.pt", weights_only=True)
    torch.testing.assert_close(avg["model"]["w"], torch.tensor([2.0, 4.0]))
    assert avg["model"]["n"].item() == 2  # integer tensors are taken from the first checkpoint, not averaged
    assert "last_optimizer_state" not in avg


def test_too_few_checkpoints(tmp_path):
    save(tmp_path / "checkpoint1.pt", [0.0], 1)
    with pytest.raises(ValueError, match="1 epoch checkpoints, 3 wanted"):
        average_checkpoints.main(["--dir", str(tmp_path), "--last", "3", "--out", str(tmp_path / "a.pt")])


def test_update_checkpoints_with_upper_bound(tmp_path):
    save(tmp_path / "checkpoint_1_50.pt", [0.0], 50)
    save(tmp_path / "checkpoint_1_100.pt", [2.0], 100)
    save(tmp_path / "checkpoint_1_150.pt", [4.0], 150)
    save(tmp_path / "checkpoint_2_200.pt", [100.0], 200)  # after the bound
    save(tmp_path / "checkpoint3.pt", [50.0], 200)  # an epoch checkpoint: not an update checkpoint
    average_checkpoints.main(["--dir", str(tmp_path), "--last-updates", "2", "--upper-bound", "150",
                              "--out", str(tmp_path / "avg.pt")])
    avg = torch.load(tmp_path / "avg.pt", weights_only=True)
    torch.testing.assert_close(avg["model"]["w"], torch.tensor([3.0]))
    with pytest.raises(ValueError, match="3 update checkpoints up to update 150, 4 wanted"):
        average_checkpoints.main(["--dir", str(tmp_path), "--last-updates", "4", "--upper-bound", "150",
                                  "--out", str(tmp_path / "a.pt")])


def test_named_inputs(tmp_path):
    save(tmp_path / "a.pt", [1.0, 1.0], 1)
    save(tmp_path / "b.pt", [2.0, 4.0], 2)
    save(tmp_path / "c.pt", [3.0, 7.0], 3)
    average_checkpoints.main(["--inputs", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), str(tmp_path / "c.pt"),
                              "--out", str(tmp_path / "avg.pt")])
    avg = torch.load(tmp_path / "avg.pt", weights_only=True)
    torch.testing.assert_close(avg["model"]["w"], torch.tensor([2.0, 4.0]))


def test_named_inputs_refuse_missing_file_and_directory_options(tmp_path, capsys):
    save(tmp_path / "a.pt", [1.0], 1)
    with pytest.raises(SystemExit):
        average_checkpoints.main(["--inputs", str(tmp_path / "a.pt"), str(tmp_path / "nope.pt"),
                                  "--out", str(tmp_path / "avg.pt")])
    err = capsys.readouterr().err
    assert "no such checkpoint" in err and "nope.pt" in err
    with pytest.raises(SystemExit):
        average_checkpoints.main(["--inputs", str(tmp_path / "a.pt"), "--last", "2", "--out", str(tmp_path / "x.pt")])
    assert "go with --dir" in capsys.readouterr().err
    assert not (tmp_path / "avg.pt").exists() and not (tmp_path / "x.pt").exists()


def test_checkpoints_with_different_parameters_are_refused(tmp_path):
    save(tmp_path / "a.pt", [1.0], 1)
    torch.save({"model": {"other": torch.tensor([1.0])}}, tmp_path / "b.pt")
    with pytest.raises(ValueError, match="b.pt: its parameters differ"):
        average_checkpoints.main(["--inputs", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"),
                                  "--out", str(tmp_path / "avg.pt")])


def test_record_of_an_average_brought_back_from_another_machine(tmp_path):
    """--fp16 --record: the average in half precision and average.json (inputs, kind, the run's updates),
    which unix-results reads in place of the run's checkpoints."""
    import json

    from fairseq_plugins.checkpoint import imported_average

    run = tmp_path / "run"
    run.mkdir()
    save(run / "checkpoint1.pt", [0.0, 0.0], 100)
    save(run / "checkpoint2.pt", [1.0, 3.0], 200)
    save(run / "checkpoint_last.pt", [1.0, 3.0], 250)
    back = tmp_path / "back" / "run"
    average_checkpoints.main(["--dir", str(run), "--last", "2", "--out", str(back / "average.pt"), "--fp16", "--record"])
    avg = torch.load(back / "average.pt", weights_only=True)
    assert avg["model"]["w"].dtype == torch.float16 and avg["model"]["w"].tolist() == [0.5, 1.5]
    record = json.loads((back / "average.json").read_text())
    assert record == {"file": "average.pt", "inputs": ["checkpoint1.pt", "checkpoint2.pt"], "n": 2, "kind": "epoch",
                      "updates": 250, "fp16": True}
    assert imported_average(str(back)) == dict(record, path=str(back / "average.pt"))
    assert imported_average(str(run)) is None
    (back / "average.pt").unlink()
    with pytest.raises(ValueError, match="no average.pt beside it"):
        imported_average(str(back))
    (back / "average.json").write_text("{")
    with pytest.raises(ValueError, match="average.json: not an average record"):
        imported_average(str(back))

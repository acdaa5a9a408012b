"""scripts/average_checkpoints.py: the mean of the last N epoch checkpoints."""

import pytest
import torch

from scripts import average_checkpoints


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

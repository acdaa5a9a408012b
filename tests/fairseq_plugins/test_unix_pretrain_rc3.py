"""unix_pretrain with RC3 (--rc3-weight): a weakly-aligned caption stream trains and logs rc3_loss."""

import os
import subprocess

import pytest

from tests.fairseq_plugins.commands import ENV, USER_DIR
from tests.fairseq_plugins.test_unix_pretrain_e2e import COMMON
from tests.pretrain_data import build_pretrain_streams
from unix.data.relevance import write_relevance


@pytest.fixture(scope="module")
def streams(tiny_corpus, tmp_path_factory):
    """The tiny caption stream, and a copy of it made weakly-aligned by a relevance file per split."""
    root = tmp_path_factory.mktemp("rc3")
    s = build_pretrain_streams(tiny_corpus, root)
    weak = root / "weak"
    weak.mkdir()
    for f in os.listdir(s["cap"]):
        if f.endswith((".bin", ".idx", ".images.txt")):
            os.symlink(s["cap"] / f, weak / f)
    for split in ("train", "valid"):
        n = len((s["cap"] / f"{split}.images.txt").read_text().splitlines())
        write_relevance(str(weak / f"{split}.relevance"), [(0.2, 0.6, 1.0)[i % 3] for i in range(n)])
    return {**s, "weak": weak, "root": root}


def train(s, stream_dir, *extra):
    cmd = ["fairseq-train", str(s["data"]), "--user-dir", USER_DIR, "--task", "unix_pretrain",
           "--streams", f"weak:caption:{stream_dir}:1", "--image-root", str(s["images"]),
           "--image-features", str(s["feats"]), "--arch", "unix_tiny", "--embed-proj-dim", "16",
           "--criterion", "unix_pretrain", "--caption-weight", "0", "--max-update", "2", "--no-save",
           "--save-dir", str(s["root"] / "ck"), *COMMON, *extra]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True)


def test_rc3_switch_trains_two_updates_and_logs_rc3_loss(streams):
    proc = train(streams, streams["weak"], "--rc3-weight", "1", "--itm-weight", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    n = len((streams["weak"] / "train.relevance").read_text().splitlines())  # 106: relevance 0.2, 0.6, 1.0, ...
    mean = sum((0.2, 0.6, 1.0)[i % 3] for i in range(n)) / n
    assert f"stream weak: weakly-aligned ({streams['weak'] / 'train.relevance'}), mean relevance {mean:.3f}" in log
    inner = [line for line in log.splitlines() if "| train_inner |" in line]
    assert len(inner) == 2
    for line in inner:
        values = dict(kv.strip().split("=", 1) for kv in line.split("|", 3)[3].split(",") if "=" in kv)
        assert float(values["rc3_loss"]) > 0 and "rc3_acc" in values and "itc_loss" not in values
    assert "num_updates 2" in log


def test_rc3_weight_needs_a_relevance_file(streams):
    proc = train(streams, streams["cap"], "--rc3-weight", "1")
    assert proc.returncode != 0
    assert "--rc3-weight > 0 but no caption stream has relevance (train.relevance" in proc.stderr


def test_criterion_rc3_replaces_itc_on_weak_batches_and_equals_it_at_relevance_one(streams):
    import torch
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import fairseq_plugins  # noqa: F401

    ns = options.parse_args_and_arch(options.get_training_parser(), [
        str(streams["data"]), "--user-dir", USER_DIR, "--task", "unix_pretrain", "--streams",
        f"weak:caption:{streams['weak']}:1", "--image-root", str(streams["images"]), "--image-features",
        str(streams["feats"]), "--arch", "unix_tiny", "--embed-proj-dim", "16", "--criterion", "unix_pretrain",
        "--rc3-weight", "1", "--itm-weight", "0", "--cpu"])
    cfg = convert_namespace_to_omegaconf(ns)
    task = tasks.setup_task(cfg.task)
    model, criterion = task.build_model(cfg.model), task.build_criterion(cfg.criterion)
    model.eval()  # no dropout: the same embeddings in every call
    task.load_dataset("valid")
    ds = task.datasets["valid"]
    batch = ds.collater([ds[i] for i in range(8)])
    assert batch["relevance"].shape == (8,)
    assert sorted(set(batch["relevance"].tolist())) == pytest.approx([0.2, 0.6, 1.0])
    with torch.no_grad():
        _, _, rc3_log = criterion(model, batch)
        criterion.weights = {**criterion.weights, "rc3": 0.0}  # the ablation: the same pairs with plain itc
        _, _, itc_log = criterion(model, batch)
        criterion.weights = {**criterion.weights, "rc3": 1.0}
        _, _, one_log = criterion(model, {**batch, "relevance": torch.ones(8)})
    assert rc3_log["rc3_n"] == 1 and rc3_log["itc_n"] == 0 and rc3_log["rc3_loss"] > 0
    assert itc_log["itc_n"] == 1 and itc_log["rc3_n"] == 0
    assert one_log["rc3_loss"] == pytest.approx(itc_log["itc_loss"], rel=1e-5)  # relevance 1 = plain InfoNCE
    assert abs(rc3_log["rc3_loss"] - itc_log["itc_loss"]) > 1e-3

"""unix_caption end to end: stock fairseq-train (--eval-cider) and fairseq-generate --scoring cider."""

import re
import shutil

import pytest
import torch

from tests.caption_data import direct_bleu4, direct_cider, prepare_tiny
from unix.data.feature_cache import build_feature_cache
from tests.fairseq_plugins.commands import USER_DIR, run

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="CIDEr's PTB tokenizer needs java")



@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("caption_e2e")
    d = prepare_tiny(root)
    d["cache"] = root / "cache"
    torch.manual_seed(1)  # the random test backbone of the cache (the model itself trains with --seed 1)
    build_feature_cache(sorted(str(p) for p in d["images"].iterdir()), str(d["cache"]), "test_efficientnet", "")
    d["save"] = root / "ckpt"
    proc = run([
        "fairseq-train", d["bin"], "--user-dir", USER_DIR, "--task", "unix_caption", "--arch", "unix_tiny",
        "--image-root", d["images"], "--image-features", d["cache"], "--valid-subset", "valid_en,valid_de",
        "--eval-cider", "--best-checkpoint-metric", "cider", "--maximize-best-checkpoint-metric",
        "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--optimizer", "adam",
        "--lr", "0.005", "--dropout", "0.1", "--batch-size", "16", "--max-update", "120", "--validate-interval", "8",
        "--save-dir", d["save"], "--no-epoch-checkpoints", "--no-progress-bar", "--log-format", "simple",
        "--log-interval", "10", "--num-workers", "0", "--seed", "1", "--cpu"])
    d["train_log"] = proc.stdout + proc.stderr  # fairseq logs to stdout
    return d


def test_training_logs_cider_and_keeps_the_best_checkpoint(trained):
    valid = [line for line in trained["train_log"].splitlines() if "valid on 'valid_en'" in line]
    assert valid, trained["train_log"][-2000:]
    ciders = [float(re.search(r"\| cider ([\d.]+)", line).group(1)) for line in valid]
    best = float(re.search(r"best_cider ([\d.]+)", valid[-1]).group(1))
    assert len(valid) >= 2 and best == max(ciders)
    assert any("valid on 'valid_de'" in line and "| cider " in line for line in trained["train_log"].splitlines())
    assert (trained["save"] / "checkpoint_best.pt").exists()


def test_generate_scores_cider_like_validation_against_all_references(trained):
    from unix.metrics.references import split_references

    out = run(["fairseq-generate", trained["bin"], "--user-dir", USER_DIR, "--task", "unix_caption",
               "--gen-subset", "valid_de", "--path", trained["save"] / "checkpoint_last.pt",
               "--image-root", trained["images"], "--image-features", trained["cache"], "--beam", "1",
               "--max-len-b", "40", "--batch-size", "2", "--scoring", "cider", "--post-process", "sentencepiece",
               "--cpu"]).stdout
    hyps = {int(m.group(1)): m.group(2) for m in re.finditer(r"^D-(\d+)\t\S+\t(.*)$", out, re.M)}
    targets = {int(m.group(1)): m.group(2) for m in re.finditer(r"^T-(\d+)\t(.*)$", out, re.M)}
    refs_file = [split_references(line) for line in open(trained["bin"] / "valid_de.refs.txt", encoding="utf-8")]
    assert sorted(hyps) == list(range(len(refs_file))) == [0, 1, 2]  # no photo dropped (3 % batch size 2 != 0)
    assert all(split_references(targets[i]) == refs_file[i] for i in hyps) and len(refs_file[0]) == 6
    printed = float(re.search(r"CIDEr-D = ([\d.]+) \(x100", out).group(1))
    direct = 100 * direct_cider([hyps[i] for i in sorted(hyps)], [refs_file[i] for i in sorted(hyps)])
    assert printed == pytest.approx(direct, abs=0.006)
    assert "3 images, 6.00 references per image" in out
    # the last validation (end of training, greedy, <= 40 tokens) scored the model of checkpoint_last.pt
    last = [line for line in trained["train_log"].splitlines() if "valid on 'valid_de'" in line][-1]
    assert printed == pytest.approx(float(re.search(r"\| cider ([\d.]+)", last).group(1)), abs=0.006)
    bleu4 = 100 * direct_bleu4([hyps[i] for i in sorted(hyps)], [refs_file[i] for i in sorted(hyps)])
    assert float(re.search(r"\| bleu4 ([\d.]+)", last).group(1)) == pytest.approx(bleu4, abs=0.006)


def test_scst_fine_tuning_with_sampled_candidates_and_greedy_baseline(trained, tmp_path):
    """fairseq-train --criterion unix_scst from the cross-entropy checkpoint (K samples per photo,
    greedy baseline, CIDEr-D + BLEU-4 reward: the paths the in-process test does not take; the best
    checkpoint by validation METEOR, --eval-meteor), then fairseq-generate."""
    save = tmp_path / "scst"
    proc = run([
        "fairseq-train", trained["bin"], "--user-dir", USER_DIR, "--task", "unix_caption", "--arch", "unix_tiny",
        "--image-root", trained["images"], "--image-features", trained["cache"], "--valid-subset", "valid_en",
        "--eval-cider", "--eval-meteor", "--best-checkpoint-metric", "meteor", "--maximize-best-checkpoint-metric",
        "--criterion", "unix_scst", "--scst-candidates", "3", "--scst-sampling", "--scst-baseline", "greedy",
        "--scst-bleu-weight", "0.5",
        "--finetune-from-model", trained["save"] / "checkpoint_best.pt", "--optimizer", "adam", "--lr", "1e-4",
        "--dropout", "0.1", "--batch-size", "8", "--max-update", "12", "--save-dir", save, "--no-epoch-checkpoints",
        "--no-progress-bar", "--log-format", "simple", "--log-interval", "4", "--num-workers", "0", "--seed", "1",
        "--cpu"])
    log = proc.stdout + proc.stderr
    train_lines = [line for line in log.splitlines() if "train_inner" in line or "| INFO | train |" in line]

    def value(name, line):  # "name=1.5," (train_inner) or "| name 1.5 |" (end of epoch)
        return float(re.search(rf"\b{name}[= ](-?[\d.]+)", line).group(1))

    assert train_lines, log[-2000:]
    for name in ("reward", "reward_best", "reward_greedy", "cand_len"):
        values = [value(name, line) for line in train_lines]
        assert all(0 <= v <= 1000 for v in values), (name, train_lines)
    for line in train_lines:  # reward = CIDEr-D + 0.5 sentence BLEU-4 (each logged x100, rounded)
        assert value("reward", line) == pytest.approx(value("reward_cider", line) + 0.5 * value("reward_bleu4", line),
                                                      abs=0.02)
    best = [value("reward_best", line) for line in train_lines]
    mean = [value("reward", line) for line in train_lines]
    assert all(b >= m for b, m in zip(best, mean))  # the best of K candidates is at least their mean
    valid = [line for line in log.splitlines() if "valid on 'valid_en'" in line]
    assert valid and all("| cider " in line and "| meteor " in line for line in valid)
    out = run(["fairseq-generate", trained["bin"], "--user-dir", USER_DIR, "--task", "unix_caption",
               "--gen-subset", "valid_en", "--path", save / "checkpoint_best.pt", "--image-root", trained["images"],
               "--image-features", trained["cache"], "--beam", "2", "--max-len-b", "40", "--batch-size", "4",
               "--scoring", "cider", "--post-process", "sentencepiece", "--cpu"]).stdout
    assert re.search(r"CIDEr-D = [\d.]+ \(x100", out) and len(re.findall(r"^D-\d+\t", out, re.M)) == 3


def test_generate_with_mbr_reranking_matches_offline_reranking_of_the_nbest(trained, tmp_path):
    """fairseq-generate --mbr-utility bleu prints (and scores) the caption that
    unix-mbr-captions picks from the same beam's saved n-best list."""
    from unix.cli import mbr_captions
    from unix.data.captions import parse_generate_output
    from unix.metrics.references import split_references

    base = ["fairseq-generate", trained["bin"], "--user-dir", USER_DIR, "--task", "unix_caption",
            "--gen-subset", "valid_de", "--path", trained["save"] / "checkpoint_last.pt",
            "--image-root", trained["images"], "--image-features", trained["cache"], "--beam", "3", "--nbest", "3",
            "--max-len-b", "12", "--batch-size", "2", "--scoring", "cider", "--post-process", "sentencepiece", "--cpu"]
    nbest, online, offline = tmp_path / "nbest.txt", tmp_path / "online.txt", tmp_path / "offline.txt"
    nbest.write_text(run(base).stdout, encoding="utf-8")
    online.write_text(run(base + ["--mbr-utility", "bleu", "--mbr-alpha", "0.5"]).stdout, encoding="utf-8")
    mbr_captions.main(["--generate-output", str(nbest), "--utility", "bleu", "--alpha", "0.5", "--out", str(offline)])
    on, off = parse_generate_output(str(online)), parse_generate_output(str(offline))
    assert sorted(on) == sorted(off) == [0, 1, 2]
    assert [on[i]["D"] for i in range(3)] == [off[i]["D"] for i in range(3)]
    refs = [split_references(line) for line in open(trained["bin"] / "valid_de.refs.txt", encoding="utf-8")]
    printed = float(re.search(r"CIDEr-D = ([\d.]+) \(x100", online.read_text(encoding="utf-8")).group(1))
    assert printed == pytest.approx(100 * direct_cider([on[i]["D"] for i in range(3)], refs), abs=0.006)

"""Distributed data-parallel fairseq-train on CPU: two ranks (gloo, ``--ddp-backend legacy_ddp``).

What multi-GPU users run, on the path that differs from one process: logging outputs summed across
ranks as tensors (``--eval-cider``, ``--eval-meteor``, ``--eval-accuracy``), validation shards of
unequal length (a rank validates a dummy batch, ``--batch-size-valid`` chosen so), rank 0
reading a checkpoint and broadcasting it (``--finetune-from-model``, resuming), and pre-training,
whose contrastive objectives gather embeddings across ranks. Each validation score must equal the
one fairseq-generate computes in one process on the same checkpoint.

fairseq cannot spawn CPU ranks itself (it counts CUDA devices), so each rank is started here with
``--distributed-rank R --distributed-init-method tcp://...``, as a launcher would.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.caption_data import direct_cider, direct_meteor, prepare_tiny
from tests.pretrain_data import build_pretrain_streams
from tests.fairseq_plugins.test_unix_vqa_task import build_tiny_vqa, recomputed_accuracy
from tests.fairseq_plugins.test_unix_vqa_task import generate as generate_answers
from unix.data.feature_cache import build_feature_cache
from unix.metrics.references import split_references

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("java") is None, reason="CIDEr's PTB tokenizer needs java"),
              pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")]

ROOT = Path(__file__).resolve().parents[2]
USER_DIR = str(ROOT / "fairseq_plugins")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
if os.path.exists("/sys/class/net/lo"):  # gloo on the loopback device: needs no resolvable hostname
    ENV.setdefault("GLOO_SOCKET_IFNAME", "lo")
WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


# fairseq-train whose PyTorch DDP wrapper (--ddp-backend c10d) accepts a CPU model: fairseq passes
# device_ids=[device_id], which torch refuses for CPU modules; nothing else is changed.
C10D_ON_CPU = """
import sys
from torch.nn.parallel import DistributedDataParallel
_init = DistributedDataParallel.__init__
def _cpu_init(self, module, *args, device_ids=None, output_device=None, **kwargs):
    if next(module.parameters()).device.type == "cpu":
        device_ids = output_device = None
    _init(self, module, *args, device_ids=device_ids, output_device=output_device, **kwargs)
DistributedDataParallel.__init__ = _cpu_init
from fairseq_cli.train import cli_main
sys.argv[0] = "fairseq-train"
cli_main()
"""


def train_distributed(args, log_dir: Path, world: int = WORLD, ddp_backend: str = "legacy_ddp",
                      expect_success: bool = True) -> str:
    """fairseq-train ``args`` on ``world`` CPU ranks; returns rank 0's log (the one that logs)."""
    init = f"tcp://localhost:{free_port()}"
    procs, logs = [], [log_dir / f"rank{r}.log" for r in range(world)]
    launcher = ["fairseq-train"]
    if ddp_backend != "legacy_ddp":
        (log_dir / "train_c10d_on_cpu.py").write_text(C10D_ON_CPU)
        launcher = [sys.executable, str(log_dir / "train_c10d_on_cpu.py")]
    for rank in range(world):
        cmd = [*launcher, *map(str, args), "--user-dir", USER_DIR, "--cpu", "--num-workers", "0",
               "--distributed-world-size", str(world), "--distributed-rank", str(rank),
               "--distributed-init-method", init, "--distributed-no-spawn", "--device-id", "0",
               "--distributed-backend", "gloo", "--ddp-backend", ddp_backend]
        with open(logs[rank], "w") as out:
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(timeout=300) for p in procs]  # a hang (ranks out of step) fails
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    text = [log.read_text() for log in logs]
    if not expect_success:
        assert all(codes), "\n".join(f"rank {r}:\n{t[-3000:]}" for r, t in enumerate(text))
        return text[0]
    assert codes == [0] * world, "\n".join(f"rank {r}:\n{t[-3000:]}" for r, t in enumerate(text))
    assert f"distributed init (rank {world - 1})" in text[-1]
    return text[0]


def generate(args) -> str:
    proc = subprocess.run(["fairseq-generate", *map(str, args), "--user-dir", USER_DIR, "--cpu"], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def last_valid(log: str, subset: str) -> str:
    lines = [line for line in log.splitlines() if f"valid on '{subset}'" in line]
    assert lines, log[-3000:]
    return lines[-1]


def logged(name: str, line: str) -> float:
    return float(re.search(rf"\| {name} (-?[\d.]+)", line).group(1))


# ---- unix_caption: --eval-cider / --eval-meteor, then SCST from the checkpoint ---------------------

@pytest.fixture(scope="module")
def caption(tmp_path_factory):
    root = tmp_path_factory.mktemp("caption_ddp")
    d = prepare_tiny(root)
    d["cache"] = root / "cache"
    torch.manual_seed(1)
    build_feature_cache(sorted(str(p) for p in d["images"].iterdir()), str(d["cache"]), "test_efficientnet", "")
    d["data_args"] = [d["bin"], "--task", "unix_caption", "--image-root", d["images"], "--image-features", d["cache"]]
    d["save"] = root / "xe"
    # 3 photos per validation split, one a batch: the second rank validates one real batch and one dummy
    d["log"] = train_distributed([
        *d["data_args"], "--arch", "unix_tiny", "--valid-subset", "valid_en,valid_de", "--batch-size-valid", "1",
        "--eval-cider", "--eval-meteor", "--best-checkpoint-metric", "cider", "--maximize-best-checkpoint-metric",
        "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--optimizer", "adam",
        "--lr", "0.005", "--dropout", "0.1", "--batch-size", "8", "--max-update", "120", "--validate-interval", "8",
        "--save-dir", d["save"], "--no-epoch-checkpoints", "--no-progress-bar", "--log-format", "simple",
        "--log-interval", "10", "--seed", "1"], root)
    return d


def generate_captions(d, checkpoint, subset: str):
    out = generate([*d["data_args"], "--gen-subset", subset, "--path", checkpoint, "--beam", "1", "--max-len-b", "40",
                    "--batch-size", "2", "--scoring", "cider", "--post-process", "sentencepiece"])
    hyps = {int(m.group(1)): m.group(2) for m in re.finditer(r"^D-(\d+)\t\S+\t(.*)$", out, re.M)}
    printed = float(re.search(r"CIDEr-D = ([\d.]+) \(x100", out).group(1))
    return [hyps[i] for i in sorted(hyps)], printed


def test_distributed_validation_scores_equal_one_process_generation(caption):
    ckpt = caption["save"] / "checkpoint_last.pt"
    scores = {}
    for lang in ("en", "de"):
        subset = f"valid_{lang}"
        line = last_valid(caption["log"], subset)
        refs = [split_references(x) for x in open(caption["bin"] / f"{subset}.refs.txt", encoding="utf-8")]
        hyps, printed = generate_captions(caption, ckpt, subset)
        assert len(hyps) == len(refs) == 3
        assert logged("cider", line) == pytest.approx(printed, abs=0.006)
        assert printed == pytest.approx(100 * direct_cider(hyps, refs), abs=0.006)
        scores[lang] = printed
        if lang == "en":  # METEOR statistics of the two ranks summed, then scored once
            assert logged("meteor", line) == pytest.approx(100 * direct_meteor(hyps, refs), abs=0.006)
        else:
            assert "| meteor " not in line
    assert max(scores.values()) > 10  # the model learnt something to compare
    assert "num_updates 120" in last_valid(caption["log"], "valid_de")


def test_distributed_scst_fine_tunes_from_a_broadcast_checkpoint(caption, tmp_path):
    """Rank 0 reads the cross-entropy checkpoint and broadcasts it (fairseq pickles it with
    placeholders for its tensors: they must pass the weights-only allow-list)."""
    save = tmp_path / "scst"
    log = train_distributed([
        *caption["data_args"], "--arch", "unix_tiny", "--valid-subset", "valid_en", "--batch-size-valid", "2",
        "--eval-cider", "--best-checkpoint-metric", "cider", "--maximize-best-checkpoint-metric",
        "--criterion", "unix_scst", "--scst-candidates", "3", "--scst-sampling", "--scst-baseline", "greedy",
        "--scst-bleu-weight", "0.5", "--finetune-from-model", caption["save"] / "checkpoint_best.pt",
        "--optimizer", "adam", "--lr", "1e-4", "--dropout", "0.1", "--batch-size", "8", "--max-update", "8",
        "--save-dir", save, "--no-epoch-checkpoints", "--no-progress-bar", "--log-format", "simple",
        "--log-interval", "4", "--seed", "1"], tmp_path)
    train = [line for line in log.splitlines() if "train_inner" in line]
    assert train and all("reward_greedy=" in line for line in train), log[-3000:]
    # each logged batch: 2 ranks x 8 photos x 3 candidates
    assert all(re.search(r"\bbsz=48\b", line) for line in train)
    line = last_valid(log, "valid_en")
    _, printed = generate_captions(caption, save / "checkpoint_last.pt", "valid_en")
    assert logged("cider", line) == pytest.approx(printed, abs=0.006)


def test_scst_refuses_pytorch_ddp_which_would_not_synchronise_its_gradients(caption, tmp_path):
    """The criterion runs the encoder outside the model's forward; under PyTorch's DDP (fairseq's
    default --ddp-backend) each rank then trained its own model without an error. Now: a clear error.
    The cross-entropy run of the same data trains under it (its loss goes through forward)."""
    args = [*caption["data_args"], "--arch", "unix_tiny", "--optimizer", "adam", "--batch-size", "8",
            "--max-update", "2", "--disable-validation", "--no-save", "--no-progress-bar", "--seed", "1"]
    log = train_distributed([*args, "--criterion", "unix_scst", "--scst-candidates", "2", "--lr", "1e-4",
                             "--finetune-from-model", caption["save"] / "checkpoint_best.pt",
                             "--save-dir", tmp_path / "scst"], tmp_path, ddp_backend="c10d", expect_success=False)
    assert "criterion unix_scst calls the model's encoder outside its forward" in log
    assert "Use --ddp-backend legacy_ddp" in log
    log = train_distributed([*args, "--criterion", "label_smoothed_cross_entropy", "--lr", "0.005",
                             "--save-dir", tmp_path / "xe"], tmp_path, ddp_backend="c10d")
    assert "num_updates 2" in log


# ---- unix_vqa: --eval-accuracy with closed-set beam search ------------------------------------------

def test_distributed_vqa_accuracy_equals_one_process_generation(tmp_path):
    d = build_tiny_vqa(tmp_path / "vqa")
    data_args = [d["bin"], "--task", "unix_vqa", "--image-root", d["images"], "--batch-size", 8]
    answers = d["bin"] / "answers.spm.txt"
    save = tmp_path / "ckpt"
    # 16 validation questions in batches of 6: 3 batches, so the second rank also validates a dummy
    log = train_distributed([
        *data_args, "--arch", "unix_tiny", "--image-encoder", "test_convnext", "--criterion", "cross_entropy",
        "--optimizer", "adam", "--lr", "3e-3", "--max-update", "12", "--save-dir", save, "--no-epoch-checkpoints",
        "--seed", "1", "--batch-size-valid", "6", "--eval-accuracy", "--eval-accuracy-args", '{"beam": 2}',
        "--constraint-answers", answers, "--best-checkpoint-metric", "accuracy", "--maximize-best-checkpoint-metric",
        "--log-format", "simple", "--log-interval", "1", "--no-progress-bar"], tmp_path)
    line = last_valid(log, "valid")
    hyps, targets, _ = generate_answers({**d, "ckpt": save / "checkpoint_last.pt"}, "valid", "--beam", 2,
                                        "--constraint-answers", answers)
    assert len(hyps) == 16
    assert logged("accuracy", line) == recomputed_accuracy(hyps, targets)


# ---- unix_pretrain: several streams, contrastive negatives gathered across ranks ----------------------

def test_distributed_pretraining_keeps_ranks_on_one_stream_and_resumes(tiny_corpus, tmp_path):
    s = build_pretrain_streams(tiny_corpus, tmp_path / "streams")
    args = [s["data"], "--task", "unix_pretrain", "--streams",
            f"cap:caption:{s['cap']}:2,ende:translation:.:1:en-de,mono:denoise:.:1:de",
            "--image-root", s["images"], "--image-features", s["feats"], "--arch", "unix_tiny",
            "--embed-proj-dim", "16", "--criterion", "unix_pretrain", "--save-dir", tmp_path / "ck",
            "--optimizer", "adam", "--lr", "0.003", "--max-tokens", "400", "--no-progress-bar",
            "--log-format", "simple", "--log-interval", "1", "--seed", "1"]
    log = train_distributed([*args, "--max-epoch", "2"], tmp_path)
    train = [line for line in log.splitlines() if "| train | epoch" in line]
    assert len(train) == 2, log[-3000:]
    for tag in ("caption_loss", "itc_loss", "itm_loss", "xlc_loss", "mmt_loss", "denoise_loss"):
        assert all(f"| {tag} " in line for line in train), tag
    assert 0 < logged("itc_loss", train[-1]) < 10 and 0 < logged("temperature", train[-1]) <= 1
    updates = logged("num_updates", train[-1])
    log = train_distributed([*args, "--max-epoch", "3"], tmp_path)  # resumes from checkpoint_last.pt
    assert "Loaded checkpoint" in log and "| train | epoch 003" in log
    assert logged("num_updates", [x for x in log.splitlines() if "| train | epoch 003" in x][0]) > updates
    # PyTorch's DDP would not synchronise the contrastive objectives' gradients: refused
    log = train_distributed([*args, "--max-epoch", "4"], tmp_path, ddp_backend="c10d", expect_success=False)
    assert "criterion unix_pretrain calls the model's encoder outside its forward" in log


# ---- unix_mmt: validation loss over ranks equals fairseq-validate in one process ----------------------

def test_distributed_mmt_validation_loss_equals_one_process_validation(tiny_corpus, tmp_path):
    data = [tiny_corpus / "bin", "--task", "unix_mmt", "-s", "en", "-t", "de", "--image-root",
            tiny_corpus / "images"]
    save = tmp_path / "ck"
    # --max-tokens-valid 150: the validation set is one batch, so the second rank validates a dummy
    log = train_distributed([*data, "--arch", "unix_tiny", "--image-encoder", "test_efficientnet", "--save-dir", save,
                             "--max-update", "6", "--criterion", "label_smoothed_cross_entropy", "--label-smoothing",
                             "0.1", "--optimizer", "adam", "--lr", "0.003", "--max-tokens", "500",
                             "--max-tokens-valid", "150", "--no-progress-bar", "--log-format", "simple",
                             "--log-interval", "1", "--seed", "1"], tmp_path)
    line = last_valid(log, "valid")
    assert "num_updates 6" in line
    proc = subprocess.run(["fairseq-validate", *map(str, data), "--path", str(save / "checkpoint_last.pt"),
                           "--valid-subset", "valid", "--max-tokens", "150", "--user-dir", USER_DIR, "--cpu"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = last_valid(proc.stdout + proc.stderr, "valid")
    for name in ("loss", "nll_loss", "bsz"):
        assert logged(name, line) == logged(name, single), name

"""GPU paths: the core model, mixed-precision fairseq-train and beam search on CUDA, against the CPU.

Skipped without CUDA (CI has no GPU). On a GPU machine::

    python -m pytest tests/fairseq_plugins/test_cuda.py

Every task trains a few updates on the GPU in mixed precision (``--fp16``: fairseq's FP16 optimizer,
the model in half; ``--amp`` / ``--bf16`` where named), then generates the same split from that
checkpoint on the GPU and on the CPU (fp32 both): the hypotheses must agree (a near-tie may break
the other way, so 90% of them) and their scores too. ``UNIX_CUDA_TESTS_ON_CPU=1`` runs the same
commands on the CPU without mixed precision (a dry run of the test logic, not a GPU check).
"""

import json
import os
import re

import pytest
import torch

from tests.fairseq_plugins.test_unix_vqa_task import fairseq  # fairseq-train/-generate with our --user-dir
from unix import UnixConfig, UnixModel

DRY = os.environ.get("UNIX_CUDA_TESTS_ON_CPU") == "1"
pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() or DRY), reason="needs a CUDA GPU")

DEVICE = "cpu" if DRY else "cuda"


def gpu(*mixed: str):
    """Arguments that put a fairseq run on the GPU, in the given precision (none in a dry run)."""
    return ["--cpu"] if DRY else list(mixed)


def hypotheses(out: str) -> dict:
    """fairseq-generate output -> {sample id: (hypothesis, score, positional scores)}."""
    hyps = {int(i): (h, float(s)) for i, s, h in re.findall(r"^H-(\d+)\t(\S+)\t(.*)$", out, re.M)}
    pos = {int(i): [float(x) for x in p.split()] for i, p in re.findall(r"^P-(\d+)\t(.*)$", out, re.M)}
    return {i: (h, s, pos[i]) for i, (h, s) in hyps.items()}


def assert_same_generation(on_gpu: str, on_cpu: str, n: int) -> None:
    g, c = hypotheses(on_gpu), hypotheses(on_cpu)
    assert sorted(g) == sorted(c) == list(range(n)), (sorted(g), sorted(c))
    same = [i for i in g if g[i][0] == c[i][0]]
    assert len(same) >= 0.9 * n, f"{n - len(same)} of {n} hypotheses differ between GPU and CPU"
    for i in same:
        assert g[i][1] == pytest.approx(c[i][1], abs=2e-3)
        assert g[i][2] == pytest.approx(c[i][2], abs=5e-3)


def trained_loss(log: str) -> list:
    """Epoch training losses of a simple-format fairseq-train log."""
    return [float(x) for x in re.findall(r"\| train \| epoch \d+ \| loss (\S+) \|", log)]


# --- the core model ------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["unix_tiny", "unix_small", "unix_medium"])
def test_core_model_on_cuda_matches_cpu_and_trains_in_bf16(arch):
    torch.manual_seed(0)
    V, pad = 50, 1
    model = UnixModel(UnixConfig.from_arch(arch, image_feature_dim=24, dropout=0.0), V, pad).eval()
    g = torch.Generator().manual_seed(1)
    src, prev = torch.randint(4, V, (3, 9), generator=g), torch.randint(4, V, (3, 7), generator=g)
    src[0, 6:] = pad
    feats, mask = torch.randn(3, 5, 24, generator=g), torch.tensor([True, False, True])
    with torch.no_grad():
        cpu = model(src, prev, image_features=feats, image_mask=mask)
        m = model.to(DEVICE)
        args = [t.to(DEVICE) for t in (src, prev, feats, mask)]
        dev = m(*args[:2], image_features=args[2], image_mask=args[3])
        torch.testing.assert_close(dev.float().cpu(), cpu, atol=1e-4, rtol=1e-3)
    m.train()
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        out = m(*args[:2], image_features=args[2], image_mask=args[3])
        loss = torch.nn.functional.cross_entropy(out.float().reshape(-1, V), args[1].reshape(-1))
    loss.backward()
    assert out.dtype == torch.bfloat16 and torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    assert (out.float().cpu() - cpu).abs().max() < 0.25 * cpu.std()  # bf16 + dropout 0: close to fp32


# --- unix_mmt: backbone inside the model, pixels on the GPU --------------------------------------------

def test_mmt_fp16_training_and_beam_search_on_gpu(tiny_corpus, tmp_path):
    images = ["--image-root", tiny_corpus / "images"]
    common = [tiny_corpus / "bin", "--task", "unix_mmt", "-s", "en", "-t", "de", *images]
    log = fairseq("fairseq-train", *common, "--arch", "unix_tiny", "--image-encoder", "test_efficientnet",
                  "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--optimizer", "adam",
                  "--lr", "0.003", "--max-tokens", "500", "--max-update", "30", "--save-dir", tmp_path,
                  "--no-epoch-checkpoints", "--log-format", "simple", "--log-interval", "5", "--no-progress-bar",
                  "--num-workers", "0", "--seed", "1", *gpu("--fp16"))
    losses = trained_loss(log)
    assert losses and all(x == x and x < 1e4 for x in losses) and losses[-1] < losses[0], losses
    gen = [*common, "--path", tmp_path / "checkpoint_last.pt", "--gen-subset", "test", "--beam", "5",
           "--max-tokens", "500", "--post-process", "sentencepiece", "--no-repeat-ngram-size", "2"]
    on_gpu = fairseq("fairseq-generate", *gen, *gpu())
    assert_same_generation(on_gpu, fairseq("fairseq-generate", *gen, "--cpu"), 12)
    half = hypotheses(fairseq("fairseq-generate", *gen, *gpu("--fp16")))  # inference in half precision
    assert sorted(half) == list(range(12))


# --- unix_caption: feature cache, n-gram blocking; pixels with a fine-tuned backbone, grouped batches ---

@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    from tests.caption_data import prepare_tiny
    from unix.data.feature_cache import build_feature_cache

    root = tmp_path_factory.mktemp("caption_cuda")
    d = prepare_tiny(root)
    torch.manual_seed(1)
    d["cache"] = root / "cache"
    build_feature_cache(sorted(str(p) for p in d["images"].iterdir()), str(d["cache"]), "test_efficientnet", "")
    return d


def test_caption_fp16_training_and_blocked_beam_search_on_gpu(captions, tmp_path):
    d = captions
    data = [d["bin"], "--task", "unix_caption", "--image-root", d["images"], "--image-features", d["cache"]]
    log = fairseq("fairseq-train", *data, "--arch", "unix_tiny", "--criterion", "label_smoothed_cross_entropy",
                  "--label-smoothing", "0.1", "--optimizer", "adam", "--lr", "0.005", "--batch-size", "16",
                  "--max-update", "60", "--valid-subset", "valid_en", "--save-dir", tmp_path, "--no-epoch-checkpoints",
                  "--log-format", "simple", "--log-interval", "10", "--no-progress-bar", "--num-workers", "0",
                  "--seed", "1", *gpu("--fp16"))
    losses = trained_loss(log)
    assert losses and losses[-1] < losses[0], losses
    for subset in ("valid_en", "test_de"):
        n = len((d["bin"] / f"{subset}.images.txt").read_text().splitlines())
        gen = [*data, "--gen-subset", subset, "--path", tmp_path / "checkpoint_last.pt", "--beam", "3",
               "--max-len-b", "20", "--batch-size", "2", "--post-process", "sentencepiece",
               "--no-repeat-ngram-size", "2"]
        on_gpu = fairseq("fairseq-generate", *gen, *gpu())
        assert_same_generation(on_gpu, fairseq("fairseq-generate", *gen, "--cpu"), n)
        for h, _, _ in hypotheses(on_gpu).values():  # the blocker works on the GPU too
            words = h.split()
            assert len(set(zip(words, words[1:]))) == len(words) - 1, h


def test_caption_finetuned_backbone_grouped_by_photo_amp_on_gpu(captions, tmp_path):
    d = captions
    log = fairseq("fairseq-train", d["bin"], "--task", "unix_caption", "--image-root", d["images"],
                  "--image-encoder", "test_efficientnet", "--finetune-image-encoder", "--group-by-photo",
                  "--arch", "unix_tiny", "--criterion", "label_smoothed_cross_entropy", "--optimizer", "adam",
                  "--lr", "0.003", "--batch-size", "16", "--max-update", "20", "--valid-subset", "valid_en",
                  "--save-interval-updates", "5", "--save-dir", tmp_path, "--no-epoch-checkpoints",
                  "--log-format", "simple", "--log-interval", "5", "--no-progress-bar", "--num-workers", "0",
                  "--seed", "1", *gpu("--amp"))
    losses = trained_loss(log)
    assert losses and all(x == x for x in losses), losses
    from unix.checkpoint import load_state

    first, last = (load_state(str(p))["model"] for p in (next(tmp_path.glob("checkpoint_*_5.pt")),
                                                            tmp_path / "checkpoint_last.pt"))
    backbone = [k for k in last if ".backbone." in k and last[k].is_floating_point()]
    assert backbone and any(not torch.equal(first[k], last[k]) for k in backbone)  # the backbone was trained


# --- unix_vqa: closed-set (trie-constrained) beam search on the GPU ------------------------------------

def test_vqa_fp16_training_and_closed_set_answers_on_gpu(tmp_path):
    from tests.fairseq_plugins.test_unix_vqa_task import N_TEST, build_tiny_vqa

    d = build_tiny_vqa(tmp_path / "vqa")
    common = [d["bin"], "--task", "unix_vqa", "--image-root", d["images"], "--batch-size", 8, "--num-workers", 0]
    fairseq("fairseq-train", *common, "--arch", "unix_tiny", "--image-encoder", "test_convnext",
            "--criterion", "cross_entropy", "--optimizer", "adam", "--lr", "3e-3", "--max-update", 12,
            "--save-dir", tmp_path / "ck", "--no-epoch-checkpoints", "--seed", 1, "--log-format", "simple",
            "--no-progress-bar", *gpu("--fp16"))
    gen = [*common, "--path", tmp_path / "ck" / "checkpoint_last.pt", "--gen-subset", "test",
           "--constraint-answers", d["bin"] / "answers.spm.txt", "--beam", 2, "--scoring", "vqa_accuracy",
           "--post-process", "sentencepiece"]
    on_gpu, on_cpu = fairseq("fairseq-generate", *gen, *gpu()), fairseq("fairseq-generate", *gen, "--cpu")
    assert_same_generation(on_gpu, on_cpu, N_TEST)
    g, c = hypotheses(on_gpu), hypotheses(on_cpu)
    answers = set((d["bin"] / "answers.txt").read_text(encoding="utf-8").splitlines())
    assert {h for h, _, _ in g.values()} <= answers  # closed set: only listed answers
    if all(g[i][0] == c[i][0] for i in g):
        acc = [re.search(r"VQA accuracy = ([\d.]+)", o).group(1) for o in (on_gpu, on_cpu)]
        assert acc[0] == acc[1]


# --- unix_pretrain: every objective, contrastive losses in half precision --------------------------------

@pytest.mark.parametrize("precision", ["--fp16", "--amp"])  # fairseq's --bf16 means TPU
def test_pretrain_every_objective_finite_in_mixed_precision_on_gpu(tiny_corpus, tmp_path, precision):
    from tests.pretrain_data import build_pretrain_streams

    s = build_pretrain_streams(tiny_corpus, tmp_path)
    streams = f"cap:caption:{s['cap']}:2,ende:translation:.:1:en-de,mono:denoise:.:1:de"
    log = fairseq("fairseq-train", s["data"], "--task", "unix_pretrain", "--streams", streams,
                  "--image-root", s["images"], "--image-features", s["feats"], "--arch", "unix_tiny",
                  "--embed-proj-dim", "16", "--criterion", "unix_pretrain", "--max-update", "12",
                  "--optimizer", "adam", "--lr", "0.003", "--max-tokens", "400", "--save-dir", tmp_path / "ck",
                  "--log-format", "json", "--log-interval", "1", "--no-progress-bar", "--num-workers", "0",
                  "--seed", "1", *gpu(precision))
    rows = [json.loads(m) for m in re.findall(r"\| train_inner \| (\{.*\})", log)]
    assert rows, log[-2000:]
    for tag in ("caption_loss", "mmt_loss", "denoise_loss", "itc_loss", "xlc_loss", "itm_loss"):
        vals = [float(r[tag]) for r in rows if r.get(tag) is not None]
        assert vals and all(v == v and abs(v) < 1e4 for v in vals), (tag, vals)

"""unix.generation.beam_search gives fairseq-generate's hypotheses and scores.

Tiny models are trained for a few updates with stock ``fairseq-train`` on the fixture data of the
end-to-end tests (MMT: tests/conftest.py; captioning: tests/caption_data.py; VQA:
test_unix_vqa_task.py). On the same checkpoint and batch, the task's own generator
(``task.build_generator`` + ``task.inference_step``, what fairseq-generate runs) and the core's
beam search on the model from :func:`unix.checkpoint.load_model` must return the same token
sequences, in the same order, with scores and positional scores within 1e-4.
"""

import os
import subprocess
from pathlib import Path

import pytest
import torch

from unix.checkpoint import load_model
from unix.generation import beam_search, collate_sources
from unix.generation.beam_search import block_repeated_ngrams

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
USER_DIR = str(ROOT / "fairseq_plugins")
COMMON = ["--arch", "unix_tiny", "--optimizer", "adam", "--no-progress-bar", "--log-format", "simple",
          "--num-workers", "0", "--seed", "1", "--cpu", "--no-epoch-checkpoints", "--no-save-optimizer-state"]


def fairseq_train(data, save, *args):
    cmd = ["fairseq-train", str(data), "--user-dir", USER_DIR, "--save-dir", str(save), *COMMON, *map(str, args)]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return save / "checkpoint_last.pt"


def load(ckpt, **overrides):
    """(fairseq models, task) as fairseq-generate loads them, and the core model of the same checkpoint."""
    import fairseq_plugins  # noqa: F401  (registers the plugins)
    from fairseq import checkpoint_utils

    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(ckpt)], arg_overrides=overrides)
    core, _ = load_model(str(ckpt))
    return [m.eval() for m in models], task, core


def batch(task, split, ids):
    """A batch as fairseq's collater builds it (sorted by source length), checked against collate_sources."""
    if split not in task.datasets:
        task.load_dataset(split)
    ds = task.dataset(split)
    sample = ds.collater([ds[i] for i in ids])
    src = [ds[int(i)]["source"].tolist() for i in sample["id"]]
    tokens, lengths = collate_sources(src, task.source_dictionary.pad(), left_pad=task.cfg.left_pad_source)
    assert torch.equal(tokens, sample["net_input"]["src_tokens"])
    assert torch.equal(lengths, sample["net_input"]["src_lengths"])
    return sample


def compare(task, models, core, sample, nbest=None, **gen):
    """Run both searches with fairseq generation options ``gen``; assert they agree; return ours."""
    from fairseq.dataclass.configs import GenerationConfig

    cfg = GenerationConfig(**gen)
    nbest = nbest or cfg.beam
    with torch.no_grad():
        theirs = task.inference_step(task.build_generator(models, cfg), models, sample)
    vqa_best = getattr(task.cfg, "fairseq_beam_stop", True) is False
    stop = "best" if vqa_best or getattr(task.cfg, "best_beam_stop", False) else "fairseq"
    net, d = sample["net_input"], task.target_dictionary
    ours = beam_search(core, net["src_tokens"], net["src_lengths"], eos=d.eos(), pad=d.pad(), unk=d.unk(),
                       images=net.get("images"), image_features=net.get("image_features"),
                       image_mask=net.get("image_mask"), beam=cfg.beam, nbest=nbest, max_len_a=cfg.max_len_a,
                       max_len_b=cfg.max_len_b, min_len=cfg.min_len, lenpen=cfg.lenpen, unk_penalty=cfg.unkpen,
                       no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                       answer_trie=getattr(task, "answer_trie", None), stop=stop)
    assert len(ours) == len(theirs)
    for sent, (o, t) in enumerate(zip(ours, theirs)):
        t = t[:nbest]
        assert [h.tokens.tolist() for h in o] == [h["tokens"].tolist() for h in t], sent
        for h, g in zip(o, t):
            assert abs(h.score - float(g["score"])) < 1e-4, sent
            torch.testing.assert_close(h.positional_scores, g["positional_scores"].float(), atol=1e-4, rtol=0)
    return ours


def lengths(hypos):
    return {len(h.tokens) for beams in hypos for h in beams}


# -- pieces without a trained model -----------------------------------------------------------------------
def test_ngram_blocking_equals_the_plugins_blocker():
    from fairseq_plugins.generation.ngram_block import UnixNGramRepeatBlock

    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(4, 9, (6, 12), generator=g)  # small alphabet: many repeats
    tokens[:, 0] = 2
    for n in (1, 2, 3, 4):
        for step in range(0, 11):
            lp = torch.randn(6, 12, generator=g)
            ours = block_repeated_ngrams(tokens, lp.clone(), step, n)
            theirs = UnixNGramRepeatBlock(n)(tokens, lp.clone(), 2, 3, step)
            assert torch.equal(ours, theirs), (n, step)


def test_collate_sources_equals_fairseqs_collate_tokens():
    from fairseq.data.data_utils import collate_tokens

    lists = [[4, 7, 8, 2], [4, 2], [4, 9, 9, 9, 9, 2]]
    for left in (True, False):
        ours, lengths = collate_sources(lists, 1, left_pad=left)
        assert torch.equal(ours, collate_tokens([torch.tensor(s) for s in lists], 1, 2, left_pad=left))
        assert lengths.tolist() == [4, 2, 6]


# -- MMT ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mmt(tiny_corpus, tmp_path_factory):
    ckpt = fairseq_train(tiny_corpus / "bin", tmp_path_factory.mktemp("beam_mmt"), "--task", "unix_mmt",
                         "-s", "en", "-t", "de", "--image-root", tiny_corpus / "images",
                         "--image-encoder", "test_efficientnet", "--criterion", "label_smoothed_cross_entropy",
                         "--label-smoothing", "0.1", "--lr", "0.003", "--max-tokens", "500", "--max-update", "8")
    return tiny_corpus, ckpt


@pytest.mark.parametrize("with_images", [True, False])
def test_mmt_beam5(mmt, with_images):
    corpus, ckpt = mmt
    images = {"image_root": str(corpus / "images")} if with_images else {"no_images": True}
    models, task, core = load(ckpt, data=str(corpus / "bin"), **images)
    sample = batch(task, "test", range(8))
    net = sample["net_input"]
    assert len(set(net["src_tokens"].ne(1).sum(1).tolist())) > 2  # sources of different lengths, padded
    if with_images:
        assert 0 < int(net["image_mask"].sum()) < 8  # rows with and without an image
    else:
        assert "images" not in net
    hypos = compare(task, models, core, sample, beam=5, lenpen=1.0, max_len_a=1.2, max_len_b=4)
    assert len(lengths(hypos)) > 2
    compare(task, models, core, sample, nbest=2, beam=5, lenpen=0.6, max_len_a=0.5, max_len_b=2)


# -- captioning ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def caption(tmp_path_factory):
    from tests.caption_data import prepare_tiny
    from unix.data.feature_cache import build_feature_cache

    root = tmp_path_factory.mktemp("beam_caption")
    d = prepare_tiny(root)
    torch.manual_seed(1)
    build_feature_cache(sorted(str(p) for p in d["images"].iterdir()), str(root / "cache"), "test_efficientnet", "")
    ckpt = fairseq_train(d["bin"], root / "ckpt", "--task", "unix_caption", "--image-root", d["images"],
                         "--image-features", root / "cache", "--valid-subset", "valid_en",
                         "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--lr", "0.005",
                         "--dropout", "0.1", "--batch-size", "16", "--max-update", "30", "--disable-validation")
    return d, root / "cache", ckpt


@pytest.mark.parametrize("best_stop", [False, True])
def test_caption_beam3_no_repeat_ngram(caption, best_stop):
    d, cache, ckpt = caption
    models, task, core = load(ckpt, data=str(d["bin"]), image_root=str(d["images"]), image_features=str(cache),
                              best_beam_stop=best_stop)
    sample = batch(task, "train", range(0, 60, 5))  # photos in four languages
    assert "image_features" in sample["net_input"]
    hypos = compare(task, models, core, sample, beam=3, no_repeat_ngram_size=2, max_len_b=16)
    assert len(lengths(hypos)) > 1
    compare(task, models, core, batch(task, "valid_de", range(3)), beam=3, max_len_b=16)


# -- VQA ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vqa(tmp_path_factory):
    from tests.fairseq_plugins.test_unix_vqa_task import build_tiny_vqa

    d = build_tiny_vqa(tmp_path_factory.mktemp("beam_vqa"))
    answers = d["bin"] / "answers.spm.txt"
    ckpt = fairseq_train(d["bin"], d["root"] / "ckpt", "--task", "unix_vqa", "--image-root", d["images"],
                         "--image-encoder", "test_convnext", "--criterion", "cross_entropy", "--lr", "3e-3",
                         "--batch-size", "8", "--max-update", "8", "--constraint-answers", answers,
                         "--disable-validation")
    return d, answers, ckpt


@pytest.mark.parametrize("closed_set,fairseq_stop", [(True, False), (True, True), (False, False)])
def test_vqa(vqa, closed_set, fairseq_stop):
    d, answers, ckpt = vqa
    models, task, core = load(ckpt, data=str(d["bin"]), image_root=str(d["images"]),
                              constraint_answers=str(answers) if closed_set else None,
                              fairseq_beam_stop=fairseq_stop)
    assert (task.answer_trie is not None) == closed_set
    sample = batch(task, "test", range(10))
    assert len(set(sample["net_input"]["src_tokens"].ne(1).sum(1).tolist())) > 1
    hypos = compare(task, models, core, sample, beam=5)
    if closed_set:
        allowed = {tuple(a) for a in task.answer_trie.answers()}
        assert all(tuple(h.tokens[:-1].tolist()) in allowed for beams in hypos for h in beams)
    compare(task, models, core, sample, nbest=1, beam=2)

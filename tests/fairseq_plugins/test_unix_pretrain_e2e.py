"""unix_pretrain end to end: multi-stream fairseq-train, TensorBoard tags, fine-tuning, retrieval."""

import json
import os

import pytest

from tests.pretrain_data import build_pretrain_streams
from tests.fairseq_plugins.commands import USER_DIR, run as run_command

COMMON = ["--optimizer", "adam", "--lr", "0.003", "--max-tokens", "400", "--no-progress-bar", "--log-format",
          "simple", "--log-interval", "1", "--num-workers", "0", "--seed", "1"]
OBJECTIVE_TAGS = ["caption_loss", "mt_loss", "mmt_loss", "denoise_loss", "itc_loss", "xlc_loss", "itm_loss",
                  "itc_acc_i2t", "itc_acc_t2i", "xlc_acc", "itm_acc", "temperature"]


def run(cmd):
    proc = run_command(cmd)
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def pretrained(tiny_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    s = build_pretrain_streams(tiny_corpus, root)
    text_only = root / "ende_text"  # the same en-de pair without image list: plain translation
    text_only.mkdir()
    for f in os.listdir(s["data"]):
        if ".en-de." in f:
            os.symlink(s["data"] / f, text_only / f)
    streams = (f"cap:caption:{s['cap']}:2,ende:translation:.:1:en-de,"
               f"ende_text:translation:{text_only}:1:en-de,mono:denoise:.:1:de")
    log = run(["fairseq-train", str(s["data"]), "--user-dir", USER_DIR, "--task", "unix_pretrain", "--streams", streams,
               "--image-root", str(s["images"]), "--image-features", str(s["feats"]), "--arch", "unix_tiny",
               "--embed-proj-dim", "16", "--criterion", "unix_pretrain", "--max-epoch", "1",
               "--save-dir", str(root / "ck"), "--tensorboard-logdir", str(root / "tb"), *COMMON])
    return {**s, "root": root, "log": log, "ckpt": root / "ck" / "checkpoint_last.pt"}


def test_every_objective_is_trained_and_logged(pretrained):
    log = pretrained["log"]
    train_line = next(l for l in log.splitlines() if "| train | epoch 001" in l)
    valid_line = next(l for l in log.splitlines() if "valid on 'valid' subset" in l)
    for tag in OBJECTIVE_TAGS:
        assert f"{tag} " in train_line, tag
    for tag in set(OBJECTIVE_TAGS) - {"mt_loss"}:  # validation: streams with a valid split (all have images)
        assert f"{tag} " in valid_line, tag
    values = dict(kv.strip().rsplit(" ", 1) for kv in train_line.split("|")[3:])
    assert all(float(values[t]) > 0 for t in ("caption_loss", "itc_loss", "itm_loss", "xlc_loss", "denoise_loss"))
    assert 0.0 < float(values["temperature"]) <= 1.0  # clamped: inverse temperature in [1, 100]


def test_tensorboard_event_files_hold_the_objective_tags(pretrained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for sub in ("train", "train_inner", "valid"):
        path = pretrained["root"] / "tb" / sub
        if path.exists():
            acc = EventAccumulator(str(path))
            acc.Reload()
            tags |= set(acc.Tags()["scalars"])
    assert set(OBJECTIVE_TAGS) <= tags, set(OBJECTIVE_TAGS) - tags


def test_finetune_unix_mmt_reports_loaded_new_and_dropped_weights(pretrained, tmp_path):
    s = pretrained
    log = run(["fairseq-train", str(s["data"]), "--user-dir", USER_DIR, "--task", "unix_mmt", "-s", "en", "-t", "de",
               "--image-root", str(s["images"]), "--image-features", str(s["feats"]), "--arch", "unix_tiny",
               "--finetune-from-model", str(s["ckpt"]), "--criterion", "label_smoothed_cross_entropy",
               "--max-update", "2", "--disable-validation", "--no-save", "--save-dir", str(tmp_path / "ck"), *COMMON])
    report = next(l for l in log.splitlines() if "checkpoint weights:" in l)
    assert "0 new" in report and "5 dropped" in report
    for name in ("image_head.weight", "text_head.weight", "logit_scale", "itm_head.weight", "itm_head.bias"):
        assert name in report
    assert "loading pretrained model from" in log and "num_updates 2" in log


def test_eval_retrieval_on_the_pretrained_checkpoint(pretrained, tmp_path):
    from unix.cli.eval_retrieval import main

    s, raw = pretrained, pretrained["data"].parent / "raw"
    out = tmp_path / "r.json"
    assert main(["--path", str(s["ckpt"]), "--dict", str(s["data"] / "dict.txt"), "--spm-model",
                 str(s["data"] / "spm.model"), "--image-list", str(s["data"] / "valid.images.txt"), "--image-root",
                 str(s["images"]), "--image-features", str(s["feats"]), "--captions", f"en={raw / 'valid.en'}",
                 f"de={raw / 'valid.de'}", "--parallel", f"en={raw / 'valid.en'}", f"de={raw / 'valid.de'}",
                 "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    keys = {f"{lang}_{d}_r{k}" for lang in ("en", "de") for d in ("i2t", "t2i") for k in (1, 5, 10)}
    keys |= {f"{d}_r{k}" for d in ("en2de", "de2en") for k in (1, 5, 10)}
    assert set(r) == keys and all(0.0 <= v <= 100.0 for v in r.values())
    assert r["en_i2t_r10"] == 100.0  # 4 distinct images: every one is found within the top 10


def test_eval_retrieval_random_init_is_the_same_architecture_with_fresh_seeded_weights(pretrained):
    import torch

    from unix.retrieval import retrieval_model

    trained = retrieval_model(str(pretrained["ckpt"]))
    fresh, again = (retrieval_model(str(pretrained["ckpt"]), random_init=3) for _ in range(2))
    t, f, g = (m.state_dict() for m in (trained, fresh, again))
    assert t.keys() == f.keys() and all(t[k].shape == f[k].shape for k in t)
    assert all(torch.equal(f[k], g[k]) for k in f)  # seeded
    assert not torch.equal(t["text_head.weight"], f["text_head.weight"])
    assert not torch.equal(t["encoder.embed_tokens.weight"], f["encoder.embed_tokens.weight"])


def test_eval_retrieval_sep_joined_references_equal_repeated_image_names(pretrained, tmp_path):
    from unix.cli.eval_retrieval import main

    s, raw = pretrained, pretrained["data"].parent / "raw"
    names = (s["data"] / "valid.images.txt").read_text().splitlines()
    captions = (raw / "valid.en").read_text().splitlines()
    by_image = {}
    for name, cap in zip(names, captions):
        if name:
            by_image.setdefault(name, []).append(cap)
    (tmp_path / "images.txt").write_text("\n".join(by_image) + "\n")
    (tmp_path / "refs.en").write_text("\n".join(" <sep> ".join(c) for c in by_image.values()) + "\n")
    common = ["--path", str(s["ckpt"]), "--dict", str(s["data"] / "dict.txt"),
              "--spm-model", str(s["data"] / "spm.model"),
              "--image-root", str(s["images"]), "--image-features", str(s["feats"])]
    main([*common, "--image-list", str(s["data"] / "valid.images.txt"), "--captions", f"en={raw / 'valid.en'}",
          "--out", str(tmp_path / "repeated.json")])
    main([*common, "--image-list", str(tmp_path / "images.txt"), "--captions", f"en={tmp_path / 'refs.en'}",
          "--out", str(tmp_path / "joined.json")])
    repeated, joined = (json.loads((tmp_path / f).read_text()) for f in ("repeated.json", "joined.json"))
    assert max(len(c) for c in by_image.values()) > 1  # some image really has several captions
    assert joined == pytest.approx(repeated)

"""Checkpoint safety (weights_only with an allow-list) and bad input at task load time."""

import os
import shutil
import subprocess

import pytest
import torch

import fairseq_plugins  # noqa: F401  (patches fairseq's checkpoint loading, registers tasks)
from fairseq_plugins.checkpoint import UnsafeCheckpointError
from tests.fairseq_plugins.commands import ENV
from tests.fairseq_plugins.test_unix_mmt import train
from unix.checkpoint import CheckpointError, load_model


class Payload:
    """Any object outside the allow-list (it could run code when unpickled)."""

    def __reduce__(self):
        return (os.getcwd, ())


@pytest.fixture(scope="module")
def text_ckpt(tiny_corpus, tmp_path_factory):
    save = tmp_path_factory.mktemp("ck_text")
    train(tiny_corpus, save, updates=2)
    return save / "checkpoint_last.pt"


def test_fairseq_checkpoint_loads_under_weights_only(text_ckpt):
    from fairseq import checkpoint_utils

    state = checkpoint_utils.load_checkpoint_to_cpu(str(text_ckpt))
    assert state["cfg"]["model"]["_name"] == "unix_tiny"


def test_checkpoint_broadcast_to_other_ranks_unpickles_under_weights_only(text_ckpt):
    """Under distributed training rank 0 sends the checkpoint it read to the other ranks as fairseq's
    ``broadcast_object`` does: pickled with ``_TensorPlaceholder`` for its tensors, then ``torch.load``ed
    (weights-only) there. The placeholder is allow-listed; anything else is still refused."""
    import io
    import pickle

    from fairseq.distributed.utils import _put_tensors_in_obj, _split_tensors_from_obj

    from fairseq_plugins.checkpoint import install_safe_globals

    install_safe_globals()
    from fairseq import checkpoint_utils

    state = checkpoint_utils.load_checkpoint_to_cpu(str(text_ckpt))
    tensors = []
    buffer = io.BytesIO()
    torch.save(_split_tensors_from_obj(state, tensors), buffer)
    received = _put_tensors_in_obj(torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu"), tensors)
    assert len(tensors) > 10 and received["cfg"]["model"]["_name"] == "unix_tiny"
    assert all(torch.equal(received["model"][k], v) for k, v in state["model"].items())
    buffer = io.BytesIO()
    torch.save(_split_tensors_from_obj({"payload": Payload()}, []), buffer)
    with pytest.raises(pickle.UnpicklingError, match="(?i)unsupported global"):
        torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu")


def test_checkpoint_with_pickled_object_is_refused(text_ckpt, tmp_path):
    from fairseq import checkpoint_utils

    state = torch.load(text_ckpt, weights_only=True)
    state["extra_state"]["payload"] = Payload()
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(UnsafeCheckpointError, match=r"refusing to load checkpoint .*bad.pt"):
        checkpoint_utils.load_checkpoint_to_cpu(str(bad))
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_model(str(bad))


def test_core_loader_without_fairseq(text_ckpt, tiny_corpus):
    model, state = load_model(str(text_ckpt))
    assert model.cfg.embed_dim == 32 and not model.training
    src = torch.tensor([[5, 20, 21, 2]])
    out = model.greedy_decode(src, bos=2, eos=2, max_len=4)
    assert out.shape[0] == 1


def test_checkpoint_of_another_model_is_refused(tmp_path):
    state = {"cfg": {"model": {"_name": "transformer"}}, "model": {}}
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"holds a 'transformer' model, not a unix model"):
        load_model(str(tmp_path / "other.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_model(str(tmp_path / "junk.pt"))


def _copy_corpus(tiny_corpus, tmp_path):
    dst = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, dst)
    return dst


def _load(corpus, split="valid", **overrides):
    from fairseq_plugins.tasks.unix_mmt import UnixMMTConfig, UnixMMTTask

    cfg = UnixMMTConfig(data=str(corpus / "bin"), source_lang="en", target_lang="de",
                        image_root=str(corpus / "images"), train_subset="train", dataset_impl=None,
                        required_seq_len_multiple=1, **overrides)
    task = UnixMMTTask.setup_task(cfg)
    task._image_transform = lambda im: torch.zeros(3, 8, 8)
    task.load_dataset(split)
    return task.dataset(split)


def test_image_list_with_wrong_length(tiny_corpus, tmp_path):
    corpus = _copy_corpus(tiny_corpus, tmp_path)
    lst = corpus / "bin" / "valid.images.txt"
    lst.write_text("".join(lst.read_text().splitlines(keepends=True)[:-2]))
    with pytest.raises(ValueError, match=r"valid.images.txt: 10 lines but the split has 12 sentences"):
        _load(corpus)


def test_missing_and_corrupt_image(tiny_corpus, tmp_path):
    corpus = _copy_corpus(tiny_corpus, tmp_path)
    os.remove(corpus / "images" / "red.png")
    with pytest.raises(ValueError, match=r"valid.images.txt:\d+: image not found: .*red.png"):
        _load(corpus)
    (corpus / "images" / "red.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"valid.images.txt:\d+: cannot read image .*red.png"):
        _load(corpus)


def test_unknown_target_language(tiny_corpus):
    from fairseq_plugins.tasks.unix_mmt import UnixMMTConfig, UnixMMTTask

    cfg = UnixMMTConfig(data=str(tiny_corpus / "bin"), source_lang="en", target_lang="cs")
    with pytest.raises(KeyError, match=r"unknown language 'cs'.*languages known: de, en, fr"):
        UnixMMTTask.setup_task(cfg)


def test_empty_sentence_in_binarized_data(tiny_corpus, tmp_path):
    corpus = _copy_corpus(tiny_corpus, tmp_path)
    raw = corpus / "raw"
    lines = (raw / "valid.spm.de").read_text().splitlines()
    lines[3] = ""
    (raw / "valid.spm.de").write_text("\n".join(lines) + "\n")
    subprocess.run(["fairseq-preprocess", "-s", "en", "-t", "de", "--validpref", str(raw / "valid.spm"),
                    "--destdir", str(corpus / "bin"), "--srcdict", str(corpus / "bin" / "dict.txt"),
                    "--tgtdict", str(corpus / "bin" / "dict.txt"), "--workers", "1"],
                   check=True, capture_output=True, env=ENV)
    with pytest.raises(ValueError, match=r"valid.en-de \(target\): line 4 is an empty sentence"):
        _load(corpus)

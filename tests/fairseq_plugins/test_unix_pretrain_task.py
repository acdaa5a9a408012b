"""unix_pretrain in process: start-up errors on bad input, stream mixing, code-switching."""

import os
from collections import Counter
from pathlib import Path

import pytest

import fairseq_plugins  # noqa: F401  (registers the plugins)
from fairseq_plugins.tasks.unix_pretrain import UnixPretrainConfig, UnixPretrainTask
from tests.pretrain_data import build_pretrain_streams
from unix.data.streams import StreamError, normalized_ratios, parse_streams

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def streams(tiny_corpus, tmp_path_factory) -> dict:
    return build_pretrain_streams(tiny_corpus, tmp_path_factory.mktemp("pretrain_streams"))


def make_task(streams, spec, **kw) -> UnixPretrainTask:
    cfg = UnixPretrainConfig(data=str(streams["data"]), streams=spec, seed=1, train_subset="train",
                             dataset_impl=None, image_root=str(streams["images"]),
                             image_features=str(streams["feats"]), **kw)
    return UnixPretrainTask.setup_task(cfg)


def test_stream_spec_parsing_and_ratios():
    specs = parse_streams("cap:caption:c:2, ende:translation:m:1:en-de,mono:denoise:m:1:de")
    assert [(s.name, s.kind, s.src, s.tgt) for s in specs] == [
        ("cap", "caption", None, None), ("ende", "translation", "en", "de"), ("mono", "denoise", "de", None)]
    r = normalized_ratios(parse_streams("a:caption:x:1,b:caption:y:1,c:caption:z:1"))
    assert sum(r) == 1.0 and r[0] == pytest.approx(1 / 3)
    for bad, msg in [("a:caption:x:0,b:caption:y:0", "sum to a positive"), ("a:caption:x:-1", ">= 0"),
                     ("a:video:x:1", "unknown kind"), ("a:translation:x:1", "needs its pair"),
                     ("a:caption:x:1,a:caption:y:1", "used twice"), ("", "no data streams")]:
        with pytest.raises(StreamError, match=msg):
            parse_streams(bad)


def test_bad_input_fails_at_start_up(streams, tmp_path):
    cap = f"cap:caption:{streams['cap']}"
    with pytest.raises(StreamError, match="sum to a positive"):
        make_task(streams, f"{cap}:0,ende:translation:.:0:en-de")
    # the cross-lingual contrastive objective asked for fr, but only en-de is parallel
    with pytest.raises(StreamError, match=r"en<->fr.*\(streams' pairs: en-de\)"):
        make_task(streams, f"{cap}:1,ende:translation:.:1:en-de", xlc_langs="de,fr")
    with pytest.raises(StreamError, match="code-switching.*en<->de"):
        make_task(streams, f"{cap}:1", code_switch_prob=0.5, code_switch_langs="de")
    with pytest.raises(StreamError, match="every objective of it has weight 0"):
        make_task(streams, f"{cap}:1", caption_weight=0.0, itc_weight=0.0, itm_weight=0.0)
    # the shared --random-batches would mix streams inside a batch
    with pytest.raises(StreamError, match="--random-batches does not apply to unix_pretrain"):
        make_task(streams, f"{cap}:1", random_batches=True)
    with pytest.raises(StreamError, match="--group-by-image does not apply to unix_pretrain"):
        make_task(streams, f"{cap}:1", group_by_image=True)
    # a stream whose directory has no data: clear error when the train split is loaded
    task = make_task(streams, f"{cap}:1,empty:translation:{tmp_path}:1:en-de")
    with pytest.raises(StreamError, match=f"stream 'empty' \\(translation\\): no train data in {tmp_path}"):
        task.load_dataset("train")


def test_batches_come_from_one_stream_grouped_per_worker_with_the_ratios(streams):
    task = make_task(streams, f"cap:caption:{streams['cap']}:3,ende:translation:.:1:en-de,mono:denoise:.:0:de")
    task.load_dataset("train")
    mix = task.datasets["train"]
    assert list(mix.datasets) == ["cap", "ende"]  # ratio 0: not loaded
    mix.set_epoch(1)
    indices = mix.ordered_indices()
    counts = Counter(mix._map_index(int(i))[1] for i in indices)
    assert counts["cap"] == int(0.75 * len(mix)) and counts["ende"] == len(mix) - counts["cap"]
    mix.num_shards = 2
    batches = mix.batch_by_size(indices, max_sentences=8)
    names = [mix.stream_of_batch(b) for b in batches]
    assert len(batches) % 2 == 0 and all(names[i] == names[i + 1] for i in range(0, len(names), 2))
    batch = mix.collater([mix[int(i)] for i in batches[0]])
    assert batch["stream"] == names[0]
    if names[0] == "cap":
        assert batch["text_tokens"].shape[0] == batch["target"].shape[0] and "image_features" in batch["net_input"]
    else:
        assert batch["xl_src"].shape[0] == batch["target"].shape[0]


def test_every_rank_takes_a_batch_of_the_same_stream_at_every_step_of_a_shuffled_epoch(streams):
    """fairseq shuffles an epoch's batches; it must move whole groups, or the ranks' contrastive
    gathers would wait for ranks busy with another stream (distributed training hung)."""
    task = make_task(streams, f"cap:caption:{streams['cap']}:2,ende:translation:.:1:en-de,mono:denoise:.:1:de")
    task.load_dataset("train")
    mix = task.datasets["train"]
    for epoch in (1, 2):
        per_rank = []
        for rank in range(2):
            itr = task.get_batch_iterator(mix, max_sentences=4, seed=1, num_shards=2, shard_id=rank, epoch=epoch,
                                          disable_iterator_cache=True)
            per_rank.append([b["stream"] for b in itr.next_epoch_itr(shuffle=True)])
        assert per_rank[0] == per_rank[1] and len(set(per_rank[0])) == 3
        assert per_rank[0] != sorted(per_rank[0])  # shuffled, not one stream after the other
    single = task.get_batch_iterator(mix, max_sentences=4, seed=1, epoch=1, disable_iterator_cache=True)
    assert single.next_epoch_itr(shuffle=True).total > len(per_rank[0])  # one rank takes every batch


def test_code_switching_replaces_english_caption_words_with_induced_translations(streams):
    task = make_task(streams, f"cap:caption:{streams['cap']}:1,ende:translation:.:1:en-de", code_switch_prob=1.0,
                     spm_model=str(Path(streams["data"]) / "spm.model"))
    task.load_dataset("train")
    lexicon = task.code_switcher.lexicons["de"]
    assert lexicon.get("red") == ["rot"] and lexicon.get("dog") == ["hund"]
    cap = task.datasets["train"].datasets["cap"]
    d = task.dictionary
    en_item = next(cap[i] for i in range(len(cap)) if int(cap[i]["source"][0]) == d.index("__en__"))
    caption = d.string(en_item["target"], "sentencepiece")
    switched = d.string(en_item["text"][1:], "sentencepiece")
    assert caption.startswith("the ") and switched != caption
    assert set(switched.split()) & {"rot", "gruen", "blau", "gelb", "hund", "katze", "auto", "haus"}
    de_item = next(cap[i] for i in range(len(cap)) if int(cap[i]["source"][0]) == d.index("__de__"))
    assert d.string(de_item["text"][1:], "sentencepiece") == d.string(de_item["target"], "sentencepiece")


@pytest.mark.parametrize("flatten", [False, True], ids=["per-param-master", "flat-master"])
def test_logit_scale_is_clamped_on_the_fp32_master_copy_of_fp16_training(flatten):
    """Under --fp16 fairseq's FP16Optimizer steps on an fp32 copy and copies it back into the
    model after each update: the clamp has to reach that copy, or it is undone at the next step."""
    from unittest import mock

    import torch
    from fairseq.dataclass.configs import FairseqConfig
    from fairseq.optim.adam import FairseqAdamConfig
    from fairseq.optim.fp16_optimizer import FP16Optimizer
    from omegaconf import OmegaConf

    from fairseq_plugins.tasks.unix_pretrain import fp32_master_views
    from unix.losses import LOG_MAX_SCALE

    cfg = OmegaConf.structured(FairseqConfig)
    cfg.optimizer = OmegaConf.structured(FairseqAdamConfig(lr=[1e-3]))
    cfg.optimizer._name = "adam"
    cfg.common.fp16_no_flatten_grads = not flatten
    model = torch.nn.Module()
    model.weight = torch.nn.Parameter(torch.randn(5).half())
    model.logit_scale = torch.nn.Parameter(torch.tensor(2.0).half())
    model.bias = torch.nn.Parameter(torch.randn(3).half())
    params = [model.weight, model.logit_scale, model.bias]
    with mock.patch("torch.cuda.current_device", return_value=None):  # the flat copy's device key
        optimizer = FP16Optimizer.build_optimizer(cfg, params)
    assert bool(optimizer.has_flat_params) == flatten

    (master,) = fp32_master_views(optimizer, model.logit_scale)
    assert master.dtype == torch.float32 and float(master) == 2.0
    assert fp32_master_views(optimizer, torch.nn.Parameter(torch.zeros(1))) == []
    assert fp32_master_views(torch.optim.SGD(params, lr=0.1), model.logit_scale) == []

    master.fill_(LOG_MAX_SCALE + 3.0)  # as if the fp32 update had run past the bound
    optimizer.backward(sum((p.float() * 0).sum() for p in params))  # zero gradients, a real step
    task = object.__new__(UnixPretrainTask)
    task.optimizer_step(optimizer, model, update_num=1)
    assert float(master) == pytest.approx(LOG_MAX_SCALE)
    optimizer._sync_fp32_params_to_fp16()  # what the next update does
    assert float(model.logit_scale.detach()) == pytest.approx(LOG_MAX_SCALE, abs=1e-2)
    assert torch.equal(model.weight.detach(), params[0].detach())

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

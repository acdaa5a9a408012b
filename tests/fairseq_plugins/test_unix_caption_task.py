"""unix_caption and the ``cider`` scorer in process: data checks, multi-reference validation, CIDEr,
stale caches and bad input."""

import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.caption_data import direct_bleu4, direct_cider, direct_meteor, prepare_tiny
from unix.data.feature_cache import StaleCacheError, build_feature_cache
from unix.data.images import ImageError
from unix.data.tokenizer import UnknownLanguageError
from unix.metrics.references import split_references

USER_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "fairseq_plugins")
java = pytest.mark.skipif(shutil.which("java") is None, reason="CIDEr's PTB tokenizer needs java")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    import timm

    root = tmp_path_factory.mktemp("caption_task")
    d = prepare_tiny(root)
    for seed, name in ((0, "a.pt"), (1, "b.pt")):
        torch.manual_seed(seed)
        torch.save(timm.create_model("test_efficientnet", num_classes=0, global_pool="").state_dict(), root / name)
        d[f"weights_{name[0]}"] = root / name
    photos = sorted(str(p) for p in d["images"].iterdir())
    d["cache"] = root / "cache_a"
    build_feature_cache(photos, str(d["cache"]), "test_efficientnet", str(d["weights_a"]))
    return d


def setup(bin_dir, *args):
    """(task, cfg) as fairseq-train builds them."""
    import fairseq_plugins  # noqa: F401
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    ns = options.parse_args_and_arch(parser, [str(bin_dir), "--user-dir", USER_DIR, "--task", "unix_caption",
                                              "--arch", "unix_tiny", "--cpu", *map(str, args)])
    cfg = convert_namespace_to_omegaconf(ns)
    return tasks.setup_task(cfg.task), cfg


def batch_of(task, split):
    ds = task.datasets[split]
    return ds.collater([ds[i] for i in range(len(ds))])


@java
def test_eval_split_first_reference_loss_and_corpus_cider(data):
    from unix.metrics.caption import ptb_tokenize_groups

    task, cfg = setup(data["bin"], "--image-root", data["images"], "--image-features", data["cache"],
                      "--eval-cider")
    model = task.build_model(cfg.model)
    task.load_dataset("train")
    assert len(task.datasets["train"]) == 50 + 48 + 8 + 8  # en, de, fr, cs captions of the 10 train photos
    task.load_dataset("valid_de")
    batch = batch_of(task, "valid_de")
    assert batch["unix_split"] == "valid_de" and batch["net_input"]["image_features"].shape[:2] == (3, 25)
    assert batch["net_input"]["image_mask"].all()
    refs = [split_references(line) for line in open(data["bin"] / "valid_de.refs.txt", encoding="utf-8")]
    one = task.first_reference_sample(batch)
    for row, sid in zip(one["target"], batch["id"].tolist()):
        assert task.tgt_dict.string(row[row.ne(task.tgt_dict.pad())], "sentencepiece") == refs[sid][0]
    assert one["ntokens"] < batch["ntokens"] and (one["net_input"]["prev_output_tokens"][:, 0] == 2).all()
    _, refs_tok = task.corpus_cider("valid_de")
    assert refs_tok == ptb_tokenize_groups(refs) and len(refs_tok[0]) == 6
    criterion = task.build_criterion(cfg.criterion)
    _, _, log = task.valid_step(batch, model, criterion)
    assert log["_cider_n"] == 3 and log["_cider_sum"] >= 0


class _SecondReferenceGenerator:
    """Stands in for the validation generator: "generates" each photo's second reference, cut short
    by its last two pieces (captions that score well above zero, unlike an untrained model's)."""

    def __init__(self, task):
        self.sep, self.eos, self.pad = task.sep_idx, task.tgt_dict.eos(), task.tgt_dict.pad()

    def generate(self, models, sample, **kwargs):
        out = []
        for row in sample["target"]:
            toks = [t for t in row.tolist() if t not in (self.pad, self.eos)]
            refs, cur = [], []
            for t in toks + [self.sep]:
                if t == self.sep:
                    refs.append(cur)
                    cur = []
                else:
                    cur.append(t)
            out.append([{"tokens": torch.tensor(refs[1][:-2] + [self.eos])}])
        return out


@java
def test_validation_cider_and_bleu4_over_several_batches_equal_pycocoevalcap(data):
    """valid_step on two batches, reduced as fairseq-train does: ``cider`` and ``bleu4`` are the corpus
    scores of pycocoevalcap on all the generated captions (BLEU from n-gram statistics summed over batches)."""
    from fairseq import metrics

    task, cfg = setup(data["bin"], "--image-root", data["images"], "--image-features", data["cache"],
                      "--eval-cider")
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    task.cider_generator = _SecondReferenceGenerator(task)
    task.load_dataset("valid_de")
    ds = task.datasets["valid_de"]
    batches = [ds.collater([ds[i] for i in ids]) for ids in ([0, 1], [2])]
    refs = [split_references(line) for line in open(data["bin"] / "valid_de.refs.txt", encoding="utf-8")]
    with metrics.aggregate(new_root=True) as agg:
        logs = [task.valid_step(b, model, criterion)[2] for b in batches]
        task.reduce_metrics(logs, criterion)
        logged = agg.get_smoothed_values()
    hyps = {}
    for b in batches:
        for sid, g in zip(b["id"].tolist(), task.cider_generator.generate([model], b)):
            hyps[sid] = task.tgt_dict.string(g[0]["tokens"], "sentencepiece")
    assert [log["_cider_n"] for log in logs] == [2, 1] and sorted(hyps) == [0, 1, 2]
    assert all(hyps[i] and refs[i][1].startswith(hyps[i]) and hyps[i] != refs[i][1] for i in hyps)
    assert logs[0]["_bleu_testlen"] > 0 and logs[0]["_bleu_guess1"] == logs[0]["_bleu_testlen"]
    hyp_list = [hyps[i] for i in range(3)]
    cider, bleu4 = 100 * direct_cider(hyp_list, refs), 100 * direct_bleu4(hyp_list, refs)
    assert cider > 50 and bleu4 > 20  # near-copies of a reference
    assert logged["cider"] == pytest.approx(cider, abs=0.006)
    assert logged["bleu4"] == pytest.approx(bleu4, abs=0.006)


@java
def test_validation_meteor_over_several_batches_equals_pycocoevalcap_english_only(data):
    """--eval-meteor: ``meteor`` is pycocoevalcap's corpus METEOR of all the English captions generated
    over several batches (statistics summed, one METEOR process); non-English splits log none."""
    from fairseq import metrics

    with pytest.raises(ValueError, match="--eval-meteor needs --eval-cider"):
        setup(data["bin"], "--image-root", data["images"], "--image-features", data["cache"], "--eval-meteor")
    task, cfg = setup(data["bin"], "--image-root", data["images"], "--image-features", data["cache"],
                      "--eval-cider", "--eval-meteor")
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    task.cider_generator = _SecondReferenceGenerator(task)
    logged, keys = {}, {}
    for split in ("valid_en", "valid_de"):
        task.load_dataset(split)
        ds = task.datasets[split]
        batches = [ds.collater([ds[i] for i in ids]) for ids in ([0, 1], list(range(2, len(ds))))]
        with metrics.aggregate(new_root=True) as agg:
            logs = [task.valid_step(b, model, criterion)[2] for b in batches]
            task.reduce_metrics(logs, criterion)
            logged[split] = agg.get_smoothed_values()
        keys[split] = [sorted(log) for log in logs]
        if split == "valid_en":
            assert [log["_meteor_n"] for log in logs] == [2, len(ds) - 2]
            refs = [split_references(line) for line in open(data["bin"] / "valid_en.refs.txt", encoding="utf-8")]
            hyps = {}
            for b in batches:
                for sid, g in zip(b["id"].tolist(), task.cider_generator.generate([model], b)):
                    hyps[sid] = task.tgt_dict.string(g[0]["tokens"], "sentencepiece")
            ids = sorted(hyps)
            direct = 100 * direct_meteor([hyps[i] for i in ids], [refs[i] for i in ids])
            assert direct > 30  # near-copies of a reference
            assert logged[split]["meteor"] == pytest.approx(direct, abs=0.006)
    assert "meteor" not in logged["valid_de"] and "cider" in logged["valid_de"]
    # every batch logs the same keys (zeros without English photos): distributed ranks sum them key by key
    assert all(k == keys["valid_en"][0] for k in keys["valid_en"] + keys["valid_de"])


@pytest.mark.parametrize("best_stop", [False, True])
def test_no_repeat_ngram_size_blocks_repeats_in_generation(data, best_stop):
    """An untrained model repeats one piece; the task's generator with --no-repeat-ngram-size 2
    (fairseq's blocker does nothing: fairseq_plugins.generation.ngram_block) never repeats a bigram."""
    from argparse import Namespace

    from fairseq_plugins.generation.ngram_block import UnixNGramRepeatBlock

    extra = ["--best-beam-stop"] if best_stop else []
    task, cfg = setup(data["bin"], "--image-root", data["images"], "--image-features", data["cache"], *extra)
    torch.manual_seed(0)
    model = task.build_model(cfg.model)
    model.eval()
    task.load_dataset("valid_en")
    batch = batch_of(task, "valid_en")

    def captions(**kw):
        gen = task.build_generator([model], Namespace(beam=2, max_len_a=0, max_len_b=12, **kw))
        return gen, [g[0]["tokens"].tolist() for g in task.inference_step(gen, [model], batch)]

    def repeats_a_bigram(toks):
        grams = list(zip(toks, toks[1:]))
        return len(grams) != len(set(grams))

    _, free = captions()
    assert any(repeats_a_bigram(t) for t in free)  # the degenerate output the option is for
    gen, blocked = captions(no_repeat_ngram_size=2)
    assert isinstance(gen.repeat_ngram_blocker, UnixNGramRepeatBlock)
    assert not any(repeats_a_bigram(t) for t in blocked) and blocked != free


@pytest.mark.parametrize("utility", ["bleu", "cider"])
def test_mbr_reranks_each_photos_beam_by_expected_utility(data, utility):
    """--mbr-utility returns the same hypotheses as beam search, reordered by unix.generation.mbr."""
    from argparse import Namespace

    from unix.generation.mbr import mbr_order, words

    base = ["--image-root", data["images"], "--image-features", data["cache"]]
    plain, cfg = setup(data["bin"], *base)
    mbr, _ = setup(data["bin"], *base, "--mbr-utility", utility, "--mbr-alpha", "0.5")
    torch.manual_seed(0)
    model = plain.build_model(cfg.model)
    model.eval()
    plain.load_dataset("valid_en")
    batch = batch_of(plain, "valid_en")
    args = Namespace(beam=4, max_len_a=0, max_len_b=8)
    before = plain.inference_step(plain.build_generator([model], args), [model], batch)
    after = mbr.inference_step(mbr.build_generator([model], args), [model], batch)
    moved = 0
    for b, a in zip(before, after):
        assert len(b) == len(a) == 4
        texts = [words(plain.tgt_dict.string(h["tokens"], "sentencepiece")) for h in b]
        order, _ = mbr_order(texts, [float(h["positional_scores"].sum()) for h in b], utility, 0.5)
        assert [h["tokens"].tolist() for h in a] == [b[i]["tokens"].tolist() for i in order]
        moved += order != sorted(order)
    assert moved > 0  # an untrained model's beam order is not the consensus order everywhere
    # evidence sharply on beam search's best (length-normalised score): it stays first everywhere
    sharp, _ = setup(data["bin"], *base, "--mbr-utility", utility, "--mbr-weights", "score", "--mbr-alpha", "1000")
    kept = sharp.inference_step(sharp.build_generator([model], args), [model], batch)
    assert [k[0]["tokens"].tolist() for k in kept] == [b[0]["tokens"].tolist() for b in before]
    with pytest.raises(ValueError, match="--mbr-utility 'meteor': choose from bleu, cider"):
        setup(data["bin"], *base, "--mbr-utility", "meteor")


def test_caption_lang_overrides_the_tag_and_unknown_languages_are_refused(data):
    task, _ = setup(data["bin"], "--image-root", data["images"], "--image-features", data["cache"],
                    "--caption-lang", "fr")
    task.load_dataset("test_en")
    assert int(task.datasets["test_en"][0]["source"][0]) == task.src_dict.index("__fr__")
    with pytest.raises(UnknownLanguageError, match=r"unknown language 'xx'.*languages known: cs, de, en, fr"):
        setup(data["bin"], "--image-features", data["cache"], "--caption-lang", "xx")


def test_best_beam_stop_picks_the_generator_class(data):
    """--best-beam-stop gives plain beam search the best-stop rule; sampling and the default keep fairseq's."""
    from argparse import Namespace

    from fairseq.sequence_generator import SequenceGenerator

    from fairseq_plugins.generation.best_stop import BestStopSequenceGenerator

    for flags, args, expected in [([], {}, SequenceGenerator),
                                  (["--best-beam-stop"], {}, BestStopSequenceGenerator),
                                  (["--best-beam-stop"], {"sampling": True}, SequenceGenerator),
                                  (["--best-beam-stop"], {"diverse_beam_groups": 2}, SequenceGenerator)]:
        task, cfg = setup(data["bin"], "--image-features", data["cache"], *flags)
        model = task.build_model(cfg.model)
        assert type(task.build_generator([model], Namespace(beam=2, **args))) is expected, (flags, args)


def test_cached_features_of_other_weights_are_refused(data):
    base = ["--image-root", data["images"], "--image-features", data["cache"], "--image-encoder", "test_efficientnet"]
    task, cfg = setup(data["bin"], *base, "--image-weights", data["weights_b"])
    with pytest.raises(StaleCacheError, match="weights"):
        task.build_model(cfg.model)
    task, cfg = setup(data["bin"], *base, "--image-weights", data["weights_a"])
    model = task.build_model(cfg.model)
    task.load_dataset("test_en")
    batch = batch_of(task, "test_en")
    with torch.no_grad():
        out = model(**batch["net_input"])[0]
    assert out.shape[0] == 3 and torch.isfinite(out).all()
    task, cfg = setup(data["bin"], *base, "--image-weights", data["weights_a"], "--finetune-image-encoder")
    with pytest.raises(ValueError, match="fine-tuned backbone needs pixels"):
        task.build_model(cfg.model)


def _bad_copy(data, tmp_path, lines):
    """A copy of the binarized data whose test_en image list is ``lines``, and an image root."""
    from PIL import Image

    bin_dir, images = tmp_path / "bin", tmp_path / "images"
    shutil.copytree(data["bin"], bin_dir)
    shutil.copytree(data["images"], images)
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    Image.new("L", (30, 30), 120).save(images / "gray.jpg")
    Image.new("CMYK", (30, 30), (0, 120, 200, 10)).save(images / "cmyk.jpg")
    (bin_dir / "test_en.images.txt").write_text("".join(x + "\n" for x in lines))
    return bin_dir, images


def pixel_task(bin_dir, images, *extra):
    task, cfg = setup(bin_dir, "--image-root", images, "--image-encoder", "test_efficientnet", *extra)
    task.build_model(cfg.model)
    return task


def test_bad_photos_are_reported_with_list_file_and_line(data, tmp_path):
    good = (data["bin"] / "test_en.images.txt").read_text().split()
    bin_dir, images = _bad_copy(data, tmp_path, ["gray.jpg", "corrupt.jpg", "cmyk.jpg"])
    with pytest.raises(ImageError, match=r"test_en.images.txt:2: cannot read image .*corrupt.jpg"):
        pixel_task(bin_dir, images).load_dataset("test_en")  # every photo is decoded when a split is loaded
    task = pixel_task(bin_dir, images, "--skip-image-check")
    task.load_dataset("test_en")
    ds = task.datasets["test_en"]
    assert ds[0]["image"].shape == ds[2]["image"].shape == (3, 160, 160)  # grayscale and CMYK -> RGB
    with pytest.raises(ImageError, match=r"test_en.images.txt:2: cannot read image .*corrupt.jpg"):
        ds[1]
    (bin_dir / "test_en.images.txt").write_text(f"{good[0]}\nmissing.jpg\n{good[2]}\n")
    with pytest.raises(ImageError, match=r"test_en.images.txt:2: image not found: .*missing.jpg"):
        pixel_task(bin_dir, images).load_dataset("test_en")
    (bin_dir / "test_en.images.txt").write_text(f"{good[0]}\n{good[1]}\n\n")
    with pytest.raises(ImageError, match=r"test_en.images.txt:3: empty line, but every caption needs its photo"):
        pixel_task(bin_dir, images).load_dataset("test_en")
    (bin_dir / "test_en.images.txt").write_text(f"{good[0]}\n{good[1]}\n")
    with pytest.raises(ImageError, match=r"test_en.images.txt: 2 lines but the split has 3"):
        pixel_task(bin_dir, images).load_dataset("test_en")


def _binarize(task, prefix: Path, lines):
    from fairseq.data import indexed_dataset

    builder = indexed_dataset.make_builder(f"{prefix}.bin", impl="mmap", vocab_size=len(task.src_dict))
    for line in lines:
        builder.add_item(task.src_dict.encode_line(line, add_if_not_exist=False, append_eos=True).long())
    builder.finalize(f"{prefix}.idx")


def test_source_that_is_not_one_known_language_tag_is_refused(data, tmp_path):
    bin_dir = tmp_path / "bin"
    shutil.copytree(data["bin"], bin_dir)
    task, _ = setup(bin_dir, "--image-root", data["images"], "--image-features", data["cache"])
    photo = (data["bin"] / "test_en.images.txt").read_text().split()[0]
    for split, tags in (("test_xx", ["__en__", "__xx__"]), ("test_two", ["__en__", "__en__ __de__"])):
        _binarize(task, bin_dir / f"{split}.tag-cap.tag", tags)
        _binarize(task, bin_dir / f"{split}.tag-cap.cap", ["\u2581a \u2581red", "\u2581a \u2581blue"])
        (bin_dir / f"{split}.images.txt").write_text(f"{photo}\n{photo}\n")
    with pytest.raises(ValueError, match=r"test_xx.tag-cap.tag: line 2: source '<unk>' is not a language tag"):
        task.load_dataset("test_xx")
    with pytest.raises(ValueError, match=r"test_two.tag-cap.tag: line 2: the source must be one language tag"):
        task.load_dataset("test_two")


def test_fine_tuned_backbone_trains_on_timm_train_transform(data):
    task = pixel_task(data["bin"], data["images"], "--finetune-image-encoder")
    task.load_dataset("train")
    task.load_dataset("valid_en")
    train_tf = repr(task.datasets["train"].dataset.images._transform())
    valid_tf = repr(task.datasets["valid_en"].dataset.images._transform())
    assert "RandomResizedCrop" in train_tf and "RandomResizedCrop" not in valid_tf and "CenterCrop" in valid_tf
    assert task.datasets["train"][0]["image"].shape == (3, 160, 160)


# -- the cider scorer of fairseq-generate ------------------------------------------------------

REFS = [["A dog runs on the grass .", "a brown dog is running", "The dog plays outside."],
        ["Zwei Männer sitzen auf einer Bank.", "zwei Personen sitzen"],
        ["A red car in the street .", "a car is parked", "the red car waits", "a parked car"],
        ["A child climbs the stairs ."]]
HYPS = ["a dog runs on grass", "zwei männer sitzen", "a blue bicycle .", "a child climbing stairs"]


def build_scorer():
    import fairseq_plugins  # noqa: F401  (registers the scorer)
    from fairseq import scoring

    assert "cider" in scoring.SCORER_REGISTRY
    return scoring.build_scorer("cider", None)


@java
def test_cider_scorer_equals_pycocoevalcap_over_all_references():
    from unix.metrics.references import join_references

    scorer = build_scorer()
    for k, (h, rs) in enumerate(zip(HYPS, REFS)):
        target = join_references(rs)
        if k == 2:  # a target still in sentencepiece pieces (no --post-process) is joined first
            target = " ".join("\u2581" + w for w in target.split())
        scorer.add_string(target, h)
    expected = 100 * direct_cider(HYPS, REFS)
    assert expected > 10
    assert scorer.score() == pytest.approx(expected, rel=1e-9)
    assert f"CIDEr-D = {expected:.2f}" in scorer.result_string() and "4 images, 2.50 references" in \
        scorer.result_string()
    first_only = build_scorer()
    for h, rs in zip(HYPS, REFS):
        first_only.add_string(rs[0], h)
    assert first_only.score() == pytest.approx(100 * direct_cider(HYPS, [rs[:1] for rs in REFS]), rel=1e-9)
    assert first_only.score() != pytest.approx(scorer.score())


def test_cider_scorer_names_the_sample_without_reference():
    from unix.metrics.caption import MissingReferenceError

    scorer = build_scorer()
    scorer.add_string("a dog <sep> a cat", "a dog")
    scorer.add_string(" <sep> ", "a cat")
    with pytest.raises(MissingReferenceError, match="scored sample #2 has an empty target"):
        scorer.result_string()


def test_checkpoints_with_and_without_the_image_backbone_fine_tune_into_each_other(data, caplog):
    """A checkpoint trained with ``--image-encoder`` (pre-training) initialises a model that reads
    cached features only (``train_unix.sh``), and the reverse; other mismatches stay errors."""
    import logging

    from fairseq_plugins.models.unix import BACKBONE

    base = ["--image-root", data["images"], "--image-features", data["cache"]]
    torch.manual_seed(1)
    task, cfg = setup(data["bin"], *base, "--image-encoder", "test_efficientnet", "--image-weights", data["weights_a"])
    with_backbone = task.build_model(cfg.model).eval()
    torch.manual_seed(2)
    feats_task, feats_cfg = setup(data["bin"], *base)
    feats_only = feats_task.build_model(feats_cfg.model).eval()
    ckpt = {k: v.clone() for k, v in with_backbone.state_dict().items()}
    n_backbone = sum(k.startswith(BACKBONE) for k in ckpt)
    assert n_backbone > 0 and not any(k.startswith(BACKBONE) for k in feats_only.state_dict())
    embed = "decoder.core.embed_tokens.weight"
    assert not torch.equal(ckpt[embed], feats_only.state_dict()[embed])

    with caplog.at_level(logging.INFO, logger="fairseq_plugins.models.unix"):
        feats_only.load_state_dict(ckpt)
    assert all(torch.equal(v, ckpt[k]) for k, v in feats_only.state_dict().items())
    report = next(r.getMessage() for r in caplog.records if "checkpoint weights:" in r.getMessage())
    assert f"0 new (initialised here): -; {n_backbone} dropped" in report
    assert f"image backbone ({n_backbone} tensors)" in report
    assert any("image backbone is not used" in r.getMessage() for r in caplog.records)
    feats_task.load_dataset("test_en")
    batch = batch_of(feats_task, "test_en")
    with torch.no_grad():  # on cached features the backbone does not take part: same outputs
        assert torch.allclose(feats_only(**batch["net_input"])[0], with_backbone(**batch["net_input"])[0])

    # the reverse: the backbone keeps its own --image-weights, everything else comes from the checkpoint
    torch.manual_seed(3)
    with torch.no_grad():  # new values for every parameter (tied embeddings stay tied)
        for p in feats_only.parameters():
            p.add_(torch.randn_like(p))
    other = {k: v.clone() for k, v in feats_only.state_dict().items()}
    own_backbone = {k: v.clone() for k, v in with_backbone.state_dict().items() if k.startswith(BACKBONE)}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fairseq_plugins.models.unix"):
        with_backbone.load_state_dict(other)
    after = with_backbone.state_dict()
    assert all(torch.equal(after[k], v) for k, v in own_backbone.items())
    assert all(torch.equal(after[k], v) for k, v in other.items())
    report = next(r.getMessage() for r in caplog.records if "checkpoint weights:" in r.getMessage())
    assert f"{n_backbone} new (initialised here): image backbone ({n_backbone} tensors); 0 dropped" in report

    # any other missing tensor is still an architecture mismatch
    broken = {k: v for k, v in ckpt.items() if k != "decoder.core.embed_tokens.weight"}
    with pytest.raises(RuntimeError, match="decoder.core.embed_tokens.weight"):
        feats_only.load_state_dict(broken)


@java
def test_scst_criterion_rewards_candidates_by_cider_against_every_training_caption_of_the_photo(data):
    """unix_scst: K beam candidates per photo, CIDEr-D against all the photo's captions in its
    language with the training split's document frequencies (pycocoevalcap called directly here),
    leave-one-out baseline, loss -sum A log p with log p from an independent teacher-forced pass."""
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    from unix.losses import leave_one_out_baseline

    K = 3
    task, cfg = setup(data["bin"], "--image-root", data["images"], "--image-features", data["cache"],
                      "--criterion", "unix_scst", "--scst-candidates", K, "--dropout", "0")
    torch.manual_seed(0)
    model = task.build_model(cfg.model)
    task.load_dataset("train")
    criterion = task.build_criterion(cfg.criterion)
    pair, d = task._pairs["train"], task.tgt_dict
    photos = [line.strip() for line in open(data["bin"] / "train.images.txt", encoding="utf-8")]
    groups = {}
    for i in range(len(pair)):
        groups.setdefault((photos[i], int(pair.src[i][0])), []).append(d.string(pair.tgt[i], "sentencepiece"))
    keys = list(groups)
    key_of = [(photos[i], int(pair.src[i][0])) for i in range(len(pair))]
    ids, used = [], set()
    for i, k in enumerate(key_of):  # one sample of each of 4 photo-language pairs, several languages
        if k not in used and (k[1] not in {key_of[j][1] for j in ids} or len(ids) >= 3):
            ids.append(i), used.add(k)
        if len(ids) == 4:
            break
    ds = task.datasets["train"]
    batch = ds.collater([ds[i] for i in ids])
    seen = []
    inference_step = task.inference_step
    task.inference_step = lambda *a, **kw: seen.append(inference_step(*a, **kw)) or seen[-1]

    model.train()
    loss, size, log = criterion(model, batch)
    B = len(ids)
    assert size == B * K and log["photos"] == B and len(seen) == 1 and all(len(h) == K for h in seen[0])
    cands = [h["tokens"] for hs in seen[0] for h in hs]
    hyps = [d.string(t, "sentencepiece") for t in cands]
    tok = PTBTokenizer()
    gts = tok.tokenize({g: [{"caption": c} for c in groups[k]] for g, k in enumerate(keys)})
    order = batch["id"].tolist()
    rewards = torch.zeros(B, K)
    for k in range(K):
        res = {g: ["x"] for g in range(len(keys))}
        res.update({keys.index(key_of[sid]): [hyps[b * K + k]] for b, sid in enumerate(order)})
        res = tok.tokenize({g: [{"caption": r[0]}] for g, r in res.items()})
        _, per = Cider().compute_score(gts, res)
        for b, sid in enumerate(order):
            rewards[b, k] = float(per[keys.index(key_of[sid])])
    assert log["reward_sum"] == pytest.approx(float(rewards.sum()), rel=1e-6)
    assert log["reward_best_sum"] == pytest.approx(float(rewards.max(1)[0].sum()), rel=1e-6)
    # log p of every candidate from a plain forward over the repeated batch (not the criterion's path)
    target = torch.nn.utils.rnn.pad_sequence(cands, batch_first=True, padding_value=d.pad())
    prev = torch.full_like(target, d.pad())
    for r, t in enumerate(cands):
        prev[r, 0], prev[r, 1:len(t)] = d.eos(), t[:-1]
    rep = {k: v.repeat_interleave(K, 0) for k, v in batch["net_input"].items() if k != "prev_output_tokens"}
    logits, _ = model(**rep, prev_output_tokens=prev)
    lp = torch.log_softmax(logits.float(), -1).gather(-1, target[..., None]).squeeze(-1)
    seq = (lp * target.ne(d.pad())).sum(1).view(B, K)
    expected = -((rewards - leave_one_out_baseline(rewards)) * seq).sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    assert loss.requires_grad
    # the gradient pushes up the log p of candidates above their baseline (rewards set by hand here:
    # an untrained model's candidates may all score 0)
    criterion.rewards = lambda sample, tokens, per_photo: (torch.tensor([[1.0] + [0.0] * (per_photo - 1)] * B),
                                                           {"cider": 1.0 * B})
    loss, _, _ = criterion(model, batch)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())
    # validation reports the reference cross-entropy (no decoding)
    model.eval()
    vloss, vsize, vlog = criterion(model, batch)
    assert vsize == batch["ntokens"] and vlog["photos"] == 0 and vloss.item() > 0


@java
def test_scst_mixed_reward_adds_weighted_sentence_bleu_and_meteor_of_english_captions(data):
    """--scst-bleu-weight / --scst-meteor-weight: reward = CIDEr-D + wb BLEU-4 + wm METEOR, each part
    against the photo's training captions (pycocoevalcap's scorers called directly here); METEOR
    refuses a non-English caption, naming the sample."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.meteor.meteor import Meteor

    from unix.metrics.caption import ptb_tokenize

    task, cfg = setup(data["bin"], "--image-root", data["images"], "--image-features", data["cache"],
                      "--criterion", "unix_scst", "--scst-bleu-weight", "0.5", "--scst-meteor-weight", "2")
    task.load_dataset("train")
    criterion = task.build_criterion(cfg.criterion)
    pair, d = task._pairs["train"], task.tgt_dict
    langs = task.caption_langs("train", list(range(len(pair))))
    assert set(langs) > {"en"}  # the tiny data is multilingual
    en = [i for i, lang in enumerate(langs) if lang == "en"][:3]
    other = next(i for i, lang in enumerate(langs) if lang != "en")
    ds = task.datasets["train"]
    batch = ds.collater([ds[i] for i in en])
    ids = batch["id"].tolist()
    # candidates: a training caption of another photo and the photo's own (two per photo)
    cands = [t for i in ids for t in (pair.tgt[en[(en.index(i) + 1) % len(en)]], pair.tgt[i])]
    rewards, parts = criterion.rewards(batch, cands, 2)
    cider, refs = task.corpus_cider("train")
    hyps = ptb_tokenize([d.string(t, "sentencepiece") for t in cands])
    gts = {n: refs[i] for n, i in enumerate(i for i in ids for _ in range(2))}
    res = {n: [h] for n, h in enumerate(hyps)}
    bleu = Bleu(4).compute_score(gts, res, verbose=0)[1][3]
    meteor = Meteor().compute_score(gts, res)[1]
    ciders = cider.image_scores(hyps, [gts[n] for n in range(len(hyps))])
    expected = torch.tensor([c + 0.5 * b + 2 * m for c, b, m in zip(ciders, bleu, meteor)]).view(len(ids), 2)
    assert torch.allclose(rewards, expected.float(), atol=1e-5)
    assert parts == pytest.approx({"cider": sum(ciders), "bleu4": sum(bleu), "meteor": sum(meteor)})
    assert all(m > 0.5 for m in meteor[1::2])  # a photo's own caption is one of its references
    with pytest.raises(ValueError, match=rf"train sample {other} \(line {other + 1}\) is a '(de|fr|cs)' caption.*"
                                         "English resources only"):
        criterion.rewards(ds.collater([ds[other]]), [pair.tgt[other]], 1)


def test_scst_no_repeat_ngram_size_blocks_repeats_in_candidates_and_greedy_baseline(data):
    """--scst-no-repeat-ngram-size N: the candidates (and the greedy caption of --scst-baseline greedy)
    are decoded with the working n-gram blocker, as fairseq-generate --no-repeat-ngram-size N decodes
    at test time; an untrained model repeats bigrams without it."""
    from fairseq_plugins.generation.ngram_block import UnixNGramRepeatBlock

    def bigram_repeats(tokens):
        grams = list(zip(tokens[:-1], tokens[1:]))
        return len(grams) - len(set(grams))

    args = ("--image-root", data["images"], "--image-features", data["cache"], "--criterion", "unix_scst",
            "--scst-candidates", 3, "--dropout", "0")
    task, cfg = setup(data["bin"], *args)
    blocked_task, blocked_cfg = setup(data["bin"], *args, "--scst-no-repeat-ngram-size", 2)
    torch.manual_seed(0)
    model = task.build_model(cfg.model).eval()
    task.load_dataset("train")
    blocked_task.load_dataset("train")
    batch = batch_of(task, "train")
    repeats = {}
    for name, t, c in (("plain", task, cfg), ("blocked", blocked_task, blocked_cfg)):
        criterion = t.build_criterion(c.criterion)
        for greedy in (False, True):
            gen = criterion.generator(model, greedy=greedy)
            blocker = gen.repeat_ngram_blocker
            if name == "blocked":
                assert isinstance(blocker, UnixNGramRepeatBlock) and blocker.no_repeat_ngram_size == 2
            else:
                assert blocker is None
            hypos = t.inference_step(gen, [model], batch, prefix_tokens=None)
            repeats[name, greedy] = sum(bigram_repeats(h["tokens"].tolist()) for hs in hypos for h in hs)
    assert repeats["plain", False] > 0 and repeats["plain", True] > 0  # the untrained model repeats
    assert repeats["blocked", False] == repeats["blocked", True] == 0
    with pytest.raises(ValueError, match="--scst-no-repeat-ngram-size must be >= 0"):
        bad_task, bad_cfg = setup(data["bin"], *args, "--scst-no-repeat-ngram-size", -1)
        bad_task.build_criterion(bad_cfg.criterion)


def test_grouped_order_keeps_groups_together_sorted_by_their_longest_member():
    import numpy as np

    from fairseq_plugins.data.input_grouped_dataset import grouped_order

    lengths = np.array([5, 9, 3, 7, 4, 2, 8])
    groups = np.array([10, 10, 20, 20, 30, 30, 30])  # longest: 9, 7, 8
    order = grouped_order(lengths, groups, np.random.RandomState(0))
    assert order.tolist() == [2, 3, 5, 4, 6, 0, 1]
    with pytest.raises(ValueError, match="3 lengths for 2 group ids"):
        grouped_order(lengths[:3], groups[:2])


def test_group_by_photo_batches_a_photos_captions_together_and_encodes_each_photo_language_once(data):
    """--group-by-photo: whole (photo, language) groups per batch, ``duplicate_of`` marks the repeats,
    and the loss and its gradient equal those of encoding every caption on its own."""
    base = ["--image-root", data["images"], "--image-features", data["cache"], "--dropout", "0"]
    task, cfg = setup(data["bin"], *base, "--group-by-photo", "--max-tokens", 300)
    task.load_dataset("train")
    pair = task._pairs["train"]
    photos = [line.strip() for line in open(data["bin"] / "train.images.txt", encoding="utf-8")]
    key_of = [(photos[i], int(pair.src[i][0])) for i in range(len(pair))]
    itr = task.get_batch_iterator(task.datasets["train"], max_tokens=300, seed=1, epoch=1).next_epoch_itr(shuffle=False)
    batches = list(itr)
    assert sum(len(b["id"]) for b in batches) == len(pair)
    order = [i for b in batches for i in sorted(b["id"].tolist(), key=lambda i: (key_of[i], i))]
    runs = [k for j, k in enumerate(key_of[i] for i in order) if j == 0 or key_of[order[j - 1]] != k]
    assert len(runs) <= len(set(key_of)) + len(batches)  # a group is split only at a batch boundary
    b = max(batches, key=lambda b: len(b["id"]) - len({key_of[i] for i in b["id"].tolist()}))
    dup = b["net_input"]["duplicate_of"]
    ids = b["id"].tolist()
    assert [key_of[ids[int(j)]] for j in dup] == [key_of[i] for i in ids]
    assert len(set(dup.tolist())) == len({key_of[i] for i in ids}) < len(ids)

    torch.manual_seed(0)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    out = []
    for d in (dup, None):
        net = dict(b["net_input"], duplicate_of=d)
        model.zero_grad()
        loss, _, _ = criterion(model, dict(b, net_input=net))
        loss.backward()
        out.append((loss.detach(), model.encoder.core.modality.weight.grad.clone()))
    torch.testing.assert_close(out[0], out[1], atol=1e-5, rtol=1e-4)

    plain, _ = setup(data["bin"], *base)
    plain.load_dataset("train")
    ds = plain.datasets["train"]
    assert "duplicate_of" not in ds.collater([ds[i] for i in ids])["net_input"]
    with pytest.raises(ValueError, match="exclude --random-batches"):
        task.cfg.random_batches = True
        task.get_batch_iterator(task.datasets["train"], max_tokens=300, seed=1, epoch=1)
    scst, scst_cfg = setup(data["bin"], *base, "--group-by-photo", "--criterion", "unix_scst")
    with pytest.raises(ValueError, match="--group-by-photo"):
        scst.build_criterion(scst_cfg.criterion)


def test_group_by_photo_with_pixels_decodes_a_photo_once_for_its_captions(data, monkeypatch):
    """Pixels with --group-by-photo: the repeats of a photo reuse its transformed pixels (no new decode)."""
    from fairseq_plugins.data import image_pair_dataset

    decoded = []
    load = image_pair_dataset.load_image
    monkeypatch.setattr(image_pair_dataset, "load_image", lambda p, where="": decoded.append(p) or load(p, where))
    for flags, distinct in (([], False), (["--group-by-photo"], True)):
        task = pixel_task(data["bin"], data["images"], *flags)
        task.load_dataset("train")
        ds = task.datasets["train"]
        decoded.clear()
        items = [ds[i] for i in range(len(ds))]
        assert (len(decoded) == len(set(decoded))) is distinct and len(decoded) <= len(items)
        if distinct:
            first = {}
            for i, it in enumerate(items):
                p = ds.dataset.images.paths[i]
                assert it["image"] is first.setdefault(p, it["image"])  # the same tensor for every caption
            ds.dataset.set_input_groups(None)  # back to one decode per caption, nothing kept
            decoded.clear()
            assert ds[0]["image"] is not items[0]["image"] and decoded == [ds.dataset.images.paths[0]]


def test_beam_stop_option_and_deprecated_flag(data, caplog):
    """--beam-stop names the rule (unix_caption's default: fairseq); --best-beam-stop still works, with a warning."""
    import logging
    from argparse import Namespace

    from fairseq.sequence_generator import SequenceGenerator

    from fairseq_plugins.generation.best_stop import BestStopSequenceGenerator

    for flags, stop, expected, warned in [([], "fairseq", SequenceGenerator, False),
                                          (["--beam-stop", "best"], "best", BestStopSequenceGenerator, False),
                                          (["--best-beam-stop"], "best", BestStopSequenceGenerator, True)]:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            task, cfg = setup(data["bin"], "--image-features", data["cache"], *flags)
        assert task.beam_stop == stop
        assert any("--best-beam-stop is deprecated" in r.getMessage() for r in caplog.records) == warned
        model = task.build_model(cfg.model)
        assert type(task.build_generator([model], Namespace(beam=2))) is expected, flags

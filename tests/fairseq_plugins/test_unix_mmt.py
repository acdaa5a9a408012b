"""unix_mmt end to end: stock fairseq-train and fairseq-generate on a tiny generated corpus."""


import pytest
import torch

from unix.data.feature_cache import build_feature_cache
from unix.data.images import read_image_list
from tests.fairseq_plugins.commands import USER_DIR, run

TRAIN_ARGS = ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--optimizer", "adam",
              "--lr", "0.003", "--max-tokens", "500", "--no-progress-bar", "--log-format", "simple",
              "--log-interval", "1", "--num-workers", "0", "--seed", "1"]


def train(corpus, save, *extra, updates=6):
    return run(["fairseq-train", str(corpus / "bin"), "--user-dir", USER_DIR, "--task", "unix_mmt", "-s", "en",
                "-t", "de", "--arch", "unix_tiny", "--save-dir", str(save), "--max-update", str(updates),
                *TRAIN_ARGS, *extra])


def generate(corpus, ckpt, *extra):
    return run(["fairseq-generate", str(corpus / "bin"), "--user-dir", USER_DIR, "--task", "unix_mmt", "-s", "en",
                "-t", "de", "--path", str(ckpt), "--beam", "5", "--gen-subset", "test", "--max-tokens", "500",
                "--scoring", "sacrebleu", "--post-process", "sentencepiece", *extra])


@pytest.fixture(scope="module")
def pixel_run(tiny_corpus, tmp_path_factory):
    save = tmp_path_factory.mktemp("ck_pixels")
    train(tiny_corpus, save, "--image-root", str(tiny_corpus / "images"), "--image-encoder", "test_efficientnet")
    return save


def test_train_and_generate_with_pixels(tiny_corpus, pixel_run):
    out = generate(tiny_corpus, pixel_run / "checkpoint_last.pt", "--image-root", str(tiny_corpus / "images"))
    hyps = [l for l in out.stdout.splitlines() if l.startswith("D-")]
    assert len(hyps) == 12  # every test sentence, although 12 is not a multiple of 8
    assert "BLEU" in out.stdout and "Translated 12 sentences" in out.stderr
    # the language tag is in front of every source
    assert all(l.split("\t")[1].startswith("__de__") for l in out.stdout.splitlines() if l.startswith("S-"))


def test_resume_from_checkpoint_last(tiny_corpus, pixel_run):
    out = train(tiny_corpus, pixel_run, "--image-root", str(tiny_corpus / "images"), "--image-encoder",
                "test_efficientnet", updates=8)
    assert "Loaded checkpoint" in out.stderr + out.stdout
    assert "num_updates 8" in out.stderr + out.stdout


def test_train_and_generate_with_feature_cache(tiny_corpus, tmp_path):
    listed = read_image_list(str(tiny_corpus / "bin" / "train.images.txt"), str(tiny_corpus / "images"))
    paths = [p for p in listed if p]
    build_feature_cache(paths, str(tmp_path / "feats"), "test_efficientnet")
    save = tmp_path / "ck"
    train(tiny_corpus, save, "--image-root", str(tiny_corpus / "images"), "--image-features", str(tmp_path / "feats"))
    out = generate(tiny_corpus, save / "checkpoint_last.pt", "--image-root", str(tiny_corpus / "images"),
                   "--image-features", str(tmp_path / "feats"))
    assert out.stdout.count("\nD-") + out.stdout.startswith("D-") == 12


def test_text_only_training(tiny_corpus, tmp_path):
    train(tiny_corpus, tmp_path / "ck", updates=3)
    out = generate(tiny_corpus, tmp_path / "ck" / "checkpoint_last.pt")
    assert "Translated 12 sentences" in out.stderr


def load_pixel_run(tiny_corpus, pixel_run, n):
    """(models in eval mode, task, a batch of the first ``n`` test sentences) of the pixel run."""
    import fairseq_plugins  # noqa: F401  (registers the plugins)
    from fairseq import checkpoint_utils

    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(pixel_run / "checkpoint_last.pt")],
        arg_overrides={"data": str(tiny_corpus / "bin"), "image_root": str(tiny_corpus / "images")})
    task.load_dataset("test")
    ds = task.dataset("test")
    return [m.eval() for m in models], task, ds.collater([ds[i] for i in range(n)])


def test_beam_search_encodes_images_once(tiny_corpus, pixel_run):
    """One encoder pass per batch: beams reorder the encoder output, they do not re-encode."""
    models, task, sample = load_pixel_run(tiny_corpus, pixel_run, 6)
    model = models[0]
    assert sample["net_input"]["image_mask"].tolist().count(True) == 4
    from fairseq.dataclass.configs import GenerationConfig

    gen = task.build_generator(models, GenerationConfig(beam=5, max_len_b=20))
    image_encoder = model.encoder.core.image_encoder
    image_encoder.calls = 0  # counted by a hook: the model itself keeps no test counter
    image_encoder.register_forward_pre_hook(lambda module, args: setattr(module, "calls", module.calls + 1))
    with torch.no_grad():
        hypos = task.inference_step(gen, models, sample)
    assert len(hypos) == 6 and all(len(h) == 5 for h in hypos)
    assert image_encoder.calls == 1


def test_fairseq_model_is_the_core_model(tiny_corpus, pixel_run):
    import fairseq_plugins  # noqa: F401
    from fairseq import checkpoint_utils

    from unix import UnixModel

    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(pixel_run / "checkpoint_last.pt")],
        arg_overrides={"data": str(tiny_corpus / "bin"), "image_root": str(tiny_corpus / "images")})
    core = models[0].as_unix_model().eval()
    assert isinstance(core, UnixModel)
    task.load_dataset("valid")
    ds = task.dataset("valid")
    s = ds.collater([ds[i] for i in range(4)])
    ni = s["net_input"]
    with torch.no_grad():
        ref = models[0](**ni)[0]
        out = core(ni["src_tokens"], ni["prev_output_tokens"], images=ni.get("images"), image_mask=ni.get("image_mask"))
    torch.testing.assert_close(out, ref)


def test_mmt_results_writes_the_table_from_a_config(tiny_corpus, pixel_run, tmp_path):
    """unix-results mmt: averages epoch checkpoints, decodes right and shuffled images, scores."""
    import json

    from fairseq_plugins.cli import results as cli
    from unix.cli import score_mmt

    m30k = tmp_path / "data" / "multi30k"
    (m30k / "tok").mkdir(parents=True)
    test_de = (tiny_corpus / "raw" / "test.de").read_text()
    (m30k / "test_2016_flickr.de").write_text(test_de)
    (m30k / "tok" / "test_2016_flickr.lc.norm.tok.de").write_text(test_de.lower())
    config = tmp_path / "systems.json"
    config.write_text(json.dumps([
        {"name": "tiny (en-de)", "task": "unix_mmt", "src": "en", "tgt": "de", "checkpoints": "{RUNS}",
         "average": 2, "images": True, "generate_args": ["--image-root", "{IMAGES}", "--max-tokens", "500"]},
        {"name": "absent", "task": "translation", "src": "en", "tgt": "de", "checkpoints": "{RUNS}/nothing"},
        {"name": "still training", "task": "unix_mmt", "src": "en", "tgt": "de", "checkpoints": "{RUNS}",
         "updates": 10 ** 6}]))
    out = tmp_path / "RESULTS.md"
    cli.main(["mmt", "--config", str(config), "--data", str(tmp_path / "data"), "--bin", str(tiny_corpus / "bin"),
                      "--out", str(out), "--var", f"RUNS={pixel_run}", "--var", f"IMAGES={tiny_corpus / 'images'}"])
    rows = json.loads((tmp_path / "RESULTS.json").read_text())
    # skipped: the system without checkpoints, and the one whose run has not reached its "updates"
    assert [r["name"] for r in rows] == ["tiny (en-de)"]
    row = rows[0]
    n_with_image = sum(1 for line in (tiny_corpus / "bin" / "test.images.txt").read_text().splitlines() if line)
    assert row["all"]["n"] == 12 and row["with_image"]["n"] == row["shuffled"]["n"] == n_with_image
    # the table's numbers are those of score_mmt on the generate output it kept
    again = score_mmt.score(str(tmp_path / "eval" / "tiny_en-de.test.txt"), str(m30k / "test_2016_flickr.de"), "de",
                            str(m30k / "tok" / "test_2016_flickr.lc.norm.tok.de"))
    assert again["sacrebleu"]["bleu"] == row["all"]["sacrebleu"]["bleu"]
    text = out.read_text()
    assert "| tiny (en-de) |" in text and "published: Transformer-tiny" in text and "41.02" in text
    assert f"(n={n_with_image})" in text and "Do not edit by hand" in text
    assert "- absent: no checkpoints at" in text
    assert "- still training: training not finished (" in text and "of 1000000 updates" in text


@pytest.mark.parametrize("random_batches", [False, True])
def test_group_by_image_cuts_all_image_or_all_text_batches(tiny_corpus, random_batches):
    from fairseq_plugins.tasks.unix_mmt import UnixMMTConfig, UnixMMTTask

    def batches(group, epoch=1):
        cfg = UnixMMTConfig(data=str(tiny_corpus / "bin"), source_lang="en", target_lang="de",
                            image_root=str(tiny_corpus / "images"), train_subset="train",
                            random_batches=random_batches, group_by_image=group, dataset_impl=None,
                            required_seq_len_multiple=1)
        task = UnixMMTTask.setup_task(cfg)
        task.load_dataset("train")
        data = task.dataset("train")
        itr = task.get_batch_iterator(data, max_sentences=4, seed=1, epoch=epoch)
        has = [p is not None for p in data.images.paths]
        return [list(b) for b in itr.frozen_batches], has

    plain, has = batches(False)
    grouped, _ = batches(True)
    assert 0 < sum(has) < len(has)  # the corpus mixes sentences with and without an image
    mixed = [b for b in grouped if len({has[i] for i in b}) > 1]
    assert len(mixed) <= 1  # only the batch at the boundary between the groups may mix
    assert len([b for b in plain if len({has[i] for i in b}) > 1]) > len(mixed)
    assert sorted(i for b in grouped for i in b) == list(range(len(has)))  # every sentence once
    if random_batches:  # still a new order every epoch
        assert batches(True, epoch=2)[0] != grouped


def test_beam_scores_equal_teacher_forced_scores(tiny_corpus, pixel_run):
    """Every beam hypothesis' per-token scores equal a full (cache-free) forward pass over it.

    Beam search reorders the decoder cache at every step; a wrongly reordered cache would give a
    hypothesis the history of another beam, which this catches on every token of every beam.
    """
    from fairseq.dataclass.configs import GenerationConfig

    models, task, sample = load_pixel_run(tiny_corpus, pixel_run, 8)
    model = models[0]
    gen = task.build_generator(models, GenerationConfig(beam=5, max_len_b=12))
    core = model.as_unix_model().eval()
    net = sample["net_input"]
    eos = task.target_dictionary.eos()
    checked = 0
    with torch.no_grad():
        hypos = task.inference_step(gen, models, sample)
        for b, beams in enumerate(hypos):
            for h in beams:
                tokens = h["tokens"]  # (T,) ending in </s>
                prev = torch.cat([tokens.new_tensor([eos]), tokens[:-1]])[None]
                image_inputs = {k: net[k][b:b + 1] for k in ("images", "image_features", "image_mask")
                                if net.get(k) is not None}
                logits = core(net["src_tokens"][b:b + 1], prev, **image_inputs)
                lprobs = logits.float().log_softmax(-1)[0].gather(-1, tokens[:, None])[:, 0]
                assert torch.allclose(h["positional_scores"], lprobs, atol=1e-4), (b, tokens.tolist())
                checked += 1
    assert checked == 8 * 5


def test_pooled_backbone_stages_from_the_command_line(tiny_corpus, tmp_path):
    """--image-pool-stages reaches the core model: its visual tokens carry the extra channels."""
    import fairseq_plugins  # noqa: F401
    from fairseq import checkpoint_utils

    train(tiny_corpus, tmp_path, "--image-root", str(tiny_corpus / "images"), "--image-encoder",
          "test_efficientnet", "--image-pool-stages", "0,1", updates=2)
    models, _, _ = checkpoint_utils.load_model_ensemble_and_task(
        [str(tmp_path / "checkpoint_last.pt")],
        arg_overrides={"data": str(tiny_corpus / "bin"), "image_root": str(tiny_corpus / "images")})
    enc = models[0].encoder.core.image_encoder
    info = enc.backbone.feature_info
    assert enc.pool_stages == (0, 1)
    assert enc.feature_dim == enc.backbone.num_features + info[0]["num_chs"] + info[1]["num_chs"]


def test_gated_fusion_from_the_command_line(tiny_corpus, tmp_path):
    """--image-fusion gated: fairseq-train and fairseq-generate run; the model is the gated core model."""
    import fairseq_plugins  # noqa: F401
    from fairseq import checkpoint_utils

    images = ["--image-root", str(tiny_corpus / "images"), "--image-encoder", "test_efficientnet"]
    train(tiny_corpus, tmp_path, *images, "--image-fusion", "gated", updates=3)
    out = generate(tiny_corpus, tmp_path / "checkpoint_last.pt", "--image-root", str(tiny_corpus / "images"))
    assert "Translated 12 sentences" in out.stderr
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(tmp_path / "checkpoint_last.pt")],
        arg_overrides={"data": str(tiny_corpus / "bin"), "image_root": str(tiny_corpus / "images")})
    core = models[0].eval().encoder.core
    assert core.cfg.image_fusion == "gated" and core.image_gate is not None and not core.image_encoder.tokens
    task.load_dataset("test")
    ds = task.dataset("test")
    ni = ds.collater([ds[i] for i in range(6)])["net_input"]
    with torch.no_grad():
        fused = core(ni["src_tokens"], images=ni["images"], image_mask=ni["image_mask"])
        text = core(ni["src_tokens"])
    assert fused["out"].shape == text["out"].shape == (6, ni["src_tokens"].shape[1], core.cfg.embed_dim)
    has = ni["image_mask"]
    assert 0 < has.sum() < 6
    torch.testing.assert_close(fused["out"][~has], text["out"][~has], atol=0, rtol=0)
    assert (fused["out"][has] - text["out"][has]).abs().max() > 1e-4


def test_a_mean_pooled_cache_serves_gated_fusion_only(tiny_corpus, tmp_path):
    """--mean-pool caches: gated fusion trains and decodes on them; visual tokens refuse them by name."""
    listed = read_image_list(str(tiny_corpus / "bin" / "train.images.txt"), str(tiny_corpus / "images"))
    build_feature_cache([p for p in listed if p], str(tmp_path / "mean"), "test_efficientnet", mean_pool=True)
    images = ["--image-root", str(tiny_corpus / "images"), "--image-features", str(tmp_path / "mean")]
    train(tiny_corpus, tmp_path / "gated", *images, "--image-fusion", "gated", updates=2)
    out = generate(tiny_corpus, tmp_path / "gated" / "checkpoint_last.pt", *images)
    assert "Translated 12 sentences" in out.stderr
    with pytest.raises(AssertionError, match="holds one mean-pooled vector per image"):
        train(tiny_corpus, tmp_path / "tokens", *images, updates=2)

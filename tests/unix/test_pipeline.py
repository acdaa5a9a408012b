"""unix.pipeline on tiny models: fairseq-generate's strings and scores, inputs of every kind, errors by name."""

import math

import numpy as np
import pytest
import torch

from tests.fairseq_plugins.commands import USER_DIR, run
from tests.unix.model_fixtures import make_checkpoint
from unix.data.images import ImageError
from unix.data.inputs import InputError
from unix.data.tokenizer import UnknownLanguageError
from unix.export import export
from unix.pipeline import Hyp, load

pytest.importorskip("unix.generation.beam_search")

PIXELS = {"image_encoder": "test_efficientnet"}


@pytest.fixture(scope="module")
def trained_mmt(tiny_corpus, tmp_path_factory):
    """An MMT model trained by fairseq-train (40 updates, pixels), its fairseq-generate output and export."""
    root = tmp_path_factory.mktemp("pipeline_mmt")
    common = [tiny_corpus / "bin", "--user-dir", USER_DIR, "--task", "unix_mmt", "-s", "en", "-t", "de",
              "--image-root", tiny_corpus / "images"]
    run(["fairseq-train", *common, "--arch", "unix_tiny", "--image-encoder", "test_efficientnet",
         "--save-dir", root / "ck", "--max-update", "40", "--criterion", "label_smoothed_cross_entropy",
         "--label-smoothing", "0.1", "--optimizer", "adam", "--lr", "0.003", "--max-tokens", "500",
         "--no-progress-bar", "--log-format", "simple", "--num-workers", "0", "--seed", "1",
         "--no-epoch-checkpoints", "--no-save-optimizer-state"])
    gen = run(["fairseq-generate", *common, "--path", root / "ck" / "checkpoint_last.pt", "--beam", "4",
               "--lenpen", "0.7", "--gen-subset", "test", "--max-tokens", "500", "--post-process",
               "sentencepiece", "--nbest", "2"]).stdout
    export(str(root / "ck" / "checkpoint_last.pt"), str(root / "model"))
    return root / "model", gen


def test_translate_gives_fairseq_generate_strings_and_scores(trained_mmt, tiny_corpus):
    model_dir, gen = trained_mmt
    hyps = {}
    for line in gen.splitlines():
        if line.startswith("H-"):
            idx, score, text = line.split("\t")
            hyps.setdefault(int(idx[2:]), []).append((text, float(score)))
    sentences = (tiny_corpus / "raw" / "test.en").read_text().splitlines()
    names = (tiny_corpus / "bin" / "test.images.txt").read_text().splitlines()
    images = [str(tiny_corpus / "images" / n) if n else None for n in names]
    assert len(hyps) == len(sentences) == 12 and any(images) and not all(images)
    m = load(str(model_dir))
    out = m.translate(sentences, images=images, src="en", tgt="de", beam=4, lenpen=0.7, nbest=2,
                      return_scores=True, batch_size=5)
    for i, nbest in enumerate(out):
        assert [h.text for h in nbest] == [t for t, _ in hyps[i]], i
        # fairseq-generate prints scores in base 2
        assert [h.score / math.log(2) for h in nbest] == pytest.approx([s for _, s in hyps[i]], abs=1e-5)
    # the default options of the model directory are fairseq-generate's (beam 5, lenpen 1)
    assert m.config["generation"]["translate"]["beam"] == 5


@pytest.fixture(scope="module")
def trained_caption(tmp_path_factory):
    """A caption model trained by fairseq-train on a feature cache (a backbone with a weights file), its
    fairseq-generate output on test_en and test_de, and its export (which runs that backbone on photos)."""
    from tests.caption_data import prepare_tiny
    from unix.data.feature_cache import build_feature_cache
    from unix.models.image_encoder import create_backbone

    root = tmp_path_factory.mktemp("pipeline_caption_ft")
    d = prepare_tiny(root)
    torch.manual_seed(7)
    torch.save(create_backbone("test_efficientnet").state_dict(), root / "backbone.pth")
    build_feature_cache(sorted(str(p) for p in d["images"].iterdir()), str(root / "cache"), "test_efficientnet",
                        str(root / "backbone.pth"))
    common = [d["bin"], "--user-dir", USER_DIR, "--task", "unix_caption", "--image-root", d["images"],
              "--image-features", root / "cache"]
    run(["fairseq-train", *common, "--arch", "unix_tiny", "--criterion", "label_smoothed_cross_entropy",
         "--label-smoothing", "0.1", "--optimizer", "adam", "--lr", "0.005", "--dropout", "0.1", "--batch-size", "16",
         "--max-update", "60", "--save-dir", root / "ck", "--no-epoch-checkpoints", "--no-progress-bar",
         "--log-format", "simple", "--num-workers", "0", "--seed", "1", "--no-save-optimizer-state",
         "--valid-subset", "valid_en"])
    gens = {lang: run(["fairseq-generate", *common, "--path", root / "ck" / "checkpoint_last.pt",
                       "--gen-subset", f"test_{lang}", "--beam", "3", "--max-len-b", "40", "--no-repeat-ngram-size",
                       "2", "--batch-size", "2", "--post-process", "sentencepiece"]).stdout for lang in ("en", "de")}
    export(str(root / "ck" / "checkpoint_last.pt"), str(root / "model"))
    return d, root / "model", gens


def test_caption_gives_fairseq_generate_captions_from_raw_photos(trained_caption):
    """fairseq-generate read cached fp16 features; the pipeline runs the backbone on the photos (the cache's
    weights file, stored in the model directory) with the model directory's defaults (beam 3, no-repeat 2)."""
    d, model_dir, gens = trained_caption
    m = load(str(model_dir))
    assert m.image["trained_on"] == "feature_cache" and m.config["generation"]["caption"]["beam"] == 3
    for lang, gen in gens.items():
        hyps = {}
        for line in gen.splitlines():
            if line.startswith("H-"):
                idx, score, text = line.split("\t")
                hyps[int(idx[2:])] = (text, float(score))
        names = (d["bin"] / f"test_{lang}.images.txt").read_text().splitlines()
        assert sorted(hyps) == list(range(len(names))) and len(names) >= 3
        out = m.caption([str(d["images"] / n) for n in names], lang=lang, return_scores=True)
        assert [h.text for h in out] == [hyps[i][0] for i in range(len(names))], lang
        assert [h.score / math.log(2) for h in out] == pytest.approx([hyps[i][1] for i in range(len(names))],
                                                                     abs=1e-4)
    assert len({h for h in m.caption([str(d["images"] / n) for n in names], lang="en")}) > 1


@pytest.fixture(scope="module")
def caption_model(tiny_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline_caption")
    make_checkpoint(root / "ck.pt", tiny_corpus / "bin", {"_name": "unix_caption"},
                    model_options=dict(PIXELS, embed_proj_dim=8))
    export(str(root / "ck.pt"), str(root / "model"), generation={"caption": {"max_len_b": 6}})
    return load(str(root / "model"))


def test_caption_results_scores_and_nbest(caption_model, tiny_corpus):
    photos = [str(tiny_corpus / "images" / f"{c}.png") for c in ("red", "blue", "green")]
    texts = caption_model.caption(photos, lang="de")
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    scored = caption_model.caption(photos, lang="de", return_scores=True)
    assert [h.text for h in scored] == texts and all(isinstance(h, Hyp) and h.score < 0 for h in scored)
    nbest = caption_model.caption(photos, lang="de", beam=4, nbest=3, return_scores=True)
    assert all(len(n) == 3 and n[0].score >= n[1].score >= n[2].score for n in nbest)
    # batching does not change a result; neither does the order of the inputs
    assert caption_model.caption(photos[::-1], lang="de", batch_size=1) == texts[::-1]
    # the language tag reaches the model: another language, other scores
    en = caption_model.caption(photos, lang="en", return_scores=True)
    assert all(abs(a.score - b.score) > 1e-4 for a, b in zip(en, scored))


def test_feature_memo_runs_the_backbone_once_per_photo(caption_model, tiny_corpus, monkeypatch):
    photos = [str(tiny_corpus / "images" / f"{c}.png") for c in ("red", "blue", "green")]
    want = {lang: caption_model.caption(photos, lang=lang, return_scores=True) for lang in ("en", "de")}
    calls = []
    forward = caption_model.backbone.forward_features
    monkeypatch.setattr(caption_model.backbone, "forward_features", lambda x: calls.append(len(x)) or forward(x))
    caption_model.feature_memo = {}
    try:
        got_en = caption_model.caption(photos[:2], lang="en", return_scores=True)  # 2 photos computed
        got = {lang: caption_model.caption(photos, lang=lang, return_scores=True) for lang in ("en", "de")}
    finally:
        caption_model.feature_memo = None
    assert sum(calls) == 3  # the third photo once more, then nothing
    assert [h.text for h in got_en] == [h.text for h in want["en"][:2]]
    for lang in ("en", "de"):
        assert [h.text for h in got[lang]] == [h.text for h in want[lang]]
        assert [h.score for h in got[lang]] == pytest.approx([h.score for h in want[lang]], abs=1e-6)


def test_any_image_input_gives_the_same_caption(caption_model, tiny_corpus, tmp_path):
    from PIL import Image

    path = tiny_corpus / "images" / "red.png"
    rgb = Image.open(path).convert("RGB")
    want = caption_model.caption([str(path)], lang="en", return_scores=True)[0]
    rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "red.gif")  # palette GIF, exact colours
    rgba = rgb.convert("RGBA")
    rgba.save(tmp_path / "red_rgba.png")
    arr = np.asarray(rgb)
    inputs = [path, rgb, arr, arr.astype(np.float32) / 255.0, str(tmp_path / "red.gif"),
              str(tmp_path / "red_rgba.png"), rgba]
    got = caption_model.caption(inputs, lang="en", return_scores=True)
    for i, h in enumerate(got):
        assert h.text == want.text and h.score == pytest.approx(want.score, abs=1e-5), i
    # grayscale and 16-bit grayscale photos are read (as gray RGB) and captioned
    gray = rgb.convert("L")
    gray.save(tmp_path / "gray.png")
    Image.fromarray((np.asarray(gray).astype(np.uint16) * 257)).save(tmp_path / "gray16.png")
    g = caption_model.caption([str(tmp_path / "gray.png"), str(tmp_path / "gray16.png"), np.asarray(gray)],
                              lang="en", return_scores=True)
    assert g[0].text == g[1].text == g[2].text and g[0].score == pytest.approx(g[1].score, abs=1e-5)


def test_bad_inputs_are_named(caption_model, tiny_corpus, tmp_path):
    good = str(tiny_corpus / "images" / "red.png")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff not a jpeg")
    with pytest.raises(ImageError, match=r"input 1: image not found: .*missing\.jpg"):
        caption_model.caption([good, str(tmp_path / "missing.jpg")])
    with pytest.raises(ImageError, match=r"input 0: cannot read image .*corrupt\.jpg"):
        caption_model.caption([str(corrupt)])
    with pytest.raises(ImageError, match=r"input 0: an image array must be"):
        caption_model.caption([np.zeros((4, 4, 2), dtype=np.uint8)])
    with pytest.raises(UnknownLanguageError,
                       match=r"caption language 'cs': this model \(unix_caption\) knows de, en, fr"):
        caption_model.caption([good], lang="cs")
    # with on_error, the bad inputs are reported by index and the others still captioned
    errors = []
    out = caption_model.caption([good, str(tmp_path / "missing.jpg"), str(corrupt), good], lang="en",
                                on_error=lambda i, e: errors.append(i), names=["a", "b", "c", "d"], batch_size=3)
    assert errors == [1, 2] and out[1] is None and out[2] is None and out[0] == out[3] and out[0]


def test_translate_errors_are_named(trained_mmt, tiny_corpus):
    m = load(str(trained_mmt[0]))
    with pytest.raises(InputError, match=r"sentence 1: empty text"):
        m.translate(["the red dog is here .", "  "], src="en", tgt="de")
    with pytest.raises(UnknownLanguageError, match=r"language pair en-fr: this model \(unix_mmt\) translates en-de"):
        m.translate(["the red dog is here ."], src="en", tgt="fr")
    with pytest.raises(InputError, match=r"2 sentences but 1 images"):
        m.translate(["a", "b"], images=[None])
    with pytest.raises(ValueError, match=r"this model \(unix_mmt\) does not caption"):
        m.caption([str(tiny_corpus / "images" / "red.png")], lang="de")


def test_embeddings(caption_model, tiny_corpus):
    photos = [str(tiny_corpus / "images" / f"{c}.png") for c in ("red", "blue")]
    img = caption_model.embed_images(photos)
    txt = caption_model.embed_texts(["the red dog", "the blue cat", "a car"], lang="en")
    assert img.shape == (2, 8) and txt.shape == (3, 8)
    assert torch.allclose(img.norm(dim=-1), torch.ones(2)) and torch.allclose(txt.norm(dim=-1), torch.ones(3))
    # the same as the model's own pooled embedding of the backbone's features
    feats, _, _ = caption_model._features(photos, [0, 1], None, None)
    with torch.no_grad():
        assert torch.allclose(img, caption_model.model.encode_image(features=feats))
    one = caption_model.embed_texts(["a car"], lang="en")  # right padding does not change an embedding
    assert torch.allclose(one[0], txt[2], atol=1e-6)


def test_answer_closed_set_only_gives_listed_answers(tiny_corpus, tmp_path):
    from unix.data.tokenizer import SpmTokenizer

    spm = SpmTokenizer(str(tiny_corpus / "bin" / "spm.model"))
    answers = tmp_path / "answers.spm.txt"  # as unix-prepare-easy-vqa writes it: pieces
    answers.write_text("".join(spm.encode_line(a) + "\n" for a in ("red", "blue", "green")))
    make_checkpoint(tmp_path / "ck.pt", tiny_corpus / "bin", {"_name": "unix_vqa", "answer_lang": "en",
                                                             "constraint_answers": str(answers)},
                    model_options=PIXELS)
    export(str(tmp_path / "ck.pt"), str(tmp_path / "m"), generation={"answer": {"max_len_b": 5}})
    m = load(str(tmp_path / "m"))
    photos = [str(tiny_corpus / "images" / f"{c}.png") for c in ("red", "blue", "yellow")]
    questions = ["what color is it ?", "which color ?", "what is the color of the thing ?"]
    own = m.answer(photos, questions, answers=True, nbest=3, return_scores=True)
    assert all(sorted(h.text for h in n) == ["blue", "green", "red"] for n in own)
    given = m.answer(photos, questions, answers=["red", "yellow"])
    assert set(given) <= {"red", "yellow"}
    free = m.answer(photos, questions)
    assert len(free) == 3
    with pytest.raises(InputError, match=r"answer 1: 'zz€' has pieces outside the model's vocabulary: €"):
        m.answer(photos, questions, answers=["red", "zz€"])
    with pytest.raises(InputError, match=r"question 1: empty text"):
        m.answer(photos[:2], ["what color ?", ""])
    with pytest.raises(InputError, match=r"input 0: no image"):
        m.answer([None], ["what color ?"])


def test_tokenized_protocol_preprocessing(tiny_corpus, tmp_path):
    """lowercase + Moses tokenization + subword-nmt BPE in, de-BPE + Moses detokenization out."""
    from subword_nmt.learn_bpe import learn_bpe

    from unix.data.dictionary import Dictionary
    from unix.data.inputs import TextCodec

    with open(tiny_corpus / "raw" / "train.en") as fin, open(tmp_path / "bpe.codes", "w") as fout:
        learn_bpe(fin, fout, 20)
    (tmp_path / "dict.txt").write_text("".join(f"{w} 1\n" for w in ["the", "dog", "do@@", "g", "is", "here", "."]))
    d = Dictionary.load(str(tmp_path / "dict.txt"))
    codec = TextCodec(str(tmp_path), d, {"lowercase": True, "moses_tokenize": "en", "bpe": "bpe.codes"})
    assert codec.pieces("The RED dog's here.", "en") == "the red dog '@@ s here ."
    assert codec.encode("The dog  is here.", "en") == [d.index(w) for w in ("the", "dog", "is", "here", ".")]
    assert codec.decode([d.index("the"), d.index("do@@"), d.index("g"), d.index("is"), d.index("here"),
                         d.index("."), d.eos()], "en") == "the dog is here."


def test_the_published_protocol_preprocessing_is_the_tok_release(tmp_path):
    """The manifest's preprocess entry makes raw text into the tok/ release's tokens (escaped quotes and
    apostrophes, normalized punctuation), and the output is unescaped again."""
    from unix.data.bpe import multi30k_tokenize
    from unix.data.dictionary import Dictionary
    from unix.data.inputs import TextCodec

    (tmp_path / "bpe.codes").write_text("#version: 0.2\nm a\nma n</w>\n")
    (tmp_path / "dict.txt").write_text("".join(f"{w} 1\n" for w in ["a", "man", "&apos;s", "&quot;", "hat", "."]))
    d = Dictionary.load(str(tmp_path / "dict.txt"))
    pre = {"normalize_punctuation": True, "lowercase": True, "moses_tokenize": "en", "moses_escape": True,
           "bpe": "bpe.codes"}
    codec = TextCodec(str(tmp_path), d, pre)
    raw = 'A  man\'s „HAT“.'
    assert codec.tokenize(raw, "en") == multi30k_tokenize(raw, "en") == "a man &apos;s &quot; hat . &quot;"  # en: '".' -> '."' 
    assert codec.pieces(raw, "en").split()[:2] == ["a", "man"]  # the BPE of the codes file ("m a", "ma n</w>")
    assert codec.decode([d.index(w) for w in ("a", "man", "&apos;s", "&quot;", "hat", "&quot;", ".")] + [d.eos()],
                        "en") == 'a man\'s "hat".'


def test_a_lone_input_is_refused_and_a_4d_array_is_a_batch(caption_model, tiny_corpus):
    from PIL import Image

    path = tiny_corpus / "images" / "red.png"
    with pytest.raises(TypeError, match=r"images: give a list \(the methods are batched\)"):
        caption_model.caption(str(path))
    arr = np.asarray(Image.open(path).convert("RGB"))
    assert caption_model.caption(np.stack([arr, arr])) == caption_model.caption([str(path)]) * 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_gives_the_cpu_captions(caption_model, tiny_corpus):
    photos = [str(tiny_corpus / "images" / f"{c}.png") for c in ("red", "blue", "green")]
    gpu = load(caption_model.model_dir, device="cuda")
    want = caption_model.caption(photos, lang="de", return_scores=True)
    got = gpu.caption(photos, lang="de", return_scores=True)
    assert [h.text for h in got] == [h.text for h in want]
    assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-3)

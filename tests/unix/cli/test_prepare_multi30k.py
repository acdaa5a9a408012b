"""unix-prepare-multi30k on a slice of the real data (skipped without ../shared/data)."""

import pytest

from unix.cli import prepare_multi30k
from tests.conftest import SHARED_DATA, requires_shared_data


@requires_shared_data("multi30k")
@requires_shared_data("flickr8k", "images")
def test_prepare_slice(tmp_path):
    out = tmp_path / "bin"
    prepare_multi30k.main(["--data", str(SHARED_DATA), "--out", str(out), "--pairs", "en-de",
                           "--langs", "en", "de", "--vocab-size", "800", "--max-lines", "200"])
    for split in ("train", "valid", "test"):
        for lang in ("en", "de"):
            assert (out / f"{split}.en-de.{lang}.bin").exists()
        lines = (out / f"{split}.images.txt").read_text().splitlines()
        assert len(lines) == 200
        # Multi30K names map to Flickr8k files by their leading number
        found = [l for l in lines if l]
        assert found and all(l.endswith(".jpg") and (SHARED_DATA / "flickr8k" / "images" / l).exists() for l in found)
    names = (SHARED_DATA / "multi30k" / "image_splits" / "train.txt").read_text().splitlines()[:200]
    mapped = (out / "train.images.txt").read_text().splitlines()
    for n, m in zip(names, mapped):
        if m:
            assert m.split("_")[0] == n.split(".")[0]
    vocab = (out / "dict.txt").read_text().split("\n")
    assert "__en__ 1" in vocab and "__de__ 1" in vocab


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="Multi30K not found"):
        prepare_multi30k.main(["--data", str(tmp_path), "--out", str(tmp_path / "o")])


def _fake_tree(root):
    """A Multi30K/Flickr8k tree with 4 train photos, 2 of them in Flickr8k's dev / test splits."""
    (root / "multi30k" / "image_splits").mkdir(parents=True)
    (root / "flickr8k" / "images").mkdir(parents=True)
    for n in ("11", "22", "33", "44", "55"):
        (root / "flickr8k" / "images" / f"{n}_x.jpg").write_bytes(b"")
    (root / "multi30k" / "image_splits" / "train.txt").write_text("11.jpg\n22.jpg\n99.jpg\n33.jpg\n44.jpg\n22.jpg\n")
    for stem in ("val", "test_2016_flickr"):
        (root / "multi30k" / "image_splits" / f"{stem}.txt").write_text("22.jpg\n55.jpg\n")
    (root / "flickr8k" / "dev_images.txt").write_text("22_x.jpg\n")
    (root / "flickr8k" / "test_images.txt").write_text("44_x.jpg\n55_x.jpg\n")


def test_hold_out_flickr8k_eval_photos_blanks_only_training_lines(tmp_path):
    _fake_tree(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    hold_out = prepare_multi30k.flickr8k_eval_photos(str(tmp_path))
    assert hold_out == {"22_x.jpg", "44_x.jpg", "55_x.jpg"}
    found = prepare_multi30k.write_image_lists(str(tmp_path), str(out), hold_out=hold_out)
    assert (out / "train.images.txt").read_text().split("\n") == ["11_x.jpg", "", "", "33_x.jpg", "", "", ""]
    assert (out / "valid.images.txt").read_text().split("\n") == ["22_x.jpg", "55_x.jpg", ""]  # evaluation: kept
    assert found == {"train": 2, "valid": 2, "test": 2}
    prepare_multi30k.write_image_lists(str(tmp_path), str(out))  # default: every available photo
    assert (out / "train.images.txt").read_text().split("\n") == ["11_x.jpg", "22_x.jpg", "", "33_x.jpg", "44_x.jpg",
                                                                   "22_x.jpg", ""]


def test_hold_out_without_split_lists_is_a_clear_error(tmp_path):
    _fake_tree(tmp_path)
    (tmp_path / "flickr8k" / "test_images.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test_images.txt"):
        prepare_multi30k.flickr8k_eval_photos(str(tmp_path))


TOK = {  # a tiny tok/ release: lowercased, tokenized, escaped like Multi30K's
    "en": ["a man in a red shirt plays with a dog .", "two dogs play in the snow .", "a woman rides a bike .",
           "a man plays a guitar &quot; outside &quot; .", "the dog runs in the park .", "a boy plays in the snow ."],
    "de": ["ein mann in einem roten hemd spielt mit einem hund .", "zwei hunde spielen im schnee .",
           "eine frau fährt fahrrad .", "ein mann spielt gitarre &quot; draußen &quot; .",
           "der hund rennt im park .", "ein junge spielt im schnee ."],
}


def _fake_tok_tree(root):
    _fake_tree(root)
    tok = root / "multi30k" / "tok"
    tok.mkdir()
    for lang, sents in TOK.items():
        (tok / f"train.lc.norm.tok.{lang}").write_text("\n".join(sents) + "\n", encoding="utf-8")
        for stem in ("val", "test_2016_flickr"):  # 2 lines, as the fake image lists
            (tok / f"{stem}.lc.norm.tok.{lang}").write_text("\n".join(sents[3:5]) + "\n", encoding="utf-8")


def _decode(out, split, lang, dict_name):
    from fairseq.data import Dictionary, data_utils

    d = Dictionary.load(str(out / dict_name))
    ds = data_utils.load_indexed_dataset(str(out / f"{split}.en-de.{lang}"), d)
    return [d.string(ds[i][:-1], "subword_nmt") for i in range(len(ds))], [d.string(ds[i][:-1]) for i in range(len(ds))]


def test_tok_bpe_protocol(tmp_path):
    """--protocol tok-bpe: subword-nmt codes as the CLI learns them, every split BPE-encoded and binarized
    with one joined dictionary, dict.txt = that dictionary + the language tags, a manifest."""
    import json
    import subprocess
    import sys

    _fake_tok_tree(tmp_path)
    out = tmp_path / "bin"
    prepare_multi30k.main(["--protocol", "tok-bpe", "--data", str(tmp_path), "--out", str(out), "--pairs", "en-de",
                           "--bpe-merges", "30", "--workers", "1"])
    tok = tmp_path / "multi30k" / "tok"
    # the codes are those of `cat train.en train.de | subword-nmt learn-bpe -s 30`
    joined = (tok / "train.lc.norm.tok.en").read_text() + (tok / "train.lc.norm.tok.de").read_text()
    cli = subprocess.run([sys.executable, "-c", "from subword_nmt.subword_nmt import main; main()", "learn-bpe",
                          "-s", "30"], input=joined,
                         capture_output=True, text=True, check=True).stdout
    codes = (out / "bpe.codes").read_text()
    assert codes == cli and codes.startswith("#version: 0.2\n") and len(codes.splitlines()) == 31
    # binarized text: BPE removed, it is the tok/ text line for line; some words were split
    for split, stem in (("train", "train"), ("valid", "val"), ("test", "test_2016_flickr")):
        for lang in ("en", "de"):
            text, pieces = _decode(out, split, lang, "dict.txt")
            assert text == (tok / f"{stem}.lc.norm.tok.{lang}").read_text().splitlines()
    assert any("@@" in p for p in _decode(out, "train", "de", "dict.txt")[1])
    # one joined dictionary; dict.txt adds the four language tags at the end (same indices before them)
    plain = (out / "dict.en.txt").read_text()
    assert plain == (out / "dict.de.txt").read_text()
    assert (out / "dict.txt").read_text() == plain + "__en__ 1\n__de__ 1\n__fr__ 1\n__cs__ 1\n"
    assert plain.splitlines()[0] == ". 12"  # counted on both sides: 6 English + 6 German train lines
    assert len((out / "train.images.txt").read_text().splitlines()) == 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["protocol"] == "tok-bpe" and manifest["pair"] == "en-de"
    assert manifest["preprocess"] == {"normalize_punctuation": True, "lowercase": True, "moses_tokenize": "en",
                                      "moses_escape": True, "bpe": "bpe.codes"}
    assert manifest["bpe"]["merges"] == 30 and manifest["bpe"]["codes"] == "bpe.codes"
    assert manifest["sources"]["test.de"] == "multi30k/tok/test_2016_flickr.lc.norm.tok.de"
    assert manifest["lines"] == {"train": 6, "valid": 2, "test": 2}
    assert manifest["dictionary"]["symbols"] == len(plain.splitlines()) + 4


def test_tok_bpe_takes_one_pair_and_needs_the_tok_release(tmp_path, capsys):
    with pytest.raises(SystemExit):
        prepare_multi30k.main(["--protocol", "tok-bpe", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                               "--pairs", "en-de", "en-fr"])
    assert "one pair per --out" in capsys.readouterr().err
    _fake_tree(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"missing Multi30K tokenized file .*tok/train.lc.norm.tok.en"):
        prepare_multi30k.main(["--protocol", "tok-bpe", "--data", str(tmp_path), "--out", str(tmp_path / "o")])


@requires_shared_data("multi30k", "tok")
@requires_shared_data("flickr8k", "images")
def test_tok_bpe_slice_of_the_real_data(tmp_path):
    out = tmp_path / "bin"
    prepare_multi30k.main(["--protocol", "tok-bpe", "--data", str(SHARED_DATA), "--out", str(out), "--pairs", "en-fr",
                           "--max-lines", "150", "--workers", "1"])
    text, _ = _decode_pair(out, "test", "fr")
    ref = (SHARED_DATA / "multi30k" / "tok" / "test_2016_flickr.lc.norm.tok.fr").read_text().splitlines()[:150]
    # BPE removed, the binarized test references are the tok/ references, except where a character
    # that the 150 training lines never had became <unk> in the joined dictionary
    known = [(h, r.strip()) for h, r in zip(text, ref) if "<unk>" not in h]
    assert len(text) == 150 and len(known) >= 75 and all(h == r for h, r in known)
    assert len((out / "test.images.txt").read_text().splitlines()) == 150


def _decode_pair(out, split, lang):
    from fairseq.data import Dictionary, data_utils

    d = Dictionary.load(str(out / "dict.txt"))
    ds = data_utils.load_indexed_dataset(str(out / f"{split}.en-fr.{lang}"), d)
    return [d.string(ds[i][:-1], "subword_nmt") for i in range(len(ds))], d

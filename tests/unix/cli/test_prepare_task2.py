"""unix-prepare-task2 on a fake Multi30K tree: back-translation source, Task 1 + synthetic pairs, caption stream."""

import json

from tests.unix.cli.test_prepare_multi30k import _fake_tok_tree
from unix.cli import prepare_task2, prepare_multi30k
from unix.data.bpe import load_bpe, multi30k_tokenize

# Task 2 German captions of the 6 train lines (photos 11, 22, 99, 33, 44, 22; 22 is also a val photo)
TASK2_DE = ['Ein Hund läuft im "Park".', "Zwei Hunde.", "Ein Mann fährt Fahrrad.", "Eine Frau spielt Gitarre.",
            "", "Ein Junge im Schnee."]


def _tree(root):
    _fake_tok_tree(root)
    caps = root / "multi30k" / "captions"
    caps.mkdir()
    (caps / "train_images.txt").write_text((root / "multi30k" / "image_splits" / "train.txt").read_text())
    for k in range(1, 6):
        (caps / f"train.{k}.de").write_text("\n".join(f"{c} {k}" if c else "" for c in TASK2_DE) + "\n")
    prepare_multi30k.main(["--protocol", "tok-bpe", "--data", str(root), "--out", str(root / "pair"), "--pairs",
                           "en-de", "--bpe-merges", "30", "--workers", "1"])
    return root / "pair"


def _binarized(path, dict_path):
    from fairseq.data import Dictionary, data_utils

    d = Dictionary.load(str(dict_path))
    ds = data_utils.load_indexed_dataset(str(path), d)
    return [d.string(ds[i][:-1]) for i in range(len(ds))]


def _unk(lines, dict_path):
    """``lines`` as the dictionary binarizes them (pieces it lacks -> <unk>; the fake vocabulary is tiny)."""
    have = {line.split(" ")[0] for line in dict_path.read_text(encoding="utf-8").splitlines()}
    return [" ".join(w if w in have else "<unk>" for w in line.split()) for line in lines]


def test_source_then_assemble(tmp_path, caplog):
    pair = _tree(tmp_path)
    bt = tmp_path / "bt"
    assert prepare_task2.main(["bt-source", "--data", str(tmp_path), "--pair-data", str(pair), "--lang", "de",
                                          "--out", str(bt), "--workers", "1"]) == 0
    # captions of photo 22 (a val photo, twice in the list) and the empty ones are left out: 3 photos x 5
    bpe = load_bpe(str(pair / "bpe.codes"))
    want = [bpe.process_line(multi30k_tokenize(f"{c} {k}", "de")).strip()
            for k in range(1, 6) for c, photo in zip(TASK2_DE, ["11", "22", "99", "33", "44", "22"])
            if c and photo != "22"]
    mono = (bt / "mono.bpe.de").read_text().splitlines()
    assert mono == want and len(mono) == 15 and "&quot;" in mono[0]
    images = (bt / "mono.images.txt").read_text().splitlines()
    assert images[:3] == ["11_x.jpg", "", "33_x.jpg"] and len(images) == 15  # photo 99 is not in Flickr8k
    assert _binarized(bt / "test.de-en.de", bt / "dict.de.txt") == _unk(mono, bt / "dict.de.txt")
    assert json.loads((bt / "manifest.json").read_text())["sentences"] == 15

    # a De->En output in fairseq-generate's order (not the file's), segmented differently; one empty hypothesis
    hyps = {i: f"a d@@ og run@@ s {i}" for i in range(15)}
    hyps[4] = ""
    lines = []
    for i in reversed(range(15)):
        lines += [f"S-{i}\t{mono[i]}", f"H-{i}\t-0.5\t{hyps[i]}", f"D-{i}\t-0.5\t{hyps[i]}"]
    (bt / "generate.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert prepare_task2.main(["bt-assemble", "--data", str(tmp_path), "--pair-data", str(pair),
                                          "--bt-data", str(bt), "--generated", str(bt / "generate.txt"),
                                          "--real-copies", "2", "--out", str(out), "--workers", "1"]) == 0
    real_src = _binarized(pair / "train.en-de.en", pair / "dict.en.txt")
    real_tgt = _binarized(pair / "train.en-de.de", pair / "dict.en.txt")
    src = _binarized(out / "train.en-de.en", out / "dict.en.txt")
    tgt = _binarized(out / "train.en-de.de", out / "dict.en.txt")
    keep = [i for i in range(15) if i != 4]
    d = out / "dict.en.txt"
    # tagged back-translation (default): every synthetic source starts with <BT>, the last symbol of the
    # dictionaries (unix dict.txt = the pair's + <BT>; the translation task's files are the same symbols)
    assert src == real_src * 2 + _unk(["<BT> " + bpe.process_line(f"a dog runs {i}").strip() for i in keep], d)
    assert tgt == real_tgt * 2 + _unk([mono[i] for i in keep], d)
    assert (out / "train.images.txt").read_text().splitlines() == \
        (pair / "train.images.txt").read_text().splitlines() * 2 + [images[i] for i in keep]
    assert (out / "dict.txt").read_text() == (pair / "dict.txt").read_text() + "<BT> 1\n"
    assert (out / "dict.en.txt").read_text() == (out / "dict.de.txt").read_text() == (out / "dict.txt").read_text()
    for name in ("valid.en-de.de.bin", "test.en-de.en.idx", "bpe.codes", "test.images.txt"):
        assert (out / name).read_bytes() == (pair / name).read_bytes()
    # the pair's symbols keep their indices, so valid/test (binarized with the pair's dictionary) read the same
    assert _binarized(out / "test.en-de.de", out / "dict.txt") == _binarized(pair / "test.en-de.de", pair / "dict.txt")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preprocess"] == json.loads((pair / "manifest.json").read_text())["preprocess"]
    assert manifest["lines"]["train"] == 12 + 14
    assert manifest["extra_data"]["constrained"] is False and manifest["extra_data"]["synthetic_pairs"] == 14
    assert manifest["extra_data"]["synthetic_tag"] == "<BT>"
    assert manifest["dictionary"]["symbols"] == len((out / "dict.txt").read_text().splitlines())
    train_de = manifest["sources"]["train.de"]
    assert train_de.startswith("2 x ") and train_de.endswith("the 14 pairs of extra_data")

    # bt-finetune: Task 1 alone in the tagged data's dictionaries, the pair's files as they are
    ft = tmp_path / "ft"
    finetune = ["bt-finetune", "--pair-data", str(pair), "--out", str(ft), "--workers", "1"]
    assert prepare_task2.main(finetune + ["--bt-assembled", str(out)]) == 0
    for name in ("train.en-de.en.bin", "train.en-de.de.idx", "valid.en-de.de.bin", "test.en-de.en.idx",
                 "train.images.txt", "test.images.txt"):
        assert (ft / name).read_bytes() == (pair / name).read_bytes()
    for name in ("dict.txt", "dict.en.txt", "dict.de.txt", "bpe.codes"):
        assert (ft / name).read_bytes() == (out / name).read_bytes()
    assert _binarized(ft / "train.en-de.en", ft / "dict.txt") == real_src
    ft_manifest = json.loads((ft / "manifest.json").read_text())
    assert "extra_data" not in ft_manifest and ft_manifest["lines"]["train"] == 6
    assert ft_manifest["finetune_of"]["extra_data"]["synthetic_pairs"] == 14
    assert ft_manifest["dictionary"]["symbols"] == manifest["dictionary"]["symbols"]

    plain = tmp_path / "plain"
    assert prepare_task2.main(["bt-assemble", "--data", str(tmp_path), "--pair-data", str(pair), "--bt-data", str(bt),
                               "--generated", str(bt / "generate.txt"), "--no-tag-synthetic", "--out", str(plain),
                               "--workers", "1"]) == 0
    assert _binarized(plain / "train.en-de.en", plain / "dict.en.txt") == \
        real_src + _unk([bpe.process_line(f"a dog runs {i}").strip() for i in keep], plain / "dict.en.txt")
    for name in ("dict.txt", "dict.en.txt", "dict.de.txt"):
        assert (plain / name).read_bytes() == (pair / name).read_bytes()
    assert json.loads((plain / "manifest.json").read_text())["extra_data"]["synthetic_tag"] is None
    # untagged: its dictionaries are the pair's, nothing to build; Task 1 data is no bt-assemble output
    assert prepare_task2.main(finetune + ["--bt-assembled", str(plain)]) == 2
    assert f"{plain}/manifest.json: untagged back-translation has the pair's dictionaries" in caplog.text
    assert prepare_task2.main(finetune + ["--bt-assembled", str(pair)]) == 2
    assert f"{pair}/manifest.json: not a bt-assemble output of en-de" in caplog.text


def test_wrong_inputs_are_refused_by_name(tmp_path, caplog):
    pair = _tree(tmp_path)
    assert prepare_task2.main(["bt-source", "--data", str(tmp_path), "--pair-data", str(pair), "--lang", "en",
                                          "--out", str(tmp_path / "bt")]) == 2
    assert "needs the target language's captions (de)" in caplog.text
    bt = tmp_path / "bt2"
    prepare_task2.main(["bt-source", "--data", str(tmp_path), "--pair-data", str(pair), "--out", str(bt),
                                   "--workers", "1"])
    (bt / "generate.txt").write_text("H-0\t-1.0\ta dog\nH-20\t-1.0\ta cat\n")
    assemble = ["bt-assemble", "--data", str(tmp_path), "--pair-data", str(pair), "--bt-data", str(bt),
                "--generated", str(bt / "generate.txt"), "--out", str(tmp_path / "o")]
    assert prepare_task2.main(assemble) == 2
    assert "generate.txt: 14 of 15 sentences have no hypothesis" in caplog.text
    # every id has a hypothesis, but the S- lines are another file's sources
    mono = (bt / "mono.bpe.de").read_text().splitlines()
    (bt / "generate.txt").write_text("".join(f"S-{i}\t{mono[(i + 1) % 15]}\nH-{i}\t-1.0\ta dog\n" for i in range(15)))
    assert prepare_task2.main(assemble) == 2
    assert "generate.txt: S-0 is " in caplog.text and "not the output for this source" in caplog.text
    assert prepare_task2.main(["bt-source", "--data", str(tmp_path), "--pair-data", str(tmp_path),
                                          "--out", str(tmp_path / "x")]) == 2
    assert "manifest.json: not found" in caplog.text
    (tmp_path / "multi30k" / "captions" / "train.3.de").write_text("one line\n")
    assert prepare_task2.main(["bt-source", "--data", str(tmp_path), "--pair-data", str(pair),
                                          "--out", str(tmp_path / "y")]) == 2
    assert "train.3.de: 1 lines" in caplog.text and "not aligned" in caplog.text


def test_caption_stream_in_the_pairs_vocabulary(tmp_path):
    pair = _tree(tmp_path)
    caps = tmp_path / "multi30k" / "captions"
    en = ["A dog runs.", "Two dogs.", "A man rides a bike.", "A woman plays.", "A man.", "A boy in snow."]
    for k in range(1, 6):
        (caps / f"train.{k}.en").write_text("\n".join(f"{c} {k}" for c in en) + "\n")
    out = tmp_path / "cap"
    assert prepare_task2.main(["captions", "--data", str(tmp_path), "--pair-data", str(pair), "--out", str(out),
                               "--workers", "1"]) == 0
    bpe = load_bpe(str(pair / "bpe.codes"))
    photos = {"11": "11_x.jpg", "33": "33_x.jpg", "44": "44_x.jpg"}  # 22: a val photo; 99: not in Flickr8k
    want = []
    for lang, texts in (("en", en), ("de", TASK2_DE)):
        want += [(f"__{lang}__", bpe.process_line(multi30k_tokenize(f"{c} {k}", lang)).strip(), photos[p])
                 for k in range(1, 6) for c, p in zip(texts, ["11", "22", "99", "33", "44", "22"])
                 if c and p in photos]
    assert len(want) == 15 + 10
    assert _binarized(out / "train.tag-cap.tag", out / "dict.txt") == [w[0] for w in want]
    assert _binarized(out / "train.tag-cap.cap", out / "dict.txt") == _unk([w[1] for w in want], out / "dict.txt")
    assert (out / "train.images.txt").read_text().splitlines() == [w[2] for w in want]
    assert (out / "dict.txt").read_bytes() == (pair / "dict.txt").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["train"]["de"] == {"captions": 10, "photos": 2, "without_flickr8k_photo": 5}
    assert manifest["preprocess"]["moses_escape"] is True
    assert prepare_task2.main(["captions", "--data", str(tmp_path), "--pair-data", str(pair), "--out", str(out),
                               "--langs", "xx"]) == 2

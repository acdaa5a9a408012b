"""The commands end to end on tiny exported models: unix-export, unix-caption, unix-translate, unix-vqa.

Each is run in-process through ``main([...])``; a bad input must be one line naming file and line
with the fix, exit status 2, no traceback, and the good inputs still written.
"""

import io
import json

import pytest

from tests.unix.model_fixtures import MMT_TASK, make_checkpoint
from unix.cli import caption, translate, vqa
from unix.cli import export as export_cli

pytest.importorskip("unix.generation.beam_search")

PIXELS = {"image_encoder": "test_efficientnet"}
SHORT = '{"caption": {"max_len_b": 5}}'


@pytest.fixture(scope="module")
def models(tiny_corpus, tmp_path_factory):
    """Exported tiny models: caption, MMT (both reading pixels) and VQA with an answer list."""
    from unix.data.tokenizer import SpmTokenizer

    root = tmp_path_factory.mktemp("cli_models")
    data = tiny_corpus / "bin"
    make_checkpoint(root / "cap.pt", data, {"_name": "unix_caption"}, model_options=PIXELS)
    make_checkpoint(root / "mmt.pt", data, MMT_TASK, model_options=PIXELS)
    spm = SpmTokenizer(str(data / "spm.model"))
    (root / "answers.spm.txt").write_text("".join(spm.encode_line(a) + "\n" for a in ("red", "blue", "green")))
    make_checkpoint(root / "vqa.pt", data, {"_name": "unix_vqa", "constraint_answers": str(root / "answers.spm.txt")},
                    model_options=PIXELS)
    assert export_cli.main([str(root / "cap.pt"), "--out", str(root / "cap"), "--generation", SHORT]) == 0
    assert export_cli.main([str(root / "mmt.pt"), "--out", str(root / "mmt"), "--generation",
                            '{"translate": {"max_len_b": 6}}']) == 0
    assert export_cli.main([str(root / "vqa.pt"), "--out", str(root / "vqa")]) == 0
    return root


@pytest.fixture(scope="module")
def photos(tiny_corpus, tmp_path_factory):
    """Good photos in several formats, a missing one and a corrupt one."""
    from PIL import Image

    root = tmp_path_factory.mktemp("cli_photos")
    red = Image.open(tiny_corpus / "images" / "red.png").convert("RGB")
    red.save(root / "red.jpg")
    red.convert("P", palette=Image.Palette.ADAPTIVE).save(root / "red.gif")
    red.convert("RGBA").save(root / "red_rgba.png")
    red.convert("L").save(root / "gray.png")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def test_export_command_writes_scores_into_the_card(models, tiny_corpus, tmp_path, capsys):
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"test2016": {"BLEU": 12.34, "sacreBLEU": 11.5}}))
    assert export_cli.main([str(models / "mmt.pt"), "--out", str(tmp_path / "m"), "--fp16", "--scores",
                            str(scores)]) == 0
    card = (tmp_path / "m" / "README.md").read_text()
    assert "- test2016: BLEU 12.34, sacreBLEU 11.5" in card and "--task unix_mmt" in card
    conf = json.loads((tmp_path / "m" / "config.json").read_text())
    assert conf["scores"]["test2016"]["BLEU"] == 12.34 and conf["dtype"] == "float16"
    # a file that is not a checkpoint: one line, status 2, no traceback
    (tmp_path / "junk.pt").write_bytes(b"junk")
    capsys.readouterr()
    assert export_cli.main([str(tmp_path / "junk.pt"), "--out", str(tmp_path / "j")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unix-export: error: cannot read checkpoint") and "junk.pt" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_caption_command_writes_good_photos_and_lists_bad_ones(models, photos, tmp_path, capsys):
    out = tmp_path / "caps.tsv"
    args = [str(photos / "red.jpg"), str(photos / "missing.jpg"), str(photos / "red.gif"), str(photos / "corrupt.jpg"),
            str(photos / "red_rgba.png"), str(photos / "gray.png"), "--model", str(models / "cap"), "--lang", "de",
            "-o", str(out), "--batch-size", "2"]
    assert caption.main(args) == 2
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert [r[0] for r in rows] == [str(photos / n) for n in ("red.jpg", "red.gif", "red_rgba.png", "gray.png")]
    assert all(len(r) == 3 and r[1] and float(r[2]) < 0 for r in rows)
    assert rows[0][1] == rows[1][1] == rows[2][1]  # the same photo in three formats
    err = capsys.readouterr().err
    assert "Traceback" not in err
    missing = photos / "missing.jpg"
    assert f"unix-caption: {missing}: image not found: {missing} (fix: check the path" in err
    assert f"unix-caption: {photos / 'corrupt.jpg'}: cannot read image" in err and "(fix: re-encode the photo" in err
    assert "2 of 6 inputs skipped" in err


def test_caption_command_image_list_names_lines_and_writes_jsonl(models, photos, tmp_path, capsys):
    lst = tmp_path / "list.txt"
    lst.write_text("red.jpg\n\nnope.png\ngray.png\n")
    out = tmp_path / "caps.jsonl"
    assert caption.main(["--image-list", str(lst), "--image-root", str(photos), "--model", str(models / "cap"),
                         "--format", "jsonl", "-o", str(out), "--nbest", "2", "--beam", "3"]) == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["image"] for r in rows] == [str(photos / "red.jpg"), str(photos / "gray.png")]
    assert all(len(r["nbest"]) == 2 and r["nbest"][0]["text"] == r["text"] for r in rows)
    assert f"unix-caption: {lst}:3: image not found" in capsys.readouterr().err


def test_caption_command_unknown_language_is_one_line(models, photos, capsys):
    assert caption.main([str(photos / "red.jpg"), "--model", str(models / "cap"), "--lang", "cs"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("unix-caption: error: caption language 'cs': this model (unix_caption) knows de, en, fr; "
                           "use one of those")
    assert caption.main([str(photos / "red.jpg"), "--model", str(models / "cap"), "--lang", "cs", "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_translate_command_aligned_files(models, photos, tmp_path, capsys):
    src = tmp_path / "in.en"
    src.write_text("the red dog is here .\n\nthe blue cat is here .\nthe green car is here .\n")
    images = tmp_path / "images.txt"
    images.write_text("red.jpg\n\n\nmissing.png\n")
    out = tmp_path / "out.tsv"
    assert translate.main(["--model", str(models / "mmt"), "--src", "en", "--tgt", "de", "--input", str(src),
                           "--images", str(images), "--image-root", str(photos), "-o", str(out)]) == 2
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert [r[0] for r in rows] == ["1", "3"] and all(r[1] for r in rows)
    err = capsys.readouterr().err
    assert f"unix-translate: {src}:2: empty text; give a non-empty sentence (fix: fill or remove the line)" in err
    assert f"{src}:4 / {images}:4: image not found" in err and "Traceback" not in err


def test_translate_command_misaligned_or_wrong_pair_writes_nothing(models, tmp_path, capsys):
    src = tmp_path / "in.en"
    src.write_text("the red dog is here .\nthe blue cat is here .\n")
    images = tmp_path / "images.txt"
    images.write_text("red.jpg\n")
    out = tmp_path / "out.tsv"
    assert translate.main(["--model", str(models / "mmt"), "--input", str(src), "--images", str(images),
                           "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"unix-translate: error: {images}: 1 lines but {src} has 2; the files must be aligned line "
                           "by line (fix: one line per input, an empty line where there is no image)")
    assert translate.main(["--model", str(models / "mmt"), "--input", str(src), "--tgt", "fr", "-o", str(out)]) == 2
    assert "language pair en-fr: this model (unix_mmt) translates en-de" in capsys.readouterr().err
    assert not out.exists()


def test_translate_command_reads_stdin(models, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("the red dog is here .\nthe cat .\n"))
    assert translate.main(["--model", str(models / "mmt"), "--format", "jsonl", "--no-progress"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["line"] for r in rows] == [1, 2] and rows[1]["source"] == "the cat ." and rows[0]["image"] is None


def test_vqa_command_closed_set(models, photos, tmp_path, capsys):
    images = tmp_path / "images.txt"
    images.write_text("red.jpg\ngray.png\nred.gif\n\n")
    questions = tmp_path / "questions.txt"
    questions.write_text("what color is it ?\n\nwhich color ?\nwhat is this ?\n")
    answers = tmp_path / "answers.txt"
    answers.write_text("red\nblue\n")
    out = tmp_path / "answers.tsv"
    assert vqa.main(["--model", str(models / "vqa"), "--images", str(images), "--image-root", str(photos),
                     "--questions", str(questions), "--answers", str(answers), "-o", str(out)]) == 2
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert [r[0] for r in rows] == ["1", "3"] and {r[1] for r in rows} <= {"red", "blue"}
    err = capsys.readouterr().err
    assert f"unix-vqa: {questions}:2 / {images}:2: empty text" in err
    assert f"unix-vqa: {questions}:4 / {images}:4: no image; this model needs one for every input" in err
    # the model's own answer list
    assert vqa.main(["--model", str(models / "vqa"), "--images", str(images), "--image-root", str(photos),
                     "--questions", str(questions), "--answers", "model", "-o", str(out)]) == 2
    assert {line.split("\t")[1] for line in out.read_text().splitlines()} <= {"red", "blue", "green"}

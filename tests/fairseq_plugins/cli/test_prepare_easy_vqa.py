"""unix-prepare-easy-vqa on a slice of the installed easy-VQA data, and on bad input."""

import json
from pathlib import Path

import pytest

from fairseq_plugins.cli.prepare_easy_vqa import default_easy_vqa_dir, main
from unix.data.tokenizer import SpmTokenizer, read_lines, train_sentencepiece
from unix.data.vqa import VQADataError

easy_vqa = pytest.importorskip("easy_vqa")


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory) -> str:
    q, a, _ = easy_vqa.get_train_questions()
    root = tmp_path_factory.mktemp("spm")
    (root / "text.txt").write_text("\n".join(q[:3000] + a[:3000]) + "\n")
    return train_sentencepiece([str(root / "text.txt")], str(root / "spm"), vocab_size=100, langs=("en", "de"))


def test_easy_vqa_slice(spm_model, tmp_path):
    out = tmp_path / "bin"
    assert main(["--spm-model", spm_model, "--out", str(out), "--max-questions", "30", "--valid-images", "50"]) == 0
    package_answers = read_lines(str(Path(default_easy_vqa_dir()) / "answers.txt"))
    assert read_lines(str(out / "answers.txt")) == package_answers
    tok = SpmTokenizer(spm_model)
    assert read_lines(str(out / "answers.spm.txt")) == [tok.encode_line(a) for a in package_answers]
    for name in ("dict.txt", "dict.question.txt", "dict.answer.txt", "spm.model"):
        assert (out / name).exists()
    images = {}
    for split in ("train", "valid", "test"):
        for lang in ("question", "answer"):
            assert (out / f"{split}.question-answer.{lang}.bin").stat().st_size > 0
        records = [json.loads(l) for l in (out / "jsonl" / f"{split}.jsonl").read_text().splitlines()]
        images[split] = read_lines(str(out / f"{split}.images.txt"))
        assert len(records) == len(images[split]) == 30
        assert [r["image"] for r in records] == images[split]
        assert all((out / "images" / p).is_file() for p in images[split])
    # valid holds the questions of the last 50 training images: no image is shared with train
    assert not set(images["train"]) & set(images["valid"])
    assert all(int(Path(p).stem) >= 4000 - 50 for p in images["valid"])
    assert all(p.startswith("test/") for p in images["test"])


def fake_easy_vqa(root: Path, train_entries, answers=("yes", "no", "red")) -> Path:
    """An easy-VQA-shaped directory: images 0..3, questions.json per split, answers.txt."""
    from PIL import Image

    for split in ("train", "test"):
        (root / split / "images").mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (8, 8), (i * 60, 0, 0)).save(root / split / "images" / f"{i}.png")
        entries = train_entries if split == "train" else [["is it red?", "yes", 0]]
        (root / split / "questions.json").write_text(json.dumps(entries))
    (root / "answers.txt").write_text("\n".join(answers) + "\n")
    return root


GOOD = [["is it red?", "yes", 0], ["is it red?", "no", 1], ["what color?", "red", 2], ["is it red?", "no", 3]]


@pytest.mark.parametrize("bad, message", [
    (["  ", "yes", 1], "entry 2: empty question"),
    (["is it red?", "yes", 9], "entry 2: image not found"),
    (["is it red?", "purple", 1], "entry 2: answer 'purple' is not in the answer list"),
])
def test_bad_easy_vqa_input_names_file_and_entry(spm_model, tmp_path, bad, message):
    root = fake_easy_vqa(tmp_path / "easy", [GOOD[0], bad] + GOOD[2:])
    with pytest.raises(VQADataError, match=message) as e:
        main(["--spm-model", spm_model, "--out", str(tmp_path / "out"), "--easy-vqa-dir", str(root),
              "--valid-images", "1"])
    assert str(root / "train" / "questions.json") in str(e.value)


def test_empty_answer_list_and_bad_valid_split(spm_model, tmp_path):
    root = fake_easy_vqa(tmp_path / "easy", GOOD, answers=())
    (root / "answers.txt").write_text("")
    with pytest.raises(VQADataError, match="answer list is empty"):
        main(["--spm-model", spm_model, "--out", str(tmp_path / "out"), "--easy-vqa-dir", str(root),
              "--valid-images", "1"])
    with pytest.raises(ValueError, match="--valid-images"):
        main(["--spm-model", spm_model, "--out", str(tmp_path / "out"), "--easy-vqa-dir", str(root),
              "--valid-images", "4"])


def test_own_jsonl_data_with_an_empty_question(spm_model, tmp_path):
    data, img = tmp_path / "data", tmp_path / "img"
    data.mkdir()
    img.mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(img / "a.png")
    good = {"image": "a.png", "question": "is it black?", "answers": ["yes", "yes", "no"]}
    (data / "train.jsonl").write_text(json.dumps(good) + "\n")
    (data / "valid.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({**good, "question": ""}) + "\n")
    with pytest.raises(VQADataError, match=f"{data / 'valid.jsonl'}:2: empty question"):
        main(["--spm-model", spm_model, "--out", str(tmp_path / "out"), "--data-dir", str(data),
              "--image-root", str(img)])
    (data / "valid.jsonl").write_text(json.dumps(good) + "\n")
    assert main(["--spm-model", spm_model, "--out", str(tmp_path / "out"), "--data-dir", str(data),
                 "--image-root", str(img)]) == 0
    # no answer list given: every training answer; several references joined in the evaluation target
    assert read_lines(str(tmp_path / "out" / "answers.txt")) == ["yes"]
    assert read_lines(str(tmp_path / "out" / "valid.images.txt")) == ["a.png"]
    assert not (tmp_path / "out" / "test.images.txt").exists()


def test_exclude_train_questions_filters_train_only(spm_model, tmp_path):
    entries = [["is it red?", "yes", 0], ["is it not red?", "no", 1], ["what color?", "red", 2],
               ["is no red shape present?", "no", 0], ["is it red?", "no", 3]]
    root = fake_easy_vqa(tmp_path / "easy", entries)
    out = tmp_path / "out"
    assert main(["--spm-model", spm_model, "--out", str(out), "--easy-vqa-dir", str(root), "--valid-images", "1",
                 "--exclude-train-questions", r"(^is no | not )"]) == 0
    train = [json.loads(l)["question"] for l in (out / "jsonl" / "train.jsonl").read_text().splitlines()]
    assert train == ["is it red?", "what color?"]  # image 3 is the valid image; negated questions dropped
    valid = [json.loads(l)["question"] for l in (out / "jsonl" / "valid.jsonl").read_text().splitlines()]
    assert valid == ["is it red?"]
    assert read_lines(str(out / "test.images.txt")) == ["test/images/0.png"]
    with pytest.raises(VQADataError, match="matches all 4 training questions"):
        main(["--spm-model", spm_model, "--out", str(out), "--easy-vqa-dir", str(root), "--valid-images", "1",
              "--exclude-train-questions", "."])
    with pytest.raises(ValueError, match="not a valid regular expression"):
        main(["--spm-model", spm_model, "--out", str(out), "--easy-vqa-dir", str(root), "--valid-images", "1",
              "--exclude-train-questions", "("])

"""The VQA JSONL format and the answer list: bad input gives errors naming file and line."""

import json

import pytest

from unix.data.vqa import (
    VQADataError,
    check_training_answers,
    most_common_answer,
    read_answer_list,
    read_vqa_jsonl,
    write_vqa_jsonl,
)


@pytest.fixture
def image_root(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"x")
    return tmp_path / "img"


def write_jsonl(path, objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


GOOD = {"image": "a.png", "question": "what color is it?", "answers": ["dark blue", "blue", "dark blue"]}


def test_read_and_write_roundtrip(tmp_path, image_root):
    path = write_jsonl(tmp_path / "train.jsonl", [GOOD, {"image": "a.png", "question": " is it  red? ",
                                                         "answer": "no"}])
    recs = read_vqa_jsonl(str(path), str(image_root))
    assert [r.question for r in recs] == ["what color is it?", "is it red?"]
    assert recs[0].training_answer == "dark blue" and recs[0].target == "dark blue <sep> blue <sep> dark blue"
    assert recs[1].answers == ["no"] and recs[1].where == f"{path}:2"
    write_vqa_jsonl(recs, str(tmp_path / "copy.jsonl"))
    assert [r.answers for r in read_vqa_jsonl(str(tmp_path / "copy.jsonl"), str(image_root))] == \
        [r.answers for r in recs]


@pytest.mark.parametrize("bad, message", [
    ({**GOOD, "question": "  "}, "empty question"),
    ({**GOOD, "image": "missing.png"}, "image not found"),
    ({k: v for k, v in GOOD.items() if k != "image"}, "has no image"),
    ({**GOOD, "answers": []}, "non-empty list"),
    ({**GOOD, "answers": ["yes", ""]}, "empty or non-string answer"),
    ({k: v for k, v in GOOD.items() if k != "answers"}, "no 'answers'"),
    ({**GOOD, "answers": ["a <sep> b"]}, "separator"),
])
def test_bad_records_name_file_and_line(tmp_path, image_root, bad, message):
    path = write_jsonl(tmp_path / "valid.jsonl", [GOOD, GOOD, bad])
    with pytest.raises(VQADataError, match=message) as e:
        read_vqa_jsonl(str(path), str(image_root))
    assert f"{path}:3:" in str(e.value)


def test_invalid_json_and_empty_file(tmp_path, image_root):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(VQADataError, match=f"{path}:2: invalid JSON"):
        read_vqa_jsonl(str(path), str(image_root))
    path.write_text("\n")
    with pytest.raises(VQADataError, match="no question"):
        read_vqa_jsonl(str(path), str(image_root))


def test_answer_list(tmp_path):
    path = tmp_path / "answers.txt"
    path.write_text("yes\nno\nyes\ndark blue\n")
    assert read_answer_list(str(path)) == ["yes", "no", "dark blue"]
    path.write_text("yes\n\nno\n")
    with pytest.raises(VQADataError, match=f"{path}:2: empty answer"):
        read_answer_list(str(path))
    path.write_text("")
    with pytest.raises(VQADataError, match="answer list is empty"):
        read_answer_list(str(path))
    with pytest.raises(VQADataError, match="not found"):
        read_answer_list(str(tmp_path / "nope.txt"))


def test_training_answer_outside_the_list(tmp_path, image_root):
    path = write_jsonl(tmp_path / "train.jsonl", [GOOD, {**GOOD, "answers": ["purple"]}])
    recs = read_vqa_jsonl(str(path), str(image_root))
    check_training_answers(recs[:1], ["dark blue"], "answers.txt")
    with pytest.raises(VQADataError, match=f"{path}:2: answer 'purple' is not in the answer list answers.txt"):
        check_training_answers(recs, ["dark blue", "blue"], "answers.txt")


def test_most_common_answer_ties_go_to_the_first():
    assert most_common_answer(["b", "a", "a", "b"]) == "b"
    assert most_common_answer(["x", "y", "y"]) == "y"

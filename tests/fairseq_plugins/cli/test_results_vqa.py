"""unix-results vqa: reading a fairseq-generate output and cross-checking the scorer."""

import pytest

from fairseq_plugins.cli import results as cli
from fairseq_plugins.results import vqa as vqa_results


def write(path, rows, printed):
    with open(path, "w") as f:
        for i, (question, target, answer) in enumerate(rows):
            f.write(f"S-{i}\t__en__ {question}\nT-{i}\t{target}\nH-{i}\t-0.1\tpieces\nD-{i}\t-0.1\t{answer}\n")
        f.write(f"Generate test with beam=5: VQA accuracy = {printed} (any-reference match 0, n={len(rows)})\n")


def test_read_recomputes_the_accuracy(tmp_path):
    rows = [("what color?", "red", "Red"),            # exact after normalization: 1
            ("how many?", "2 <sep> 2 <sep> 3", "two"),  # two of three annotators said 2: min(2/3, 1)
            ("is there?", "no", "yes")]               # 0
    write(tmp_path / "gen.txt", rows, 55.56)
    printed, recomputed, n = vqa_results.read(str(tmp_path / "gen.txt"))
    assert n == 3 and printed == 55.56
    assert recomputed["accuracy"] == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)
    assert recomputed["by_type"] == {"yes/no": (0.0, 1), "number": (pytest.approx(200 / 3), 1), "other": (100.0, 1)}


def test_missing_answer_is_an_error(tmp_path):
    path = tmp_path / "gen.txt"
    write(path, [("q", "a", "a")], 100.0)
    with open(path, "a") as f:
        f.write("T-1\tb\n")
    with pytest.raises(ValueError, match="2 targets, 1 answers"):
        vqa_results.read(str(path))


def test_main_writes_both_decodings_with_answer_types(tmp_path, monkeypatch):
    rows = [("what color?", "red", "red"), ("is there?", "no", "yes"), ("is there?", "yes", "yes")]

    def fake_generate(a, path, out_path, closed):
        write(out_path, rows, 66.67)
        return ["fairseq-generate", "--constraint-answers" if closed else "--free"]

    monkeypatch.setattr(vqa_results, "generate", fake_generate)
    out = tmp_path / "RESULTS.md"
    cli.main(["vqa", "--data", "d", "--path", "c.pt", "--answers", "a.txt", "--out", str(out)])
    text = out.read_text()
    assert "| yes/no | other |" in text and "| free | 66.67 | 3 | 50.00 (n=2) | 100.00 (n=1) |" in text
    assert "| closed set | 66.67 |" in text and "Do not edit by hand" in text
    assert "| c.pt | free |" in text  # without --label the checkpoint path names the row, whatever the model


def test_template_table_masks_reference_answers(tmp_path, monkeypatch):
    rows = [("is there a red shape?", "no", "no"), ("is there a blue shape?", "yes", "no"),
            ("is there a dark blue shape?", "no", "no"),  # "dark blue" is one answer: same template
            ("what color is the shape?", "dark blue", "dark blue"),
            ("what color is the shape?", "red <sep> blue", "green")]
    write(tmp_path / "gen.txt", rows, 60.0)
    table = vqa_results.template_accuracy(vqa_results.read_questions(str(tmp_path / "gen.txt")))
    assert table == {"is there a _ shape ?": (pytest.approx(200 / 3), 3), "what color is the shape ?": (50.0, 2)}

    def fake_generate(a, path, out_path, closed):
        write(out_path, rows, 60.0)
        return ["fairseq-generate"]

    monkeypatch.setattr(vqa_results, "generate", fake_generate)
    out = tmp_path / "RESULTS.md"
    cli.main(["vqa", "--data", "d", "--path", "c.pt", "--answers", "a.txt", "--out", str(out), "--templates", "1"])
    text = out.read_text()
    assert "By question template (1 most frequent of 2;" in text
    assert "| is there a _ shape ? | 3 | 66.67 | 66.67 |" in text and "what color is" not in text


def test_several_checkpoints_one_row_each(tmp_path, monkeypatch):
    answers = {"a.pt": ["red", "no", "no"], "b.pt": ["red", "yes", "yes"]}
    targets = [("what color?", "red"), ("is there?", "no"), ("is there?", "yes")]
    calls = []

    def fake_generate(a, path, out_path, closed):
        calls.append((path, closed))
        rows = [(q, t, ans) for (q, t), ans in zip(targets, answers[path])]
        write(out_path, rows, round(100 * sum(t == x for (_, t), x in zip(targets, answers[path])) / 3, 2))
        return ["fairseq-generate", "--path", path]

    monkeypatch.setattr(vqa_results, "generate", fake_generate)
    out = tmp_path / "RESULTS.md"
    cli.main(["vqa", "--data", "d", "--path", "a.pt", "b.pt", "--label", "one", "two", "--answers", "x.txt",
                      "--out", str(out), "--templates", "1"])
    assert calls == [("a.pt", False), ("a.pt", True), ("b.pt", False), ("b.pt", True)]
    text = out.read_text()
    assert "| one | free | 66.67 | 3 | 50.00 (n=2) | 100.00 (n=1) |" in text
    assert "| two | closed set | 66.67 | 3 | 50.00 (n=2) | 100.00 (n=1) |" in text
    assert "| template | questions | one, free | one, closed set | two, free | two, closed set |" in text
    assert "| is there ? | 2 | 50.00 | 50.00 | 50.00 | 50.00 |" in text
    assert "- two, closed set: `fairseq-generate --path b.pt`" in text
    with pytest.raises(SystemExit):
        cli.main(["vqa", "--data", "d", "--path", "a.pt", "b.pt", "--label", "one", "--answers", "x.txt",
                          "--out", str(out)])

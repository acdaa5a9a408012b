"""The one reader of fairseq-generate output (unix.data.generate_output)."""

import gzip

import pytest

from unix.data.generate_output import GenerateOutputError, read_generate_output

OUTPUT = ("2026-12-06 | INFO | fairseq_cli.generate | loading\n"
          "S-1\t__de__ ein hund\nT-1\ta dog\n"
          "H-1\t-0.25\t▁a ▁dog\nD-1\t-0.25\ta dog\nP-1\t-0.5 -0.25 0.0\n"
          "H-1\t-0.75\t▁a ▁cat\nD-1\t-0.75\ta cat\nP-1\t-1.0 -0.5 -0.75\n"
          "S-0\t__de__ eine katze\nT-0\ta cat\nH-0\t-0.5\t\nD-0\t-0.5\t\nP-0\t-0.5\n"
          "Generate test with beam=2: BLEU4 = 1.0\n")


def test_reads_every_hypothesis_in_file_order(tmp_path):
    for name, opener in (("gen.txt", open), ("gen.txt.gz", gzip.open)):
        with opener(tmp_path / name, "wt", encoding="utf-8") as f:
            f.write(OUTPUT)
        out = read_generate_output(str(tmp_path / name))
        assert list(out) == [1, 0]
        assert (out[1].source, out[1].target) == ("__de__ ein hund", "a dog")
        assert [(h.text, h.score, h.detok, h.positional, h.line) for h in out[1].hyps] == [
            ("▁a ▁dog", "-0.25", "a dog", "-0.5 -0.25 0.0", 4), ("▁a ▁cat", "-0.75", "a cat", "-1.0 -0.5 -0.75", 7)]
        assert (out[0].hyps[0].text, out[0].hyps[0].detok) == ("", "")


@pytest.mark.parametrize("text, message", [
    ("H-0\t-0.5\n", r"bad.txt:1: expected 'H-<id>\\t<score>\\t<text>'"),
    ("H-0\t-0.5\ta\nD-0\t-0.5\ta\nD-0\t-0.5\ta\n", r"bad.txt:3: D-0 line without its H-0 line"),
    ("D-0\t-0.5\ta\nH-1\t-0.5\tb\n", r"bad.txt:2: H-1 line in a file of D- lines only"),
    ("H-0\t-0.5\ta\nP-0\t-0.5\nP-0\t-0.5\n", r"bad.txt:3: P-0 line without its H-0 line"),
    ("H-0\t-0.5\ta\nP-0\t-0.5 x\n", r"bad.txt:2: P-0 scores are not numbers"),
    ("S-0\tx\nT-0\ty\n", r"bad.txt: no hypothesis \(H- or D- line\) found"),
    ("S-0\tx\nH-0\t-0.5\ta\nS-1\ty\nH-1\t-0.5\tb\nS-0\tx\nH-0\t-0.5\ta\n",
     r"bad.txt:5: S-0 again \(first at line 1\)"),
])
def test_malformed_output_names_file_and_line(tmp_path, text, message):
    (tmp_path / "bad.txt").write_text(text, encoding="utf-8")
    with pytest.raises(GenerateOutputError, match=message):
        read_generate_output(str(tmp_path / "bad.txt"))


def test_parts_of_one_output_concatenated(tmp_path):
    """fairseq-generate --distributed-world-size 2 --distributed-rank 0 / 1, then cat: every sentence once."""
    part0 = "S-2\tc\nH-2\t-0.5\tC\nD-2\t-0.5\tC\nGenerate test with beam=5: BLEU4 = 1.0\n"
    part1 = "S-0\ta\nH-0\t-0.5\tA\nD-0\t-0.5\tA\nS-1\tb\nH-1\t-0.5\tB\nD-1\t-0.5\tB\nGenerate test with beam=5: BLEU4 = 2.0\n"
    (tmp_path / "gen.txt").write_text(part0 + part1, encoding="utf-8")
    out = read_generate_output(str(tmp_path / "gen.txt"))
    assert {i: (s.source, [h.detok for h in s.hyps]) for i, s in out.items()} == {
        2: ("c", ["C"]), 0: ("a", ["A"]), 1: ("b", ["B"])}


def test_kept_output_of_d_lines_only(tmp_path):
    """Outputs kept compressed with their D- lines only (docs/experiments/captioning/outputs) are read."""
    with gzip.open(tmp_path / "kept.txt.gz", "wt", encoding="utf-8") as f:
        f.write("D-3\t-1.25\tZwei Kinder spielen.\nD-0\t-0.5\tEin Hund.\n")
    out = read_generate_output(str(tmp_path / "kept.txt.gz"))
    assert list(out) == [3, 0]
    assert [(h.text, h.detok, h.score, h.line) for h in out[3].hyps] == [
        ("Zwei Kinder spielen.", "Zwei Kinder spielen.", "-1.25", 1)]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="fairseq-generate output not found"):
        read_generate_output(str(tmp_path / "none.txt"))

"""unix-results caption: the table, the anchors and the cross-check of fairseq's cider scorer."""

import gzip
import json
import shutil

import pytest

from fairseq_plugins.cli import results as cli
from fairseq_plugins.results import caption as caption_results
from tests.unix.cli.test_score_captions_gallery import HYPS_EN, REFS_EN, write_generate_output, write_refs
from unix.metrics.caption import coco_scores

java = pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap needs java")


def fake_generate(printed_cider):
    """Stand-in for fairseq-generate: writes an output whose last line prints ``printed_cider``."""
    def generate(a, path, subset, out_path, row_args=()):
        import pathlib
        write_generate_output(pathlib.Path(out_path), HYPS_EN, REFS_EN, pieces=True)
        text = pathlib.Path(out_path).read_text().replace("CIDEr-D = 0.00", f"CIDEr-D = {printed_cider(subset)}")
        pathlib.Path(out_path).write_text(text)
        return ["fairseq-generate", a.data, "--path", path, "--gen-subset", subset, *row_args]
    return generate


def english_data(tmp_path, monkeypatch):
    """References of test_en, their expected scores, and fairseq-generate faked to print the right CIDEr-D."""
    data = tmp_path / "captions"
    data.mkdir()
    write_refs(data / "test_en.refs.txt", REFS_EN)
    expected = coco_scores(HYPS_EN, REFS_EN, "en")
    monkeypatch.setattr(caption_results, "generate", fake_generate(lambda s: f"{100 * expected['CIDEr']:.2f}"))
    return data, expected, tmp_path / "RESULTS.md"


@java
def test_writes_the_table_and_checks_the_printed_cider(tmp_path, monkeypatch):
    data, expected, out = english_data(tmp_path, monkeypatch)
    cli.main(["caption", "--data", str(data), "--path", "ckpt.pt", "--langs", "en", "--out", str(out)])
    text = out.read_text()
    assert "Do not edit by hand" in text and "Show, Attend and Tell" in text
    row = next(line for line in text.splitlines() if line.startswith("| ckpt.pt |"))
    assert f"| {100 * expected['BLEU-4']:.2f} |" in row and f"| {100 * expected['CIDEr']:.2f} |" in row
    saved = json.loads((tmp_path / "RESULTS.json").read_text())
    assert saved["results"]["en"]["CIDEr"] == pytest.approx(expected["CIDEr"])

    monkeypatch.setattr(caption_results, "generate", fake_generate(lambda s: "12.34"))
    with pytest.raises(ValueError, match="printed 12.34"):
        cli.main(["caption", "--data", str(data), "--path", "ckpt.pt", "--langs", "en", "--out", str(out)])


def test_printed_cider_reads_the_last_line(tmp_path):
    p = tmp_path / "gen.txt"
    p.write_text("H-0\t-1\tx\nGenerate test_de with beam=3: CIDEr-D = 41.50 (x100; pycocoevalcap)\n")
    assert caption_results.printed_cider(str(p)) == 41.5
    p.write_text("H-0\t-1\tx\n")
    assert caption_results.printed_cider(str(p)) is None


@java
def test_several_checkpoints_give_one_row_each(tmp_path, monkeypatch):
    data, _, out = english_data(tmp_path, monkeypatch)
    cli.main(["caption", "--data", str(data), "--path", "xe.pt", "scst.pt", "--label", "XE", "XE + SCST",
                          "--langs", "en", "--out", str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| XE")]
    assert [r.split(" | ")[0] for r in rows] == ["| XE", "| XE + SCST"]
    saved = json.loads((tmp_path / "RESULTS.json").read_text())
    assert [m["checkpoint"] for m in saved["models"]] == ["xe.pt", "scst.pt"]
    with pytest.raises(SystemExit, match="2 checkpoints"):
        cli.main(["caption", "--data", str(data), "--path", "xe.pt", "scst.pt", "--label", "XE", "--langs", "en",
                              "--out", str(out)])


@java
def test_row_args_give_each_row_its_own_generate_arguments(tmp_path, monkeypatch):
    data, _, out = english_data(tmp_path, monkeypatch)
    cli.main(["caption", "--data", str(data), "--path", "a.pt", "a.pt", "--label", "plain", "blocked",
                          "--row-args", "", "--no-repeat-ngram-size 2", "--langs", "en", "--out", str(out)])
    saved = json.loads((tmp_path / "RESULTS.json").read_text())
    assert [m["generate_args"] for m in saved["models"]] == [[], ["--no-repeat-ngram-size", "2"]]
    commands = [line for line in out.read_text().splitlines() if line.startswith("- ")]
    assert commands[0].endswith("--gen-subset test_en`") and commands[1].endswith("--no-repeat-ngram-size 2`")
    with pytest.raises(SystemExit, match="1 strings for 2 checkpoints"):
        cli.main(["caption", "--data", str(data), "--path", "a.pt", "b.pt", "--row-args", "--beam 5 ",
                              "--langs", "en", "--out", str(out)])


def generated_output(tmp_path, summary):
    """An existing fairseq-generate output of test_en whose last line is ``summary``."""
    path = write_generate_output(tmp_path / "gen.test_en.txt", HYPS_EN, REFS_EN, pieces=True)
    text = path.read_text().replace("Generate test_en with beam=5: CIDEr-D = 0.00", summary)
    path.write_text(text)
    return str(tmp_path / "gen.{subset}.txt")


@java
def test_generated_outputs_are_scored_without_running_fairseq(tmp_path, monkeypatch):
    data = tmp_path / "captions"
    data.mkdir()
    write_refs(data / "test_en.refs.txt", REFS_EN)
    expected = coco_scores(HYPS_EN, REFS_EN, "en")
    monkeypatch.setattr(caption_results, "generate", lambda *a, **k: pytest.fail("must not generate"))
    template = generated_output(tmp_path, "Generate test_en with beam=3: BLEU = 12.00 50/20/10/5")
    out = tmp_path / "RESULTS.md"
    cli.main(["caption", "--data", str(data), "--generated", template, "--label", "GPU run", "--langs", "en",
                          "--out", str(out)])
    row = next(line for line in out.read_text().splitlines() if line.startswith("| GPU run |"))
    assert f"| {100 * expected['BLEU-4']:.2f} |" in row and f"| {100 * expected['METEOR']:.2f} |" in row
    saved = json.loads((tmp_path / "RESULTS.json").read_text())
    assert saved["generated"] == template and "checkpoint" not in saved
    assert saved["commands"]["en"].startswith(f"scored from {tmp_path / 'gen.test_en.txt'}")

    # kept compressed: the same scores through gzip
    gz = tmp_path / "gen.test_en.txt.gz"
    gz.write_bytes(gzip.compress((tmp_path / "gen.test_en.txt").read_bytes()))
    cli.main(["caption", "--data", str(data), "--generated", template + ".gz", "--label", "GPU run",
                          "--langs", "en", "--out", str(out)])
    assert json.loads((tmp_path / "RESULTS.json").read_text())["results"] == saved["results"]

    with pytest.raises(ValueError, match="beam 5, the table says beam 3"):
        cli.main(["caption", "--data", str(data), "--generated",
                              generated_output(tmp_path, "Generate test_en with beam=5: BLEU = 1"),
                              "--label", "x", "--langs", "en", "--out", str(out)])
    with pytest.raises(ValueError, match="printed 12.34"):
        cli.main(["caption", "--data", str(data), "--generated",
                              generated_output(tmp_path, "Generate test_en with beam=3: CIDEr-D = 12.34"),
                              "--label", "x", "--langs", "en", "--out", str(out)])


def test_generated_needs_labels_and_a_subset_placeholder(tmp_path):
    args = ["--data", str(tmp_path), "--langs", "en", "--out", str(tmp_path / "R.md")]
    with pytest.raises(SystemExit, match="one --label per template"):
        cli.main(["caption", *args, "--generated", "g.{subset}.txt"])
    with pytest.raises(SystemExit, match="needs '{subset}'"):
        cli.main(["caption", *args, "--generated", "g.txt", "--label", "x"])
    with pytest.raises(SystemExit, match="not to --generated"):
        cli.main(["caption", *args, "--generated", "g.{subset}.txt", "--label", "x", "--row-args", ""])
    with pytest.raises(FileNotFoundError, match="no output .*g.test_en.txt"):
        cli.main(["caption", *args, "--generated", str(tmp_path / "g.{subset}.txt"), "--label", "x"])

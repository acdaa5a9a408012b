"""unix-benchmark generate on a tiny model: every system decodes the forced length; unix equals fairseq."""

import importlib.util
import json

import pytest

from fairseq_plugins.cli import benchmark as cli


def test_tiny_benchmark_reports_rates_and_equal_outputs(tmp_path, capsys):
    pytest.importorskip("fairseq")
    systems = "unix,fairseq" + (",hf" if importlib.util.find_spec("transformers") else "")
    out = tmp_path / "bench.json"
    assert cli.main(["generate", "--batch", "3", "--beam", "2", "--tokens", "6", "--dim", "16", "--ffn", "32",
                     "--heads", "2", "--layers", "1", "--vocab", "50", "--visual-tokens", "4",
                     "--feature-dim", "8", "--rounds", "2", "--systems", systems,
                     "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["unix_equals_fairseq"] is True
    names = systems.split(",")
    # 6 decoder steps each: 5 tokens + the forced </s> (unix, fairseq), 6 tokens without </s> (hf)
    assert report["output_lengths"] == {name: [6] for name in names}
    for clock in ("cpu", "wall"):
        assert set(report[clock]["sentences_per_s"]) == set(names)
        assert all(len(t) == 2 and min(t) > 0 for t in report[clock]["times_s"].values())
        assert set(report[clock]["ratios"]) == {f"unix/{n}" for n in names if n != "unix"}
    assert "unix/fairseq speed" in capsys.readouterr().out

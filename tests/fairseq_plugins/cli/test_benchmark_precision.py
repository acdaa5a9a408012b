"""unix-benchmark precision: every precision timed on one batch, ratios against fp32 (tiny, CPU)."""

import json

import pytest

from fairseq_plugins.cli import benchmark as cli

TINY = ["--device", "cpu", "--arch", "unix_tiny", "--batch", "2", "--src-len", "3", "--tgt-len", "4",
        "--visual-tokens", "3", "--feature-dim", "8", "--vocab", "50", "--steps", "1", "--warmup", "1"]


def test_times_every_precision_of_the_model_and_the_linear_peer(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert cli.main(["precision", *TINY, "--precisions", "fp32,bf16", "--json", str(out)]) == 0
    res = json.loads(out.read_text())["ms_per_step"]
    assert set(res) == {"unix_tiny", "linear_stack"}
    assert all(set(v) == {"fp32", "bf16"} and min(v.values()) > 0 for v in res.values())
    printed = capsys.readouterr().out
    assert "unix_tiny      bf16:" in printed and "x fp32)" in printed


def test_precisions_must_be_known_and_include_fp32():
    with pytest.raises(SystemExit, match="must include fp32"):
        cli.main(["precision", *TINY, "--precisions", "bf16"])
    with pytest.raises(SystemExit, match="fp8"):
        cli.main(["precision", *TINY, "--precisions", "fp32,fp8"])

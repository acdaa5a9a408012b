"""scripts/demo.py (README's main command) end to end on a tiny slice of the real data."""

from scripts import demo
from tests.conftest import SHARED_DATA, requires_shared_data


@requires_shared_data("multi30k")
@requires_shared_data("flickr8k", "images")
def test_demo_runs_end_to_end(tmp_path, capsys):
    work = tmp_path / "demo"
    rc = demo.main(["--data", str(SHARED_DATA), "--work", str(work), "--lines", "120", "--vocab-size", "700",
                    "--updates", "3", "--arch", "unix_tiny", "--max-tokens", "512", "--threads", "1"])
    assert rc == 0
    hyps = [l for l in (work / "generate.txt").read_text(encoding="utf-8").splitlines() if l.startswith("H-")]
    assert len(hyps) == 120  # every test sentence of the slice is translated
    assert (work / "checkpoints" / "checkpoint_last.pt").exists()
    out = capsys.readouterr().out
    assert "tokenized BLEU-4" in out and "sacreBLEU" in out and "sentences: 120" in out

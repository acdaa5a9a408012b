"""unix-benchmark caption: both batchings of one training split, timed in one run (tiny data)."""

import json

import pytest
import torch

from fairseq_plugins.cli import benchmark as cli
from tests.caption_data import prepare_tiny


@pytest.mark.parametrize("images", ["features", "pixels"])
def test_reports_both_batchings_of_the_same_captions(tmp_path, images):
    import timm

    d = prepare_tiny(tmp_path)
    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    torch.save(timm.create_model("test_efficientnet", num_classes=0, global_pool="").state_dict(), weights)
    args = ["--data", str(d["bin"]), "--image-root", str(d["images"]), "--image-encoder", "test_efficientnet",
            "--image-weights", str(weights), "--arch", "unix_tiny", "--max-tokens", "300", "--updates", "2",
            "--warmup", "1", "--threads", "1", "--json", str(tmp_path / "b.json"), "--markdown", str(tmp_path / "b.md")]
    if images == "features":
        from unix.data.feature_cache import build_feature_cache

        build_feature_cache(sorted(str(p) for p in d["images"].iterdir()), str(tmp_path / "cache"),
                            "test_efficientnet", str(weights))
        args += ["--image-features", str(tmp_path / "cache"), "--bf16"]  # bf16 autocast works on the CPU too
    else:
        args.append("--finetune-image-encoder")
    assert cli.main(["caption", *args]) == 0
    res = json.loads((tmp_path / "b.json").read_text())
    assert res["bf16"] == (images == "features")
    plain, grouped = res["per_caption"], res["group_by_photo"]
    for r in (plain, grouped):  # 114 training captions; fairseq drops a last batch that is not a multiple of 8
        assert 114 - 8 < r["captions"] <= 114
    # grouped: far fewer encoder inputs per caption (10 photos, 4 languages)
    assert grouped["encoder_inputs_per_batch"] / grouped["captions_per_batch"] < \
        plain["encoder_inputs_per_batch"] / plain["captions_per_batch"]
    assert plain["timed_updates"] == grouped["timed_updates"] == 2 and plain["seconds_per_update"] > 0
    ratio = grouped["epoch_minutes"] / plain["epoch_minutes"]
    assert res["epoch_time_ratio_grouped_vs_per_caption"] == pytest.approx(ratio)
    assert "commit" in (tmp_path / "b.md").read_text().lower()

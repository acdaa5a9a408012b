"""unix-distill-captions (and unix-prepare-captions --eval-train) on the generated stand-in data."""

import filecmp
import json
from pathlib import Path

import pytest

from fairseq_plugins.cli import distill_captions
from tests.caption_data import prepare_tiny
from unix.data.captions import CaptionDataError
from unix.data.tokenizer import SpmTokenizer
from unix.metrics.references import split_references


def lines(path: Path):
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return prepare_tiny(tmp_path_factory.mktemp("distill"), "--eval-train")


def teacher_caption(i: int, refs: str) -> str:
    """A caption the fake teacher 'generates' for sample i: a shortened first reference."""
    words = split_references(refs)[0].split()
    return " ".join(words[: 3 + i % 3])


def write_generate_output(path: Path, samples, tag: str = "__en__") -> Path:
    """``samples``: (id, caption) pairs in the format of fairseq-generate --post-process sentencepiece."""
    with open(path, "w", encoding="utf-8") as f:
        for sid, cap in samples:
            f.write(f"S-{sid}\t{tag}\nT-{sid}\tignored<sep> refs\nH-{sid}\t-0.5\t{cap}\nD-{sid}\t-0.5\t{cap}\n"
                    f"P-{sid}\t-0.1 -0.2\n")
        f.write("Generate train_en with beam=3: CIDEr-D = 1.0\n")
    return path


def shards(tiny, tmp_path, drop=(), extra=()):
    refs = lines(tiny["bin"] / "train_en.refs.txt")
    samples = [(i, teacher_caption(i, r)) for i, r in enumerate(refs) if i not in drop] + list(extra)
    return [write_generate_output(tmp_path / "t0.txt", samples[0::2]),
            write_generate_output(tmp_path / "t1.txt", samples[1::2])]


def test_eval_train_split_holds_every_training_photo_once(tiny):
    manifest = json.loads((tiny["bin"] / "manifest.json").read_text())
    assert manifest["eval_train"] and manifest["splits"]["train_en"]["refs_per_photo"] == 5.0
    photos = lines(tiny["bin"] / "train_en.images.txt")
    train = lines(tiny["bin"] / "train.images.txt")
    assert len(photos) == len(set(photos)) == manifest["splits"]["train_en"]["photos"]
    assert set(photos) == set(train)  # every training photo has its Flickr8k English captions
    for split in ("train_de", "train_fr", "train_cs"):  # every language gets one
        assert (tiny["bin"] / f"{split}.tag-cap.cap.bin").exists()


def test_teacher_captions_become_the_training_split(tiny, tmp_path):
    out = tmp_path / "kd"
    distill_captions.main(["--data", str(tiny["bin"]), "--teacher", "train_en", *map(str, shards(tiny, tmp_path)),
                           "--out", str(out)])
    tok = SpmTokenizer(str(tiny["bin"] / "spm.model"))
    refs, photos = lines(tiny["bin"] / "train_en.refs.txt"), lines(tiny["bin"] / "train_en.images.txt")
    expected = [("__en__", tok.encode_line(teacher_caption(i, r)), p) for i, (r, p) in enumerate(zip(refs, photos))]
    assert distill_captions.original_rows(str(out)) == expected  # read back from the binary files
    for name in ("dict.txt", "spm.model", "valid_en.tag-cap.cap.bin", "test_de.refs.txt", "train_en.images.txt"):
        assert filecmp.cmp(tiny["bin"] / name, out / name, shallow=False), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["train_samples"] == {"teacher_train_en": len(photos)} and not manifest["keep_original"]

    both = tmp_path / "kd_orig"
    distill_captions.main(["--data", str(tiny["bin"]), "--teacher", "train_en", *map(str, shards(tiny, tmp_path)),
                           "--out", str(both), "--keep-original"])
    original = distill_captions.original_rows(str(tiny["bin"]))
    assert len(original) == 50 + 48 + 8 + 8
    assert distill_captions.original_rows(str(both)) == original + expected


@pytest.mark.parametrize("case, message", [
    ("missing", "1 of 10 samples have no caption"),
    ("overlap", "is also in"),
    ("beyond", "beyond the 10 samples of train_en"),
    ("empty", "has an empty caption"),
    ("lang", "but train_en is en"),
])
def test_bad_teacher_output_is_refused_naming_the_file(tiny, tmp_path, case, message):
    n = len(lines(tiny["bin"] / "train_en.images.txt"))
    assert n == 10
    if case == "missing":
        files = shards(tiny, tmp_path, drop=(3,))
    elif case == "overlap":
        files = shards(tiny, tmp_path, drop=(3,), extra=[(2, "a dog")])
    elif case == "beyond":
        files = shards(tiny, tmp_path, extra=[(n, "a dog")])
    elif case == "empty":
        files = shards(tiny, tmp_path, drop=(1,), extra=[(1, "")])
    else:
        files = [write_generate_output(tmp_path / "de.txt", [(i, "ein hund") for i in range(n)], tag="__de__")]
    out = tmp_path / "kd"
    with pytest.raises(CaptionDataError, match=message) as err:
        distill_captions.main(["--data", str(tiny["bin"]), "--teacher", "train_en", *map(str, files),
                               "--out", str(out)])
    assert "t0.txt" in str(err.value) or "t1.txt" in str(err.value) or "de.txt" in str(err.value)
    assert not (out / "train.tag-cap.cap.bin").exists()  # nothing half-written

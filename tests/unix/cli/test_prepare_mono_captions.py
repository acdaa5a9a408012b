"""unix-prepare-mono-captions: Multi30K captions of photos outside Flickr8k, as a denoise stream."""

import json
import shutil

import pytest

from unix.cli import prepare_mono_captions
from tests.caption_data import build_raw_data, train_spm
from tests.conftest import SHARED_DATA, requires_shared_data
from unix.data.captions import CaptionDataError
from unix.data.tokenizer import SpmTokenizer, UnknownLanguageError


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("mono_raw")
    return {"raw": build_raw_data(root / "raw"), "spm": train_spm(root / "spm", root / "raw")}


def read_stream(out, lang, spm):
    """The binarized sentences of ``out``'s ``train.LANG-None.LANG``, decoded back to text."""
    from fairseq.data import Dictionary, data_utils

    d = Dictionary.load(str(out / "dict.txt"))
    ds = data_utils.load_indexed_dataset(str(out / f"train.{lang}-None.{lang}"), d)
    tok = SpmTokenizer(str(spm))
    return [tok.decode_pieces(d.string(ds[i])) for i in range(len(ds))]


def test_only_captions_of_photos_outside_flickr8k_are_kept(raw, tmp_path):
    # The tiny Multi30K train split has 9 Flickr8k photos and "9999.jpg" (not in Flickr8k), whose
    # Task 1 line and five Task 2 captions are all "A purple star ." (de: "Ein lila Stern.").
    out = tmp_path / "mono"
    assert prepare_mono_captions.main(["--data", str(raw["raw"]), "--spm-model", str(raw["spm"]), "--out", str(out),
                                       "--langs", "en", "de", "fr"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    # en/de: 10 Task 1 lines + 10 x 5 Task 2 captions; 9 + 45 of Flickr8k photos; 5 repeats of the kept one
    assert manifest["langs"]["en"] == {"read": 60, "flickr8k_photo": 54, "duplicate": 5, "kept": 1}
    assert manifest["langs"]["de"] == {"read": 60, "flickr8k_photo": 54, "duplicate": 5, "kept": 1}
    assert manifest["langs"]["fr"] == {"read": 10, "flickr8k_photo": 9, "duplicate": 0, "kept": 1}  # Task 1 only
    assert read_stream(out, "en", raw["spm"]) == ["A purple star ."]
    assert read_stream(out, "de", raw["spm"]) == ["Ein lila Stern."]
    assert read_stream(out, "fr", raw["spm"]) == ["étoile violette"]
    assert not list(out.glob("dict.*.txt"))  # one dict.txt, no per-language copies

    # the evaluation splits' photos are all Flickr8k photos here: reading them adds only drops
    out2 = tmp_path / "mono_all"
    prepare_mono_captions.main(["--data", str(raw["raw"]), "--spm-model", str(raw["spm"]), "--out", str(out2),
                                "--langs", "en", "--splits", "train", "val", "test_2016_flickr"])
    # + val Task 1 (3) + test Task 1 (2) + test Task 2 (2 x 5)
    assert json.loads((out2 / "manifest.json").read_text())["langs"]["en"] == {
        "read": 75, "flickr8k_photo": 69, "duplicate": 5, "kept": 1}


def corrupt(raw, tmp_path, edit):
    data = tmp_path / "raw"
    shutil.copytree(raw["raw"], data)
    edit(data / "multi30k")
    return data


def test_bad_input_is_named(raw, tmp_path):
    def run(data, *langs):
        prepare_mono_captions.main(["--data", str(data), "--spm-model", str(raw["spm"]),
                                    "--out", str(tmp_path / "out"), "--langs", *langs])

    def empty_line(m30k):
        path = m30k / "captions" / "train.3.en"
        lines = path.read_text(encoding="utf-8").splitlines()
        lines[1] = " "
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(CaptionDataError, match=r"captions/train\.3\.en:2: empty caption"):
        run(corrupt(raw, tmp_path / "a", empty_line), "en")

    def short_file(m30k):
        path = m30k / "train.de"
        path.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[:-1]) + "\n", encoding="utf-8")

    with pytest.raises(CaptionDataError, match=r"train\.de: 9 lines but .*image_splits/train\.txt names 10"):
        run(corrupt(raw, tmp_path / "b", short_file), "de")
    with pytest.raises(UnknownLanguageError, match="unknown language 'xx'"):
        run(raw["raw"], "en", "xx")


@requires_shared_data("multi30k", "captions")
@requires_shared_data("flickr8k", "images")
def test_real_multi30k_english(tmp_path):
    """Multi30K train, English: 6 x 29,000 lines; those of the 6,993 Flickr8k photos dropped."""
    from unix.data.tokenizer import train_sentencepiece

    sample = tmp_path / "spm_input.txt"
    sample.write_text("".join((SHARED_DATA / "multi30k" / "train.en").read_text(encoding="utf-8")
                              .splitlines(keepends=True)[:3000]), encoding="utf-8")
    spm = train_sentencepiece([str(sample)], str(tmp_path / "spm"), vocab_size=2000, num_threads=1)
    out = tmp_path / "mono"
    prepare_mono_captions.main(["--data", str(SHARED_DATA), "--spm-model", spm, "--out", str(out),
                                "--langs", "en", "--workers", "2"])
    stats = json.loads((out / "manifest.json").read_text())["langs"]["en"]
    # kept: 109,841, as counted by an independent first version of this filter (2026-12-04)
    assert stats == {"read": 174000, "flickr8k_photo": 41958, "duplicate": 174000 - 41958 - 109841, "kept": 109841}

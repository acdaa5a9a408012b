"""Data path: image lists, image decoding, collation, tokenizer, feature cache."""

import pytest
import torch

from tests.conftest import write_image
from unix.data.collate import collate_images, collate_tokens
from unix.data.feature_cache import FeatureCache, StaleCacheError, build_feature_cache
from unix.data.images import ImageError, load_image, read_image_list, verify_images
from unix.data.tokenizer import UnknownLanguageError, check_lang_in_vocab, encode_file, lang_tag


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "RGB"])
def test_load_image_converts_to_rgb(tmp_path, mode):
    path = write_image(tmp_path / f"im_{mode}.png", (10, 200, 30), mode=mode)
    im = load_image(str(path))
    assert im.mode == "RGB" and im.size == (40, 40)


def test_corrupt_and_missing_image_name_the_line(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"this is not a jpeg")
    write_image(tmp_path / "ok.png", (1, 2, 3))
    lst = tmp_path / "list.txt"
    lst.write_text("ok.png\n\nbad.jpg\n")
    paths = read_image_list(str(lst), str(tmp_path), expected_len=3)
    assert paths[1] is None
    with pytest.raises(ImageError, match=r"list.txt:3: cannot read image .*bad.jpg"):
        verify_images(paths, str(lst))
    lst.write_text("ok.png\nmissing.png\n\n")
    with pytest.raises(ImageError, match=r"list.txt:2: image not found: .*missing.png"):
        read_image_list(str(lst), str(tmp_path), expected_len=3)


def test_image_list_length_mismatch(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("\n\n")
    with pytest.raises(ImageError, match=r"2 lines but the split has 5 sentences"):
        read_image_list(str(lst), str(tmp_path), expected_len=5)


def test_collate_images_with_missing():
    a, b = torch.ones(3, 4, 4), 2 * torch.ones(3, 4, 4)
    stacked, mask = collate_images([a, None, b])
    assert stacked.shape == (3, 3, 4, 4) and mask.tolist() == [True, False, True]
    assert stacked[1].abs().sum() == 0 and stacked[2].mean() == 2
    assert collate_images([None, None]) [0] is None
    with pytest.raises(ValueError, match="differ in shape"):
        collate_images([a, torch.ones(3, 5, 5)])


def test_collate_tokens_padding_sides():
    seqs = [torch.tensor([5, 6, 2]), torch.tensor([7, 2])]
    assert collate_tokens(seqs, pad=1).tolist() == [[5, 6, 2], [7, 2, 1]]
    assert collate_tokens(seqs, pad=1, left_pad=True).tolist() == [[5, 6, 2], [1, 7, 2]]


def test_unknown_language_is_a_clear_error():
    symbols = {"__en__", "__de__", "hello"}
    assert check_lang_in_vocab("de", symbols) == "__de__"
    with pytest.raises(UnknownLanguageError, match=r"unknown language 'xx'.*languages known: de, en"):
        check_lang_in_vocab("xx", symbols)
    with pytest.raises(ValueError):
        lang_tag("d e")


def test_empty_sentence_names_file_and_line(tiny_corpus, tmp_path):
    from unix.data.tokenizer import SpmTokenizer

    tok = SpmTokenizer(str(tiny_corpus / "bin" / "spm.model"))
    src = tmp_path / "x.en"
    src.write_text("the red dog .\n\nthe cat .\n")
    with pytest.raises(ValueError, match=r"x.en:2: empty sentence"):
        encode_file(tok, str(src), str(tmp_path / "out"))


def test_feature_cache_roundtrip_and_stale(tmp_path):
    paths = [str(write_image(tmp_path / f"{i}.png", (i * 40, 10, 10))) for i in range(3)]
    cache = build_feature_cache(paths + paths[:1], str(tmp_path / "cache"), "test_efficientnet", batch_size=2)
    assert len(cache.index) == 3  # duplicates computed once
    feats = cache[paths[1]]
    assert feats.dtype == torch.float16 and feats.shape == (cache.num_tokens, cache.feature_dim)
    reopened = FeatureCache(str(tmp_path / "cache"), expected_key=cache.key)
    torch.testing.assert_close(reopened[paths[1]], feats)
    stale = dict(cache.key, weights="0123456789abcdef")
    with pytest.raises(StaleCacheError, match="stale"):
        FeatureCache(str(tmp_path / "cache"), expected_key=stale)
    with pytest.raises(KeyError, match=r"l.txt:2: image .* is not in feature cache"):
        cache.check_covers([paths[0], str(tmp_path / "other.png")], "l.txt")

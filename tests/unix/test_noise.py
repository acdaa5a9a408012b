"""Denoising corruption (span masking, token deletion) on small sequences."""

from __future__ import annotations

import math

import pytest
import torch

from unix.data.noise import delete_tokens, sample_spans, span_mask, word_starts_from_pieces

MASK, BOS_LANG, EOS = 99, 7, 2


def gen(seed):
    return torch.Generator().manual_seed(seed)


def is_subsequence(small, big):
    it = iter(big)
    return all(x in it for x in small)


def sentence(n):
    return torch.tensor([BOS_LANG] + list(range(10, 10 + n)) + [EOS])


def test_sample_spans_properties():
    maskable = [False] + [True] * 8 + [False] + [True] * 5 + [False]  # a protected unit inside
    n = sum(maskable)
    for seed in range(30):
        for ratio, lam in ((0.3, 3.0), (0.5, 1.0), (1.0, 3.0), (0.2, None)):
            spans, ins = sample_spans(maskable, ratio, lam, gen(seed))
            covered = [u for s, e in spans for u in range(s, e)]
            assert len(covered) == len(set(covered)) == math.ceil(ratio * n)  # disjoint, exact budget
            assert all(maskable[u] for u in covered)  # contiguous ranges never cross protected units
            assert all(e > s for s, e in spans)
            assert len(ins) <= math.ceil(ratio * n) and all(maskable[k] for k in ins)
            if lam is None:
                assert not ins and all(e - s == 1 for s, e in spans)


def test_sample_spans_insertions_only_when_allowed():
    maskable = [True] * 20
    with_ins = sum(len(sample_spans(maskable, 0.5, 0.5, gen(s))[1]) for s in range(20))
    assert with_ins > 0  # P(length 0) = e^-0.5 ~ 0.6
    assert all(not sample_spans(maskable, 0.5, 0.5, gen(s), allow_insertions=False)[1] for s in range(20))


def test_span_mask_everything_one_mask_per_token_span():
    # ratio 1, unit-length spans: every maskable token is its own span -> one <mask> each
    out = span_mask(sentence(3), MASK, ratio=1.0, poisson_lambda=None, protected=[BOS_LANG, EOS], generator=gen(0))
    assert out.tolist() == [BOS_LANG, MASK, MASK, MASK, EOS]
    out = span_mask(sentence(3), MASK, ratio=0.0, protected=[BOS_LANG, EOS], generator=gen(0))
    assert out.tolist() == sentence(3).tolist()


def test_span_mask_replace_each_token():
    x = sentence(10)
    for seed in range(10):
        out = span_mask(x, MASK, ratio=0.3, poisson_lambda=3.0, replace_length=-1, protected=[BOS_LANG, EOS],
                        generator=gen(seed))
        assert out.shape == x.shape
        masked = out.eq(MASK)
        assert int(masked.sum()) == 3  # ceil(0.3 * 10)
        assert torch.equal(out[~masked], x[~masked]) and out[0] == BOS_LANG and out[-1] == EOS


def test_span_mask_infilling_and_deletion():
    x = sentence(12)
    for seed in range(10):
        out = span_mask(x, MASK, ratio=0.5, poisson_lambda=3.0, replace_length=1, protected=[BOS_LANG, EOS],
                        generator=gen(seed))
        kept = out[out.ne(MASK)].tolist()
        assert is_subsequence(kept, x.tolist()) and len(kept) == 2 + 12 - 6
        assert out.eq(MASK).sum() >= 1 and out[0] == BOS_LANG and out[-1] == EOS
        gone = span_mask(x, MASK, ratio=0.5, replace_length=0, protected=[BOS_LANG, EOS], generator=gen(seed))
        assert MASK not in gone.tolist() and len(gone) == 14 - 6 and is_subsequence(gone.tolist(), x.tolist())


def test_span_mask_is_seeded():
    x = sentence(15)
    outs = [span_mask(x, MASK, protected=[BOS_LANG, EOS], generator=gen(s)).tolist() for s in range(8)]
    again = [span_mask(x, MASK, protected=[BOS_LANG, EOS], generator=gen(s)).tolist() for s in range(8)]
    assert outs == again
    assert len({tuple(o) for o in outs}) > 1


def test_whole_word_masking():
    pieces = ["__en__", "\u2581the", "\u2581ele", "phant", "\u2581is", "\u2581very", "\u2581bi", "g", "</s>"]
    ws = word_starts_from_pieces(pieces)
    assert ws.tolist() == [True, True, True, False, True, True, True, False, True]
    x = torch.arange(20, 20 + len(pieces))
    prot = [int(x[0]), int(x[-1])]
    words = [[1], [2, 3], [4], [5], [6, 7]]
    for seed in range(15):
        out = span_mask(x, MASK, ratio=0.4, replace_length=-1, protected=prot, word_starts=ws, generator=gen(seed))
        m = out.eq(MASK).tolist()
        assert all(len({m[i] for i in w}) == 1 for w in words)  # a word is masked entirely or not at all
        assert sum(m[w[0]] for w in words) == 2  # ceil(0.4 * 5 words)
        d = delete_tokens(x, ratio=0.4, protected=prot, word_starts=ws, generator=gen(seed)).tolist()
        assert all(len({int(x[i]) in d for i in w}) == 1 for w in words)


def test_delete_tokens():
    x = sentence(6)
    assert delete_tokens(x, 1.0, protected=[BOS_LANG, EOS], generator=gen(0)).tolist() == [BOS_LANG, EOS]
    assert delete_tokens(x, 0.0, protected=[BOS_LANG, EOS], generator=gen(0)).tolist() == x.tolist()
    outs = set()
    for seed in range(10):
        out = delete_tokens(x, 0.5, protected=[BOS_LANG, EOS], generator=gen(seed)).tolist()
        assert len(out) == 8 - 3 and is_subsequence(out, x.tolist()) and out[0] == BOS_LANG and out[-1] == EOS
        assert out == delete_tokens(x, 0.5, protected=[BOS_LANG, EOS], generator=gen(seed)).tolist()
        outs.add(tuple(out))
    assert len(outs) > 1


def test_bad_arguments():
    x = sentence(4)
    with pytest.raises(ValueError):
        span_mask(x, MASK, ratio=1.5)
    with pytest.raises(ValueError):
        span_mask(x, MASK, poisson_lambda=0.0)
    with pytest.raises(ValueError):
        span_mask(x, MASK, replace_length=2)
    with pytest.raises(ValueError):
        span_mask(x[None], MASK)
    with pytest.raises(ValueError):
        delete_tokens(x, ratio=-0.1)

"""--no-repeat-ngram-size: fairseq's blocker reads padding (issue #5206); ours reads the prefix."""

import pytest
import torch
from fairseq.ngram_repeat_block import NGramRepeatBlock

from fairseq_plugins.generation.ngram_block import UnixNGramRepeatBlock, banned_next_tokens, fix_ngram_blocking

PAD, EOS = 1, 2


def test_banned_next_tokens_hand_computed():
    #        </s> 5  6  7  5  6
    prefix = [EOS, 5, 6, 7, 5, 6]
    assert banned_next_tokens(prefix, 3) == [7]  # (5, 6, 7) seen: 7 may not follow "5 6" again
    assert banned_next_tokens(prefix, 2) == [7]  # after 6 came 7
    assert banned_next_tokens([EOS, 5, 5, 9, 5], 2) == [5, 9]  # after 5 came 5 and 9
    assert banned_next_tokens(prefix, 4) == []  # "7 5 6" is new
    assert banned_next_tokens(prefix, 1) == [EOS, 5, 6, 7]
    assert banned_next_tokens([EOS], 3) == []
    with pytest.raises(ValueError):
        banned_next_tokens(prefix, 0)


def buffer(rows, max_len=10):
    """The generator's token buffer: (rows, max_len + 2), padded after the prefix."""
    t = torch.full((len(rows), max_len + 2), PAD)
    for i, r in enumerate(rows):
        t[i, :len(r)] = torch.tensor(r)
    return t


def test_fairseq_blocker_misses_what_ours_blocks():
    rows = [[EOS, 5, 6, 7, 5, 6], [EOS, 8, 8, 8, 9, 8]]  # step 5: six columns generated
    step = 5
    stock = NGramRepeatBlock(3, use_extension=False)(buffer(rows), torch.zeros(2, 12), 2, 1, step)
    # fairseq compares the buffer's last two columns (padding) with the prefix: nothing is blocked.
    # If this starts to fail, fairseq fixed issue #5206 and UnixNGramRepeatBlock can go.
    assert torch.isfinite(stock).all()
    ours = UnixNGramRepeatBlock(3)(buffer(rows), torch.zeros(2, 12), 2, 1, step)
    assert torch.isinf(ours[0]).nonzero().flatten().tolist() == [7]
    assert torch.isinf(ours[1]).nonzero().flatten().tolist() == []  # "9 8" not seen before
    ours = UnixNGramRepeatBlock(2)(buffer(rows), torch.zeros(2, 12), 2, 1, step)
    assert torch.isinf(ours[1]).nonzero().flatten().tolist() == [8, 9]  # after 8 came 8 and 9
    unigrams = UnixNGramRepeatBlock(1)(buffer(rows), torch.zeros(2, 12), 2, 1, step)
    assert not torch.isinf(unigrams[:, EOS]).any()  # ending stays allowed
    with pytest.raises(ValueError, match="expected 4 hypotheses"):
        UnixNGramRepeatBlock(2)(buffer(rows), torch.zeros(2, 12), 2, 2, step)


def test_fix_ngram_blocking_replaces_only_a_blocker():
    class Gen:
        repeat_ngram_blocker = NGramRepeatBlock(4, use_extension=False)

    g = fix_ngram_blocking(Gen())
    assert isinstance(g.repeat_ngram_blocker, UnixNGramRepeatBlock) and g.repeat_ngram_blocker.no_repeat_ngram_size == 4

    class NoBlocker:
        repeat_ngram_blocker = None

    assert fix_ngram_blocking(NoBlocker()).repeat_ngram_blocker is None

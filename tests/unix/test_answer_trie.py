"""AnswerTrie and constrain_log_probs (plain PyTorch, no fairseq)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unix.generation import AnswerTrie, constrain_log_probs

EOS = 2
TOKENS = st.integers(min_value=3, max_value=12)
ANSWER_SETS = st.lists(st.lists(TOKENS, min_size=1, max_size=4), min_size=1, max_size=8)


def test_next_tokens_contains_and_sizes():
    trie = AnswerTrie(EOS, [[10], [11, 12], [11, 13], [11]])
    assert sorted(trie.next_tokens([])) == [10, 11]
    assert sorted(trie.next_tokens([11])) == [EOS, 12, 13]  # "11" is an answer and a prefix
    assert trie.next_tokens([10]) == [EOS]
    assert trie.next_tokens([12]) == []  # not the start of any answer
    assert trie.next_tokens([10, EOS]) == []
    assert [11, 12] in trie and [11] in trie and [12] not in trie and [] not in trie
    assert len(trie) == 4 and trie.max_len == 2
    assert not trie.add([11, 12])  # repeat
    assert len(trie) == 4
    assert sorted(map(tuple, trie.answers())) == [(10,), (11,), (11, 12), (11, 13)]


def test_bad_answers_rejected():
    trie = AnswerTrie(EOS)
    with pytest.raises(ValueError, match="empty"):
        trie.add([])
    with pytest.raises(ValueError, match="eos"):
        trie.add([5, EOS])


def test_mask_of_a_dead_prefix_is_all_false():
    trie = AnswerTrie(EOS, [[5, 6]])
    mask = trie.allowed_mask(torch.tensor([[5], [7], [6]]), vocab_size=9)
    assert mask[0].nonzero().flatten().tolist() == [6]
    assert not mask[1].any() and not mask[2].any()


def _continuations(answers, prefix):
    n = len(prefix)
    out = set()
    for a in answers:
        if list(a[:n]) == list(prefix):
            out.add(a[n] if len(a) > n else EOS)
    return out


@settings(max_examples=60, deadline=None)
@given(answers=ANSWER_SETS, data=st.data())
def test_mask_equals_brute_force_continuations(answers, data):
    trie = AnswerTrie(EOS, answers)
    assert len(trie) == len({tuple(a) for a in answers})
    prefixes = [data.draw(st.lists(TOKENS, max_size=3)) for _ in range(3)]
    prefixes += [list(a[: data.draw(st.integers(0, len(a)))]) for a in answers[:3]]
    T = max(len(p) for p in prefixes)
    rows = [p for p in prefixes if len(p) == T]  # one (N, T) tensor: the prefixes of the longest length
    V = 14
    lprobs = torch.randn(len(rows), V).log_softmax(-1)
    out = constrain_log_probs(lprobs, torch.tensor(rows, dtype=torch.long).view(len(rows), T), trie)
    for i, prefix in enumerate(rows):
        allowed = _continuations(answers, prefix)
        finite = set(torch.isfinite(out[i]).nonzero().flatten().tolist())
        assert finite == allowed
        for t in allowed:
            assert out[i, t] == lprobs[i, t]


@settings(max_examples=60, deadline=None)
@given(answers=ANSWER_SETS, seed=st.integers(0, 2**31 - 1))
def test_greedy_walk_with_random_scores_stays_in_the_answer_set(answers, seed):
    trie = AnswerTrie(EOS, answers)
    gen = torch.Generator().manual_seed(seed)
    prefix = []
    for _ in range(trie.max_len + 1):
        scores = torch.randn(1, 16, generator=gen) * 5
        scores[0, 15] = 100.0  # a tempting token outside every answer
        scores = constrain_log_probs(scores, torch.tensor([prefix], dtype=torch.long).view(1, len(prefix)), trie)
        best = int(scores.argmax())
        assert math.isfinite(float(scores[0, best]))
        if best == EOS:
            break
        prefix.append(best)
    assert prefix in trie
    assert tuple(prefix) in {tuple(a) for a in answers}

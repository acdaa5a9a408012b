"""Beam search of the core (unix.generation.beam_search) on a tiny random UnixModel.

Its equality with fairseq-generate on trained checkpoints is tested in
tests/fairseq_plugins/test_beam_search_equivalence.py.
"""

import pytest
import torch

from unix import UnixConfig, UnixModel
from unix.generation import AnswerTrie, beam_search, collate_sources
from unix.generation.beam_search import block_repeated_ngrams

V, PAD, EOS, UNK, TAG = 40, 1, 2, 3, 4
N_FEATS, C = 5, 16


def build(eos_boost: float = 2.0, **overrides) -> UnixModel:
    """unix_tiny with random weights; ``eos_boost`` scales eos's (tied) embedding so that it is
    chosen sometimes and hypotheses get different lengths."""
    torch.manual_seed(0)
    cfg = UnixConfig.from_arch("unix_tiny", **{"image_feature_dim": C, "dropout": 0.0, **overrides})
    model = UnixModel(cfg, V, PAD)
    with torch.no_grad():
        model.encoder.embed_tokens.weight[EOS] *= eos_boost
    return model.eval()


def sources():
    """Four sources of different lengths (tag first, eos last), two with an image."""
    g = torch.Generator().manual_seed(3)
    lists = [[TAG] + torch.randint(5, V, (n,), generator=g).tolist() + [EOS] for n in (5, 1, 3, 7)]
    src, lengths = collate_sources(lists, PAD)
    feats = torch.randn(len(lists), N_FEATS, C, generator=g)
    mask = torch.tensor([True, False, True, False])
    return lists, src, lengths, dict(image_features=feats, image_mask=mask)


def search(model, src, lengths, images, **kw):
    return beam_search(model, src, lengths, eos=EOS, pad=PAD, unk=UNK, **images, **kw)


def teacher_forced(model, src_row, images_row, tokens):
    """(L,) log-probabilities of ``tokens`` under a cache-free forward pass after ``</s>``."""
    prev = torch.cat([tokens.new_tensor([EOS]), tokens[:-1]])[None]
    logits = model(src_row, prev, **images_row)
    return logits.float().log_softmax(-1)[0].gather(-1, tokens[:, None])[:, 0]


def row(images, b):
    return {k: v[b:b + 1] for k, v in images.items()}


def test_collate_sources_pads_left_or_right():
    src, lengths = collate_sources([[5, 6, EOS], [7, EOS]], PAD)
    assert src.tolist() == [[5, 6, EOS], [PAD, 7, EOS]] and lengths.tolist() == [3, 2]
    src, _ = collate_sources([[5, 6, EOS], [7, EOS]], PAD, left_pad=False)
    assert src.tolist() == [[5, 6, EOS], [7, EOS, PAD]]
    with pytest.raises(ValueError, match="source 1 is empty"):
        collate_sources([[5, EOS], []], PAD)


def test_beam_one_equals_greedy_decode():
    model = build()
    _, src, lengths, images = sources()
    # start symbol <s> (id 0) and no min_len: greedy_decode has neither the min_len nor fairseq's bos=eos
    hypos = search(model, src, lengths, images, beam=1, min_len=0, max_len_b=8, bos=0)
    greedy = model.greedy_decode(src, bos=0, eos=EOS, max_len=9, **images)
    ended_early = 0
    for b, (h,) in enumerate(hypos):
        n = len(h.tokens)
        assert h.tokens[:-1].tolist() == greedy[b, :n - 1].tolist()
        if n < 9:  # ended by choice, not at the length limit: greedy chose eos there too
            assert greedy[b, n - 1] == EOS
            ended_early += 1
    assert 0 < ended_early < len(hypos)  # both cases are exercised


@pytest.mark.parametrize("lenpen", [1.0, 0.6])
def test_hypotheses_sorted_with_teacher_forced_scores(lenpen):
    model = build()
    _, src, lengths, images = sources()
    hypos = search(model, src, lengths, images, beam=4, nbest=4, max_len_b=10, lenpen=lenpen)
    lengths_seen = set()
    for b, beams in enumerate(hypos):
        assert len(beams) == 4
        scores = [h.score for h in beams]
        assert scores == sorted(scores, reverse=True)
        for h in beams:
            assert h.tokens[-1] == EOS and (h.tokens[:-1] != EOS).all()
            expected = teacher_forced(model, src[b:b + 1], row(images, b), h.tokens)
            torch.testing.assert_close(h.positional_scores, expected, atol=1e-4, rtol=0)
            L = len(h.tokens)
            assert h.score == pytest.approx(float(h.positional_scores.sum()) / L ** lenpen, abs=1e-5)
            lengths_seen.add(L)
    assert len(lengths_seen) > 2


def test_batch_equals_one_sentence_at_a_time():
    """Padding and batch removal do not change a sentence's hypotheses."""
    model = build()
    lists, src, lengths, images = sources()
    batched = search(model, src, lengths, images, beam=3, nbest=3, max_len_b=10)
    for b, s in enumerate(lists):
        alone_src, alone_len = collate_sources([s], PAD)
        alone = search(model, alone_src, alone_len, row(images, b), beam=3, nbest=3, max_len_b=10)[0]
        assert [h.tokens.tolist() for h in alone] == [h.tokens.tolist() for h in batched[b]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in batched[b]], abs=1e-5)


def repeats(seq, n):
    grams = [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]
    return len(grams) != len(set(grams))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_ngram_size(n):
    model = build(eos_boost=1.0)
    _, src, lengths, images = sources()
    kw = dict(beam=3, nbest=3, max_len_b=14, min_len=12)

    def seqs(hypos):  # n > 1: the start symbol counts as a token (the plugin's rule)
        return [([] if n == 1 else [EOS]) + h.tokens.tolist() for beams in hypos for h in beams]

    assert any(repeats(s, n) for s in seqs(search(model, src, lengths, images, **kw)))
    blocked = seqs(search(model, src, lengths, images, no_repeat_ngram_size=n, **kw))
    assert blocked and not any(repeats(s, n) for s in blocked)


def test_block_repeated_ngrams_by_hand():
    tokens = torch.tensor([[2, 5, 6, 5, 9, 1], [2, 7, 7, 7, 7, 1]])
    lprobs = torch.zeros(2, 12)
    block_repeated_ngrams(tokens, lprobs, step=3, n=2)  # prefixes 2 5 6 5 / 2 7 7 7
    assert lprobs[0].isinf().nonzero()[:, 0].tolist() == [6]  # (5, 6) occurred
    assert lprobs[1].isinf().nonzero()[:, 0].tolist() == [7]
    lprobs = torch.zeros(2, 12)
    block_repeated_ngrams(tokens, lprobs, step=4, n=1)  # every generated token, not the start symbol
    assert lprobs[0].isinf().nonzero()[:, 0].tolist() == [5, 6, 9]
    assert lprobs[1].isinf().nonzero()[:, 0].tolist() == [7]


@pytest.mark.parametrize("stop", ["fairseq", "best"])
def test_answer_trie_yields_only_answers(stop):
    model = build()
    _, src, lengths, images = sources()
    answers = [[10], [11, 12], [11, 13, 14], [20, 21]]
    trie = AnswerTrie(EOS, answers)
    hypos = search(model, src, lengths, images, beam=4, nbest=4, answer_trie=trie, stop=stop)
    for b, beams in enumerate(hypos):
        got = sorted(h.tokens[:-1].tolist() for h in beams)
        assert got == sorted(answers)  # beam = number of answers: every answer, each once
        for h in beams:
            expected = teacher_forced(model, src[b:b + 1], row(images, b), h.tokens)
            torch.testing.assert_close(h.positional_scores, expected, atol=1e-4, rtol=0)
    one = search(model, src, lengths, images, beam=2, answer_trie=trie, stop=stop)
    assert all(h.tokens[:-1].tolist() in answers for (h,) in one)
    with pytest.raises(ValueError, match="answer trie"):
        search(model, src, lengths, images, answer_trie=trie, no_repeat_ngram_size=2)


def test_min_len():
    model = build(eos_boost=5.0)
    _, src, lengths, images = sources()
    free = search(model, src, lengths, images, beam=3, nbest=3, max_len_b=12)
    assert min(len(h.tokens) for beams in free for h in beams) < 6
    hypos = search(model, src, lengths, images, beam=3, nbest=3, max_len_b=12, min_len=5)
    assert min(len(h.tokens) for beams in hypos for h in beams) >= 6


def test_max_len_from_a_b_and_the_model_positions():
    model = build(eos_boost=0.0)
    _, src, lengths, images = sources()  # width 9
    hypos = search(model, src, lengths, images, beam=2, max_len_a=0.5, max_len_b=1)  # int(0.5 * 9 + 1) = 5
    assert {len(h.tokens) for (h,) in hypos} <= set(range(1, 7))
    forced = search(model, src, lengths, images, beam=2, max_len_b=5, min_len=5)
    assert {len(h.tokens) for (h,) in forced} == {6}
    short = build(eos_boost=0.0, max_positions=10)  # at most max_positions - 1 = 9 tokens, then eos
    capped = search(short, src, lengths, images, beam=2, max_len_b=100, min_len=9)
    assert {len(h.tokens) for (h,) in capped} == {10}
    with pytest.raises(ValueError, match="min_len"):
        search(short, src, lengths, images, max_len_b=100, min_len=10)


def test_best_stop_finds_at_least_fairseqs_best():
    model = build()
    _, src, lengths, images = sources()
    fair = search(model, src, lengths, images, beam=3, max_len_b=10)
    best = search(model, src, lengths, images, beam=3, max_len_b=10, stop="best")
    assert all(b[0].score >= f[0].score - 1e-6 for b, f in zip(best, fair))


def test_unk_penalty_and_bad_options():
    model = build()
    _, src, lengths, images = sources()
    hypos = search(model, src, lengths, images, beam=3, nbest=3, max_len_b=10, unk_penalty=100.0)
    assert not any((h.tokens == UNK).any() for beams in hypos for h in beams)
    assert model.training is False
    model.train()
    search(model, src, lengths, images, beam=2, max_len_b=3)
    assert model.training  # restored
    with pytest.raises(ValueError, match="stop="):
        search(model, src, lengths, images, stop="hf")
    with pytest.raises(ValueError, match="nbest"):
        search(model, src, lengths, images, beam=2, nbest=3)


def test_cross_attention_with_memory_rows_shared_by_beams():
    """Query rows sharing one memory row (the beams of a sentence) equal the memory repeated per row."""
    from unix.modules.attention import MultiheadAttention

    torch.manual_seed(0)
    attn = MultiheadAttention(16, 4).eval()
    memory, pad = torch.randn(3, 7, 16), torch.zeros(3, 7, dtype=torch.bool)
    pad[1, :2] = True
    query = torch.randn(3 * 5, 2, 16)
    shared = attn(query, memory, key_padding_mask=pad, cache={}, static_kv=True)
    rows = torch.arange(3).repeat_interleave(5)
    repeated = attn(query, memory[rows], key_padding_mask=pad[rows], cache={}, static_kv=True)
    torch.testing.assert_close(shared, repeated, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="cannot share"):
        attn(torch.randn(7, 1, 16), memory, key_padding_mask=pad, static_kv=True)


def test_resolve_beam_stop_and_export_defaults():
    """--beam-stop (None: the task's default) unless an old flag names the rule; export reads both."""
    from unix.export import generation_defaults
    from unix.generation.beam_search import resolve_beam_stop

    assert resolve_beam_stop(None, "best") == "best"
    assert resolve_beam_stop("fairseq", "best") == "fairseq"
    assert resolve_beam_stop("fairseq", "fairseq", best_beam_stop=True) == "best"
    assert resolve_beam_stop(None, "best", fairseq_beam_stop=True) == "fairseq"
    with pytest.raises(ValueError, match="choose from fairseq, best"):
        resolve_beam_stop("greedy", "best")
    with pytest.raises(ValueError, match="contradict"):
        resolve_beam_stop(None, "best", best_beam_stop=True, fairseq_beam_stop=True)
    # old checkpoints (no beam_stop) and new ones
    assert generation_defaults({"_name": "unix_caption"})["caption"]["stop"] == "fairseq"
    assert generation_defaults({"_name": "unix_caption", "best_beam_stop": True})["caption"]["stop"] == "best"
    assert generation_defaults({"_name": "unix_caption", "beam_stop": "best"})["caption"]["stop"] == "best"
    assert generation_defaults({"_name": "unix_vqa"})["answer"]["stop"] == "best"
    assert generation_defaults({"_name": "unix_vqa", "fairseq_beam_stop": True})["answer"]["stop"] == "fairseq"
    assert generation_defaults({"_name": "unix_vqa", "beam_stop": "fairseq"})["answer"]["stop"] == "fairseq"

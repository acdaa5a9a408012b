"""Closed-set beam search (fairseq's SequenceGenerator + AnswerTrie) never leaves the answer set."""

import pytest
import torch
from fairseq.data import Dictionary
from fairseq.models import FairseqEncoder, FairseqEncoderDecoderModel, FairseqIncrementalDecoder
from fairseq.sequence_generator import SequenceGenerator
from hypothesis import given, settings
from hypothesis import strategies as st

import fairseq_plugins  # noqa: F401  (registers the plugins)
from fairseq_plugins.generation.trie_generator import (BestStopTrieGenerator, TrieConstrainedSequenceGenerator,
                                                       load_answer_trie)
from unix.data.vqa import VQADataError
from unix.generation import AnswerTrie

N_WORDS = 10


def make_dict() -> Dictionary:
    d = Dictionary()
    for i in range(N_WORDS):
        d.add_symbol(f"w{i}")
    return d


class RandomEncoder(FairseqEncoder):
    def forward(self, src_tokens, src_lengths=None, **unused):
        return {"src": src_tokens}

    def reorder_encoder_out(self, encoder_out, new_order):
        return {"src": encoder_out["src"].index_select(0, new_order)}


class RandomDecoder(FairseqIncrementalDecoder):
    """Logits drawn at random from (seed, source sentence, prefix); one token is always tempting."""

    def __init__(self, dictionary, seed: int, tempting: int):
        super().__init__(dictionary)
        self.seed, self.tempting = seed, tempting

    def forward(self, prev_output_tokens, encoder_out=None, incremental_state=None, **unused):
        rows = []
        for src, prefix in zip(encoder_out["src"].tolist(), prev_output_tokens.tolist()):
            g = torch.Generator().manual_seed(hash((self.seed, tuple(src), tuple(prefix))) % (2**31))
            logits = torch.randn(len(self.dictionary), generator=g) * 4
            logits[self.tempting] = 50.0
            rows.append(logits)
        return torch.stack(rows)[:, None, :], {"attn": [None]}

    def reorder_incremental_state(self, incremental_state, new_order):
        pass

    def max_positions(self):
        return 64


def make_model(d: Dictionary, seed: int, tempting: int):
    model = FairseqEncoderDecoderModel(RandomEncoder(d), RandomDecoder(d, seed, tempting))
    return model.eval()


def make_sample(d: Dictionary, bsz: int):
    src = torch.arange(bsz * 3).view(bsz, 3) % N_WORDS + d.nspecial
    return {"id": torch.arange(bsz), "net_input": {"src_tokens": src, "src_lengths": torch.full((bsz,), 3)}}


WORD = st.integers(min_value=4, max_value=4 + N_WORDS - 2)  # w9 (the last id) stays outside every answer
ANSWERS = st.lists(st.lists(WORD, min_size=1, max_size=3), min_size=1, max_size=7)


@pytest.mark.parametrize("gen_cls", [TrieConstrainedSequenceGenerator, BestStopTrieGenerator])
@settings(max_examples=40, deadline=None)
@given(answers=ANSWERS, beam=st.integers(1, 6), bsz=st.integers(1, 3), seed=st.integers(0, 10**6))
def test_closed_set_beam_search_never_leaves_the_answer_set(gen_cls, answers, beam, bsz, seed):
    d = make_dict()
    tempting = d.index(f"w{N_WORDS - 1}")
    answer_set = {tuple(a) for a in answers}
    trie = AnswerTrie(d.eos(), answers)
    gen = gen_cls([make_model(d, seed, tempting)], d, answer_trie=trie, beam_size=beam)
    with torch.no_grad():
        out = gen.generate(None, make_sample(d, bsz))
    assert len(out) == bsz
    for hypos in out:
        got = [tuple(h["tokens"].tolist()[:-1]) for h in hypos]
        assert all(h["tokens"][-1] == d.eos() for h in hypos)
        assert set(got) <= answer_set, f"left the answer set: {got} vs {answer_set}"
        assert len(got) == len(set(got)) and 1 <= len(got) <= min(beam, len(answer_set))
        if beam >= len(answer_set):  # a beam at least as wide as the list keeps every answer
            assert set(got) == answer_set
        scores = [float(h["score"]) for h in hypos]
        assert scores == sorted(scores, reverse=True)


def test_free_generation_does_leave_the_set():
    """Without the trie the tempting token wins: the constraint is what keeps answers in the list."""
    d = make_dict()
    tempting = d.index(f"w{N_WORDS - 1}")
    gen = SequenceGenerator([make_model(d, 0, tempting)], d, beam_size=2, max_len_b=3)
    with torch.no_grad():
        out = gen.generate(None, make_sample(d, 2))
    assert all(tempting in h[0]["tokens"].tolist() for h in out)


def test_answer_list_file_errors(tmp_path):
    d = make_dict()
    path = tmp_path / "answers.spm.txt"
    path.write_text("w1\nw2 w3\n")
    trie = load_answer_trie(str(path), d)
    assert len(trie) == 2 and [d.index("w2"), d.index("w3")] in trie
    path.write_text("w1\nw2 unknownpiece\n")
    with pytest.raises(ValueError, match=f"{path}:2: .*unknownpiece"):
        load_answer_trie(str(path), d)
    path.write_text("")
    with pytest.raises(VQADataError, match="empty"):
        load_answer_trie(str(path), d)
    with pytest.raises(ValueError, match="at least one answer"):
        TrieConstrainedSequenceGenerator([make_model(d, 0, 4)], d, answer_trie=AnswerTrie(d.eos()))

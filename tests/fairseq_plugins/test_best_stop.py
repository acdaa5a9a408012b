"""Beam search that keeps the best finished hypotheses (fairseq_plugins.generation.best_stop)."""

import pytest
import torch
from fairseq.models import FairseqEncoderDecoderModel, FairseqIncrementalDecoder
from fairseq.sequence_generator import SequenceGenerator
from hypothesis import given, settings
from hypothesis import strategies as st

from fairseq_plugins.generation.best_stop import BestStopSequenceGenerator, keep_best, sentence_done
from fairseq_plugins.generation.trie_generator import BestStopTrieGenerator
from tests.fairseq_plugins.test_trie_generator import RandomEncoder, make_dict, make_model, make_sample
from unix.generation import AnswerTrie


class ScriptedDecoder(FairseqIncrementalDecoder):
    """A confident model: the answer ``w0 w1 w2 w3 </s>``, its k-th token with p = 1 - 10^-(k+1)
    (the rest spread evenly: ever less room to leave the answer); a prefix that has left the
    answer puts 0.99 on ``</s>``: the short junk that fills fairseq's finished slots before the
    answer can end.
    """

    def __init__(self, d):
        super().__init__(d)
        self.answer = [d.index(f"w{i}") for i in range(4)] + [d.eos()]

    def forward(self, prev_output_tokens, encoder_out=None, incremental_state=None, **unused):
        V = len(self.dictionary)
        rows = []
        for prefix in prev_output_tokens.tolist():
            gen = prefix[1:]  # drop the start symbol
            if gen == self.answer[:len(gen)]:
                top, nxt = 1 - 10.0 ** -(len(gen) + 1), self.answer[len(gen)]
            else:
                top, nxt = 0.99, self.dictionary.eos()
            p = torch.full((V,), (1 - top) / (V - 1), dtype=torch.float64)
            p[nxt] = top
            rows.append(p.log().float())
        return torch.stack(rows)[:, None, :], {"attn": [None]}

    def reorder_incremental_state(self, incremental_state, new_order):
        pass

    def max_positions(self):
        return 64


def scripted_model(d):
    return FairseqEncoderDecoderModel(RandomEncoder(d), ScriptedDecoder(d)).eval()


def test_fairseq_stops_on_junk_best_stop_finds_the_answer():
    d = make_dict()
    model = scripted_model(d)
    answer = model.decoder.answer
    sample = make_sample(d, 2)
    with torch.no_grad():
        stock = SequenceGenerator([model], d, beam_size=5, max_len_b=10).generate(None, sample)
        ours = BestStopSequenceGenerator([model], d, beam_size=5, max_len_b=10).generate(None, sample)
        greedy = SequenceGenerator([model], d, beam_size=1, max_len_b=10).generate(None, sample)
    for s in range(2):
        assert greedy[s][0]["tokens"].tolist() == answer
        # fairseq: five short junk hypotheses ended first, the answer is not among them
        assert answer not in [h["tokens"].tolist() for h in stock[s]]
        assert float(stock[s][0]["score"]) < float(greedy[s][0]["score"])
        # ours: the answer first, with greedy's score; still five hypotheses, best first
        assert ours[s][0]["tokens"].tolist() == answer
        assert float(ours[s][0]["score"]) == pytest.approx(float(greedy[s][0]["score"]), abs=1e-5)
        scores = [float(h["score"]) for h in ours[s]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)


@settings(max_examples=30, deadline=None)
@given(beam=st.integers(1, 6), bsz=st.integers(1, 4), seed=st.integers(0, 10**6), max_len=st.integers(1, 6))
def test_never_worse_than_fairseq(beam, bsz, seed, max_len):
    """Same live beams as fairseq's search, more finished ones kept: the best can only be better."""
    d = make_dict()
    model = make_model(d, seed, tempting=d.eos())  # no dominant word: </s> is the tempting token
    model.decoder.forward = _damp(model.decoder.forward, d.eos())
    sample = make_sample(d, bsz)
    with torch.no_grad():
        stock = SequenceGenerator([model], d, beam_size=beam, max_len_b=max_len).generate(None, sample)
        ours = BestStopSequenceGenerator([model], d, beam_size=beam, max_len_b=max_len).generate(None, sample)
    for a, b in zip(stock, ours):
        assert 1 <= len(b) <= beam
        assert float(b[0]["score"]) >= float(a[0]["score"]) - 1e-6
        scores = [float(h["score"]) for h in b]
        assert scores == sorted(scores, reverse=True)
        assert all(h["tokens"][-1] == d.eos() for h in b)


def _damp(forward, eos):
    """Make </s> likely but not certain, so hypotheses of every length end."""
    def wrapped(*args, **kwargs):
        logits, extra = forward(*args, **kwargs)
        logits[..., eos] = logits[..., eos] * 0 + 1.0
        return logits, extra
    return wrapped


def test_closed_set_with_best_stop_finds_the_long_answer():
    d = make_dict()
    model = scripted_model(d)
    answer = model.decoder.answer[:-1]
    junk = [[d.index("w5")], [d.index("w6")], [d.index("w7")], [d.index("w8")], [d.index("w0"), d.index("w5")]]
    trie = AnswerTrie(d.eos(), [answer] + junk)
    with torch.no_grad():
        out = BestStopTrieGenerator([model], d, answer_trie=trie, beam_size=5).generate(None, make_sample(d, 3))
    assert all(h[0]["tokens"].tolist() == answer + [d.eos()] for h in out)


def test_helpers():
    hyps = [{"score": torch.tensor(s)} for s in (-3.0, -1.0, -2.0, -1.0)]
    best = keep_best(hyps, 3)
    assert [float(h["score"]) for h in best] == [-1.0, -1.0, -2.0] and best[0] is hyps[1]
    assert not sentence_done(best[:2], 3, -5.0, at_max_len=False)  # too few finished
    assert not sentence_done(best, 3, -0.5, at_max_len=False)  # a live beam may still beat -1
    assert sentence_done(best, 3, -1.0, at_max_len=False)
    assert sentence_done(best[:1], 3, 0.0, at_max_len=True)

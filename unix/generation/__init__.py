"""Decoding helpers in plain PyTorch (no fairseq): the answer trie of closed-set decoding, beam search."""

from unix.generation.answer_trie import AnswerTrie, constrain_log_probs
from unix.generation.beam_search import Hypothesis, beam_search, collate_sources

__all__ = ["AnswerTrie", "Hypothesis", "beam_search", "collate_sources", "constrain_log_probs"]

"""Decoding helpers in plain PyTorch (no fairseq): the answer trie of closed-set decoding."""

from unix.generation.answer_trie import AnswerTrie, constrain_log_probs

__all__ = ["AnswerTrie", "constrain_log_probs"]

"""Closed-set beam search: fairseq's ``SequenceGenerator`` restricted to an answer list.

Subclasses, not copies, of fairseq's generator:

* :class:`TrieConstrainedEnsembleModel` masks the log-probabilities that
  ``EnsembleModel.forward_decoder`` returns (B*beam, V) to the tokens the
  :class:`unix.generation.AnswerTrie` allows after each hypothesis' prefix, so beam search can
  only build answers of the list.
* :class:`TrieConstrainedSequenceGenerator` sets the length limit to the longest answer.

With fewer live prefixes than beams, the surplus beams hold ``-inf`` hypotheses that can never
end. The length limit keeps that harmless: while no hypothesis was pruned, every answer is kept,
so the longest one ends exactly at the limit (where fairseq closes the sentence); once beams were
pruned, live plus finished hypotheses never drop below the beam size, so the sentence fills its
``beam`` finished hypotheses before its live ones run out.
"""

import logging
from typing import List

from fairseq.sequence_generator import EnsembleModel, SequenceGenerator

from fairseq_plugins.generation.best_stop import BestStopMixin
from unix.data.vqa import read_answer_list
from unix.generation import AnswerTrie, constrain_log_probs

logger = logging.getLogger(__name__)


class TrieConstrainedEnsembleModel(EnsembleModel):
    """``EnsembleModel`` whose next-token log-probabilities are restricted to an answer trie.

    Args:
        models: the fairseq models.
        trie: the answers, as token ids of the target dictionary.
    """

    def __init__(self, models, trie: AnswerTrie):
        super().__init__(models)
        self.trie = trie

    def forward_decoder(self, tokens, encoder_outs, incremental_states, temperature: float = 1.0):
        """As fairseq's, then mask.

        Args:
            tokens: (B*beam, t+1) start symbol followed by the t tokens generated so far.

        Returns:
            ``(lprobs, attn)`` with lprobs (B*beam, V), ``-inf`` outside the trie.
        """
        lprobs, attn = super().forward_decoder(tokens, encoder_outs, incremental_states, temperature)
        return constrain_log_probs(lprobs, tokens[:, 1:], self.trie), attn


class TrieConstrainedSequenceGenerator(SequenceGenerator):
    """``SequenceGenerator`` whose hypotheses are answers of ``answer_trie``.

    Takes fairseq's arguments plus ``answer_trie``. ``max_len_a``/``max_len_b`` are replaced by
    the length of the longest answer. Supports beam search only (``search.BeamSearch``).

    Raises:
        ValueError: for an empty trie, or an answer longer than the model's positions.
    """

    def __init__(self, models, tgt_dict, answer_trie: AnswerTrie, **kwargs):
        if len(answer_trie) == 0:
            raise ValueError("closed-set decoding needs at least one answer")
        if answer_trie.eos != tgt_dict.eos():
            raise ValueError(f"the answer trie ends answers with id {answer_trie.eos}, "
                             f"the dictionary's eos is {tgt_dict.eos()}")
        kwargs["max_len_a"], kwargs["max_len_b"] = 0, answer_trie.max_len
        super().__init__(TrieConstrainedEnsembleModel(models, answer_trie), tgt_dict, **kwargs)
        if self.max_len - 1 < answer_trie.max_len:
            raise ValueError(f"the longest answer has {answer_trie.max_len} tokens; the model generates "
                             f"at most {self.max_len - 1}")
        self.answer_trie = answer_trie


class BestStopTrieGenerator(BestStopMixin, TrieConstrainedSequenceGenerator):
    """Closed-set decoding with the stopping rule of :mod:`fairseq_plugins.generation.best_stop`."""


def encode_answers(answers: List[str], dictionary, where: str = "answer list") -> List[List[int]]:
    """Answers as space-separated pieces -> token ids of ``dictionary`` (no eos).

    Raises:
        ValueError: naming ``where`` and the line, if an answer has a piece the dictionary lacks.
    """
    out = []
    for n, answer in enumerate(answers, start=1):
        ids = dictionary.encode_line(answer, add_if_not_exist=False, append_eos=False).long().tolist()
        unknown = [p for p, i in zip(answer.split(), ids) if i == dictionary.unk() and p != "<unk>"]
        if unknown:
            raise ValueError(f"{where}:{n}: answer {answer!r} has pieces not in the dictionary: "
                             f"{' '.join(unknown)} (encode the list with the model's sentencepiece model)")
        out.append(ids)
    return out


def load_answer_trie(path: str, dictionary) -> AnswerTrie:
    """Read an answer list (one answer a line, in the pieces of the target side) into a trie.

    Raises:
        unix.data.vqa.VQADataError: missing or empty file, empty line (naming file and line).
        ValueError: an answer with pieces outside the dictionary (naming file and line).
    """
    answers = read_answer_list(path)
    trie = AnswerTrie(dictionary.eos(), encode_answers(answers, dictionary, path))
    logger.info("closed-set decoding over %d answers from %s (longest: %d tokens)", len(trie), path,
                trie.max_len)
    return trie

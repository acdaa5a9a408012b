"""Prefix trie over answer token sequences, for closed-set (answer-list) decoding.

Closed-set generative VQA (as in OFA) lets beam search produce only answers of a list: after
each hypothesis' prefix, only the tokens that continue some answer of the list are allowed, and
end-of-sentence only where the prefix is a complete answer. :class:`AnswerTrie` stores the list
as a prefix tree whose leaves are the ``eos`` token; :func:`constrain_log_probs` applies it to a
step's log-probabilities.

Example::

    trie = AnswerTrie(eos=2, answers=[[10], [11, 12], [11, 13]])
    trie.next_tokens([11])                      # [12, 13]
    trie.next_tokens([10])                      # [2]  (complete answer: only eos)
    lprobs = constrain_log_probs(lprobs, prefixes, trie)   # (N, V), -inf elsewhere
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch

Node = Dict[int, "Node"]


class AnswerTrie:
    """Answers (token id sequences, without ``eos``) stored as a prefix tree.

    Every stored answer ends in a child ``eos`` (a leaf), so a node's children are exactly the
    tokens allowed after its prefix: every node of the tree leads to at least one answer.

    Args:
        eos: the end-of-sentence id (it must not occur inside an answer).
        answers: initial answers.
    """

    def __init__(self, eos: int, answers: Iterable[Sequence[int]] = ()):
        self.eos = int(eos)
        self.root: Node = {}
        self._size = 0
        self._max_len = 0
        self._ids_cache: Dict[int, torch.Tensor] = {}
        for answer in answers:
            self.add(answer)

    def add(self, answer: Sequence[int]) -> bool:
        """Insert one answer; return False if it was already there.

        Raises:
            ValueError: if the answer is empty or contains ``eos``.
        """
        tokens = [int(t) for t in answer]
        if not tokens:
            raise ValueError("empty answer")
        if self.eos in tokens:
            raise ValueError(f"answer {tokens} contains the eos id {self.eos}")
        node = self.root
        for t in tokens:
            node = node.setdefault(t, {})
        if self.eos in node:
            return False
        node[self.eos] = {}
        self._size += 1
        self._max_len = max(self._max_len, len(tokens))
        self._ids_cache.clear()
        return True

    def __len__(self) -> int:
        """Number of distinct answers."""
        return self._size

    @property
    def max_len(self) -> int:
        """Tokens of the longest answer (without ``eos``)."""
        return self._max_len

    def _node(self, prefix: Sequence[int]) -> Optional[Node]:
        node = self.root
        for t in prefix:
            node = node.get(int(t))
            if node is None:
                return None
        return node

    def __contains__(self, answer: Sequence[int]) -> bool:
        """True if ``answer`` (without ``eos``) is a complete answer of the trie."""
        node = self._node(answer)
        return node is not None and self.eos in node and len(answer) > 0

    def next_tokens(self, prefix: Sequence[int]) -> List[int]:
        """Tokens allowed after ``prefix`` (``eos`` where the prefix is an answer).

        Returns an empty list when ``prefix`` is not the start of any answer.
        """
        node = self._node(prefix)
        return [] if node is None else list(node.keys())

    def answers(self) -> Iterator[List[int]]:
        """Every stored answer, in insertion order of the tree."""
        stack: List[Tuple[Node, List[int]]] = [(self.root, [])]
        while stack:
            node, prefix = stack.pop()
            for t, child in reversed(list(node.items())):
                if t == self.eos:
                    yield prefix
                else:
                    stack.append((child, prefix + [t]))

    def allowed_mask(self, prefixes: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """Boolean mask of the tokens allowed after each prefix.

        Args:
            prefixes: (N, T) token ids generated so far (T may be 0), without the start symbol.
            vocab_size: V.

        Returns:
            (N, V) bool on the device of ``prefixes``, True where the token is allowed. A row whose
            prefix leaves the trie is all False.
        """
        rows, cols = [], []
        for i, prefix in enumerate(prefixes.detach().cpu().tolist()):
            node = self._node(prefix)
            if node:
                allowed = self._allowed_ids(node)
                rows.append(torch.full_like(allowed, i))
                cols.append(allowed)
        mask = torch.zeros(prefixes.shape[0], vocab_size, dtype=torch.bool)
        if rows:
            r, c = torch.cat(rows), torch.cat(cols)
            keep = c < vocab_size
            mask[r[keep], c[keep]] = True
        return mask.to(prefixes.device)

    def _allowed_ids(self, node: Node) -> torch.Tensor:
        """The children of a node as a LongTensor, cached per node (at most one per trie node)."""
        ids = self._ids_cache.get(id(node))
        if ids is None:
            ids = self._ids_cache[id(node)] = torch.tensor(list(node.keys()), dtype=torch.long)
        return ids


def constrain_log_probs(lprobs: torch.Tensor, prefixes: torch.Tensor, trie: AnswerTrie) -> torch.Tensor:
    """Set the log-probability of every token outside the trie to ``-inf``.

    Args:
        lprobs: (N, V) log-probabilities of the next token, one row per hypothesis.
        prefixes: (N, T) tokens generated so far by each hypothesis (start symbol excluded).
        trie: the answers.

    Returns:
        (N, V) a new tensor: ``lprobs`` where the trie allows the token after the row's prefix,
        ``-inf`` elsewhere (the whole row for a prefix that is not the start of an answer).
    """
    if lprobs.dim() != 2 or prefixes.dim() != 2 or lprobs.shape[0] != prefixes.shape[0]:
        raise ValueError(f"expected lprobs (N, V) and prefixes (N, T), got {tuple(lprobs.shape)} "
                         f"and {tuple(prefixes.shape)}")
    mask = trie.allowed_mask(prefixes, lprobs.shape[1])
    return lprobs.masked_fill(~mask, -math.inf)

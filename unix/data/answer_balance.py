"""Answer-balanced sampling weights for VQA training questions.

Synthetic and template-built VQA sets ask the same question pattern with different words filled
in ("is there a red shape?", "is there a blue shape?") and their answers are often lopsided per
pattern: on easy-VQA about 88% of "is there a <colour> shape?" questions are answered "no". A
model can then sit at that prior for a long time. Balancing re-draws the training questions so
that, within each *question template*, every answer is equally frequent:

* the template of a question is its token sequence with every occurrence of an answer's token
  sequence replaced by one placeholder (longest answer first, left to right), so
  "is there a red shape?" and "is there a blue shape?" share the template "is there a _ shape?"
  when "red" and "blue" are answers;
* a question of template ``g`` with answer ``a`` gets weight ``n_g / (k_g * c_ga)``: ``n_g``
  questions of the template, ``k_g`` distinct answers among them, ``c_ga`` of them answered
  ``a``. Every answer of a template then carries ``n_g / k_g`` of the weight, and each template
  keeps its share ``n_g`` of the whole (the weights sum to the number of questions).

Token sequences are any hashable sequences of ints (fairseq dictionary indices, sentencepiece ids).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Dict, Hashable, Iterable, List, Sequence, Tuple

import numpy as np

PLACEHOLDER = -1


class AnswerTemplater:
    """Maps a question to its template: answer token sequences inside it become :data:`PLACEHOLDER`.

    Args:
        answers: the answers' token sequences (without end-of-sentence); empty ones are ignored.
    """

    def __init__(self, answers: Iterable[Sequence[int]]):
        by_first: Dict[int, List[Tuple[int, ...]]] = defaultdict(list)
        for a in {tuple(int(t) for t in a) for a in answers}:
            if a:
                by_first[a[0]].append(a)
        for cands in by_first.values():
            cands.sort(key=len, reverse=True)  # longest match first ("dark blue" before "dark")
        self.by_first = dict(by_first)

    def __call__(self, question: Sequence[int]) -> Tuple[int, ...]:
        q = [int(t) for t in question]
        out: List[int] = []
        i = 0
        while i < len(q):
            for a in self.by_first.get(q[i], ()):
                if tuple(q[i:i + len(a)]) == a:
                    out.append(PLACEHOLDER)
                    i += len(a)
                    break
            else:
                out.append(q[i])
                i += 1
        return tuple(out)


def answer_balance_weights(templates: Sequence[Hashable], answers: Sequence[Hashable]) -> np.ndarray:
    """Per-question sampling weights that balance the answers within each template.

    Args:
        templates: (N,) the template of each question (any hashable, e.g. :class:`AnswerTemplater` output).
        answers: (N,) the training answer of each question (any hashable, e.g. a token tuple).

    Returns:
        (N,) float64 weights, ``n_g / (k_g * c_ga)``; they sum to N.
    """
    if len(templates) != len(answers):
        raise ValueError(f"{len(templates)} templates for {len(answers)} answers")
    per_template = Counter(templates)
    per_pair = Counter(zip(templates, answers))
    kinds = Counter(g for g, _ in per_pair)
    return np.array([per_template[g] / (kinds[g] * per_pair[g, a]) for g, a in zip(templates, answers)],
                    dtype=np.float64)


def balance_summary(templates: Sequence[Hashable], answers: Sequence[Hashable], weights: np.ndarray) -> str:
    """One line for the log: templates, and the share of the most frequent answer before/after."""
    before, after = Counter(), Counter()
    for g, a, w in zip(templates, answers, weights):
        before[g, a] += 1
        after[g, a] += w
    n_g = Counter(templates)
    top_before = max(c / n_g[g] for (g, _), c in before.items())
    top_after = max(c / n_g[g] for (g, _), c in after.items())
    moved = float(np.abs(weights - 1.0).sum() / 2 / max(len(weights), 1))
    return (f"{len(n_g)} question templates; largest answer share within a template {100 * top_before:.1f}% "
            f"-> {100 * top_after:.1f}%; {100 * moved:.1f}% of the sampling mass moved")

"""Answer-balanced sampling weights: templates and weights against hand-computed values."""

import numpy as np
import pytest

from unix.data.answer_balance import PLACEHOLDER, AnswerTemplater, answer_balance_weights, balance_summary

_ = PLACEHOLDER


def test_templater_replaces_answers_longest_first():
    # answers: 7 ("red"), 8 9 ("dark blue"), 8 ("dark"); question tokens otherwise 1-5
    t = AnswerTemplater([(7,), (8, 9), (8,), ()])
    assert t([1, 2, 7, 3]) == (1, 2, _, 3)
    assert t([1, 8, 9, 3]) == (1, _, 3)          # "dark blue" is one answer, not "dark" + 9
    assert t([1, 8, 3, 9]) == (1, _, 3, 9)       # "dark" alone
    assert t([7, 7, 4]) == (_, _, 4)
    assert t([1, 2, 3]) == (1, 2, 3)
    assert t([]) == ()


def test_weights_hand_computed():
    # template A: 4 questions, answers no, no, no, yes -> n=4, k=2: no 4/(2*3), yes 4/(2*1)
    # template B: 2 questions, answers red, blue -> already balanced, weight 1 each
    # template C: 1 question -> weight 1
    templates = ["A", "A", "A", "A", "B", "B", "C"]
    answers = ["no", "no", "no", "yes", "red", "blue", "x"]
    w = answer_balance_weights(templates, answers)
    np.testing.assert_allclose(w, [2 / 3, 2 / 3, 2 / 3, 2.0, 1.0, 1.0, 1.0])
    assert w.sum() == pytest.approx(len(w))
    # within A each answer now carries half of A's mass
    assert w[:3].sum() == pytest.approx(w[3]) == pytest.approx(2.0)


def test_weights_three_answers_and_length_check():
    w = answer_balance_weights(["g"] * 6, ["a", "a", "a", "b", "b", "c"])
    np.testing.assert_allclose(w, [2 / 3] * 3 + [1.0] * 2 + [2.0])  # n/(k*c) = 6/(3c)
    with pytest.raises(ValueError, match="2 templates for 3 answers"):
        answer_balance_weights(["g", "g"], ["a", "b", "c"])


def test_summary_reports_shares():
    templates, answers = ["A"] * 4, ["no", "no", "no", "yes"]
    line = balance_summary(templates, answers, answer_balance_weights(templates, answers))
    # 75% "no" before, 50% after; mass moved = sum |w-1| / 2 / N = (3 * 1/3 + 1) / 2 / 4 = 25%
    assert line == ("1 question templates; largest answer share within a template 75.0% -> 50.0%; "
                    "25.0% of the sampling mass moved")

"""MBR reranking (unix.generation.mbr): utilities against hand-computed values, and the ranking."""

import math

import numpy as np
import pytest

from unix.generation.mbr import (bleu_utility, cider_utility, evidence_weights, mbr_order, ngram_counts,
                                 utility_matrix, words)


def u(fn, h, e):
    h, e = words(h), words(e)
    return fn(ngram_counts(h), len(h), ngram_counts(e), len(e))


def test_words_lowercases_and_drops_punctuation():
    assert words("A dog, running!  Über das Gras.") == ["a", "dog", "running", "über", "das", "gras"]


def test_bleu_utility_hand_computed():
    # 3/3 unigrams, (2+1)/(2+1) bigrams, (1+1)/(1+1) trigrams, (0+1)/(0+1) 4-grams; BP exp(1 - 4/3)
    assert u(bleu_utility, "a dog runs", "a dog runs fast") == pytest.approx(math.exp(-1 / 3))
    # 1/2 unigrams, (0+1)/(1+1) bigrams, 1/1 tri- and 4-grams (none); same length: no BP
    assert u(bleu_utility, "a b", "a c") == pytest.approx(math.exp((math.log(0.5) + math.log(0.5)) / 4))
    assert u(bleu_utility, "a dog runs on the grass", "a dog runs on the grass") == pytest.approx(1.0)
    assert u(bleu_utility, "x y", "a b") == 0.0 and u(bleu_utility, "", "a b") == 0.0


def test_cider_utility_hand_computed():
    # n=1: min(h,e).e / (|h||e|) = 1 / (sqrt2 sqrt2) = 0.5; n=2: no match; n=3,4: no n-grams
    assert u(cider_utility, "a b", "a c") == pytest.approx(10 * 0.5 / 4)
    # identical 3-word captions: cosine 1 for n = 1..3, nothing for n = 4
    assert u(cider_utility, "a dog runs", "a dog runs") == pytest.approx(10 * 3 / 4)
    # length penalty exp(-(3-5)^2 / 72) on a perfect unigram..trigram prefix match
    h, e = "a dog runs", "a dog runs on grass"
    n1 = 3 / (math.sqrt(3) * math.sqrt(5))
    n2 = 2 / (math.sqrt(2) * math.sqrt(4))
    n3 = 1 / (math.sqrt(1) * math.sqrt(3))
    assert u(cider_utility, h, e) == pytest.approx(10 * math.exp(-4 / 72) * (n1 + n2 + n3) / 4)


def test_evidence_weights():
    np.testing.assert_allclose(evidence_weights([-1.0, -5.0, -9.0], 0.0), [1 / 3] * 3)
    w = evidence_weights([-1.0, -2.0], 1.0)
    np.testing.assert_allclose(w, [1 / (1 + math.exp(-1)), math.exp(-1) / (1 + math.exp(-1))])
    with pytest.raises(ValueError, match="non-finite"):
        evidence_weights([-1.0, float("-inf")], 1.0)


CANDS = [words(c) for c in ["a dog", "a brown dog runs on the grass", "a brown dog runs on grass",
                            "a brown dog runs in the grass"]]


@pytest.mark.parametrize("utility", ["bleu", "cider"])
def test_consensus_beats_the_model_favourite_with_uniform_weights(utility):
    order, eu = mbr_order(CANDS, [-1.0, -6.0, -6.5, -7.0], utility, alpha=0.0)
    assert order[0] == 1  # agrees most with the two others; "a dog" (the model's best) agrees with nobody
    assert order[-1] == 0 and sorted(order) == [0, 1, 2, 3]
    U = utility_matrix(CANDS, utility)
    np.testing.assert_allclose(eu, U.mean(axis=1))
    np.testing.assert_allclose(np.diag(U), U.max(axis=1))  # a caption agrees most with itself


@pytest.mark.parametrize("utility", ["bleu", "cider"])
def test_a_confident_model_keeps_its_favourite(utility):
    order, _ = mbr_order(CANDS, [-1.0, -30.0, -30.5, -31.0], utility, alpha=1.0)
    assert order[0] == 0


def test_ties_keep_the_model_order_and_bad_calls_are_refused():
    order, _ = mbr_order([["a", "b"], ["a", "b"]], [-2.0, -1.0], "bleu", alpha=0.0)
    assert order == [0, 1]
    assert mbr_order([], [], "bleu")[0] == []
    with pytest.raises(ValueError, match="unknown MBR utility 'meteor'"):
        mbr_order(CANDS, [0.0] * 4, "meteor")
    with pytest.raises(ValueError, match="4 candidates but 3"):
        mbr_order(CANDS, [0.0] * 3, "bleu")


def test_separate_evidence_decides_the_ranking():
    """With sampled evidence (uniform weights), the candidate closest to the samples wins, whatever
    the candidates' own log-probabilities."""
    samples = [words(s) for s in ["a dog runs in the grass", "a brown dog runs in the grass", "a dog in grass"]]
    order, eu = mbr_order(CANDS, [-1.0, -30.0, -30.0, -30.0], "bleu", alpha=0.0, evidence=samples)
    assert order[0] == 3  # "a brown dog runs in the grass" is one of the samples
    np.testing.assert_allclose(eu, utility_matrix(CANDS, "bleu", samples).mean(axis=1))
    assert utility_matrix(CANDS, "bleu", samples).shape == (4, 3)
    with pytest.raises(ValueError, match="3 evidence captions but 2"):
        mbr_order(CANDS, [0.0] * 4, "bleu", evidence=samples, evidence_logprobs=[0.0, 0.0])

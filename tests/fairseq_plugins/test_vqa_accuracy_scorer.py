"""fairseq scorer vqa_accuracy against hand-computed values."""

import pytest
from fairseq.scoring import SCORER_REGISTRY, build_scorer

import fairseq_plugins  # noqa: F401  (registers the scorer)
from fairseq_plugins.scoring.vqa_accuracy import VQAAccuracyScorer


def test_registered_and_built_by_name():
    assert "vqa_accuracy" in SCORER_REGISTRY
    assert isinstance(build_scorer("vqa_accuracy", None), VQAAccuracyScorer)


def test_scores_as_fairseq_generate_feeds_it():
    scorer = build_scorer("vqa_accuracy", None)
    # (target string as fairseq-generate prints it after --post-process, hypothesis)
    scorer.add_string("dark blue", "dark blue")                      # 1
    scorer.add_string("2 <sep> two <sep> 3 <sep> 2", "Two")          # "2" x3 -> min(3/3, 1) = 1
    scorer.add_string("yes <sep> no <sep> no", "yes")                # 1/3
    scorer.add_string("no <sep> no <sep> yes <sep> no", "no")        # 3/3 = 1
    scorer.add_string("red", "the red")                              # article dropped: 1
    scorer.add_string("light green", "green")                        # 0
    expected = 100 * (1 + 1 + 1 / 3 + 1 + 1 + 0) / 6                 # 72.22...
    assert scorer.score() == pytest.approx(expected)
    assert "VQA accuracy = 72.22" in scorer.result_string()
    assert "n=6" in scorer.result_string()
    assert scorer.ref[0] == "dark blue" and scorer.pred[-1] == "green"


def test_empty_corpus_scores_zero():
    assert build_scorer("vqa_accuracy", None).score() == 0.0


def test_leave_one_out_option_reaches_the_metric():
    from fairseq_plugins.scoring.vqa_accuracy import VQAAccuracyConfig
    scorer = VQAAccuracyScorer(VQAAccuracyConfig(vqa_leave_one_out=True))
    scorer.add_string(" <sep> ".join(["yes"] * 3 + ["no"] * 7), "yes")  # (3 * 2/3 + 7 * 1) / 10
    assert scorer.score() == pytest.approx(90.0)

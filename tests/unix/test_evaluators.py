"""unix.metrics.evaluators: each evaluator against a hand-computed score, and additive statistics
(statistics of two batches summed score as the two batches scored at once)."""

import math
import shutil

import pytest

from unix.metrics.evaluators import EVALUATORS, add_stats, get_evaluator, parse_metrics

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="METEOR 1.5 runs in java")


def batches_add_up(ev, hyps, refs, cut: int, exact: bool = True) -> float:
    """score(stats(a) + stats(b)) == score(stats(a + b)); returns that score."""
    split = add_stats(ev.stats(hyps[:cut], refs[:cut]), ev.stats(hyps[cut:], refs[cut:]))
    whole = ev.stats(hyps, refs)
    assert sorted(split) == sorted(whole) == sorted(ev.stats([], []))  # the same keys, even when empty
    if exact:
        assert ev.score(split) == ev.score(whole)
    else:
        assert ev.score(split) == pytest.approx(ev.score(whole), rel=1e-12)
    return ev.score(whole)


def test_registry_and_metric_lists():
    assert set(EVALUATORS) == {"cider", "bleu4", "bleu", "meteor", "accuracy"}
    assert parse_metrics("cider,bleu4") == ["cider", "bleu4"] and parse_metrics("none") == []
    with pytest.raises(ValueError, match="unknown evaluation metric 'rouge'"):
        parse_metrics("cider,rouge")
    with pytest.raises(ValueError, match="named twice"):
        parse_metrics("bleu,bleu")
    assert all(EVALUATORS[n].higher_is_better for n in EVALUATORS)


def test_accuracy_hand_computed():
    ev = get_evaluator("accuracy")
    hyps = ["Two", "cat", "yes"]
    refs = [["2"], ["dog", "cat", "dog"], ["no"]]  # exact match; 1 of 3 annotators (1/3); no match
    assert ev.stats(hyps, refs) == {"_vqa_acc_sum": pytest.approx(4 / 3), "_vqa_count": 3}
    assert batches_add_up(ev, hyps, refs, cut=2) == pytest.approx(100 * (4 / 3) / 3)


def test_sacrebleu_counts_hand_computed_and_variable_references():
    import sacrebleu

    ev = get_evaluator("bleu")
    hyp, ref = "the cat sat on the mat", "the cat is on the mat"
    s = ev.stats([hyp], [[ref]])
    # 1..4-grams matched: the x2 cat on mat / "the cat" "on the" "the mat" / "on the mat" / none
    assert [s[f"_sacrebleu_counts_{k}"] for k in range(4)] == [5, 3, 1, 0]
    assert [s[f"_sacrebleu_totals_{k}"] for k in range(4)] == [6, 5, 4, 3]
    assert (s["_sacrebleu_sys_len"], s["_sacrebleu_ref_len"]) == (6, 6)
    # 'exp' smoothing: a precision without a match counts as 1 / (2 x its total)
    assert ev.score(s) == pytest.approx(100 * (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25)
    assert ev.score(s) == pytest.approx(sacrebleu.corpus_bleu([hyp], [[ref]]).score, abs=1e-12)
    hyps = [hyp, "A dog runs.", "two men"]
    refs = [[ref], ["A dog runs fast.", "The dog runs."], ["two young men", "men", "two men talk"]]
    score = batches_add_up(ev, hyps, refs, cut=1)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(3)]
    assert score == pytest.approx(sacrebleu.corpus_bleu(hyps, streams).score, abs=1e-12)
    assert not ev.counted(ev.stats([""], [["a reference"]])) and ev.counted(s)  # all empty: nothing scored


def test_pycocoevalcap_bleu4_hand_computed():
    ev = get_evaluator("bleu4")
    hyps = ["a man rides a red bike", "a dog"]
    refs = [["a man rides a blue bike"], ["a dog runs", "the dog"]]
    # first caption alone: 5/6, 3/5, 2/4, 1/3 of its 1..4-grams match, same length as its reference
    assert ev.score(ev.stats(hyps[:1], refs[:1])) == pytest.approx(100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25,
                                                                   abs=1e-6)
    assert batches_add_up(ev, hyps, refs, cut=1) > 0


def test_cider_d_hand_computed_with_document_frequencies_of_the_corpus():
    refs = [["a cat sits"], ["the dog runs"]]
    with pytest.raises(RuntimeError, match="fit"):
        get_evaluator("cider").stats(["a cat sits"], refs[:1])
    ev = get_evaluator("cider").fit(refs)  # no n-gram is shared: every idf is log 2
    hyps = ["a cat sits", "dog runs"]
    # copy of its reference: cosine 1 for 1..3-grams, 0 for 4-grams; x10 (CIDEr-D), mean over n
    first = 10 * (1 + 1 + 1 + 0) / 4
    # "dog runs" vs "the dog runs": 1-grams 2/sqrt(6), 2-grams 1/sqrt(2); length penalty exp(-1/72)
    second = 10 * (2 / math.sqrt(6) + 1 / math.sqrt(2)) / 4 * math.exp(-1 / 72)
    assert ev.stats(hyps[:1], refs[:1]) == {"_cider_sum": pytest.approx(first), "_cider_n": 1}
    score = batches_add_up(ev, hyps, refs, cut=1, exact=False)
    assert score == pytest.approx(100 * (first + second) / 2, rel=1e-12)
    # the document frequencies are the corpus's, not the batch's: alone, "a cat sits" is in every
    # document (idf 0), so a batch-fitted CIDEr-D would score it 0
    assert get_evaluator("cider").fit(refs[:1]).score(get_evaluator("cider").fit(refs[:1]).stats(
        hyps[:1], refs[:1])) == 0


@needs_java
def test_meteor_hand_computed_and_summed_statistics():
    """(pycocoevalcap's own corpus METEOR of summed batches: test_unix_caption_task's validation test.)"""
    ev = get_evaluator("meteor")
    try:
        assert ev.score(ev.stats(["a man rides a bike"], [["a man rides a bike"]])) == pytest.approx(100.0)
        assert ev.score(ev.stats(["zebra"], [["a dog runs"]])) == 0.0
        hyps = ["a man rides a bike", "a dog runs on grass", "two women talk"]
        refs = [["a man rides a red bike", "a person on a bike"], ["a dog runs", "the dog is running on the grass"],
                ["two women are talking", "women talk"]]
        assert 0 < batches_add_up(ev, hyps, refs, cut=1) < 100
        assert ev.languages == {"en"} and ev.tokenize(["A Dog, running."]) == ["a dog running"]
    finally:
        ev.meteor.close()

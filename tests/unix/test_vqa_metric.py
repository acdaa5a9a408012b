"""VQA accuracy against hand-computed values."""

import pytest

from unix.metrics.references import join_references
from unix.metrics.vqa import VQAAccuracy, answer_type, batch_vqa_accuracy, normalize_answer, vqa_accuracy


@pytest.mark.parametrize("raw, norm", [
    ("Yes", "yes"), ("yes.", "yes"), ("The Two dogs!", "2 dogs"), ("an apple", "apple"),
    ("t-shirt", "t shirt"), ("1,000", "1000"), ("3.5", "3.5"), ("none", "0"), ("Dont", "don't"),
    ("  light   Blue ", "light blue"), ("ten", "10"),
])
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_single_reference_is_exact_match_after_normalization():
    assert vqa_accuracy("two", ["2"]) == 1.0
    assert vqa_accuracy("The dark blue", ["dark blue"]) == 1.0
    assert vqa_accuracy("blue", ["dark blue"]) == 0.0


def test_soft_accuracy_with_several_references():
    refs = ["2", "2", "3", "two", "2", "3", "4", "3", "3", "2"]  # "2" x5 (with "two"), "3" x4, "4" x1
    assert vqa_accuracy("2", refs) == 1.0
    assert vqa_accuracy("4", refs) == pytest.approx(1 / 3)
    assert vqa_accuracy("5", refs) == 0.0
    assert vqa_accuracy("yes", ["yes", "no"]) == pytest.approx(1 / 3)
    assert vqa_accuracy("no", ["no", "no", "yes"]) == pytest.approx(2 / 3)


def test_no_reference_is_an_error():
    with pytest.raises(ValueError):
        vqa_accuracy("yes", [])


def test_corpus_accuracy_from_sep_joined_targets():
    metric = VQAAccuracy()
    assert metric.add("red", "Red") == 1.0
    assert metric.add(join_references(["no", "no", "yes"]), "no") == pytest.approx(2 / 3)
    assert metric.add(join_references(["dark blue", "blue"]), "green") == 0.0
    # (1 + 2/3 + 0) / 3 = 55.555...%
    assert metric.score() == pytest.approx(100 * (5 / 3) / 3)
    s = metric.summary()
    assert s["n"] == 3 and s["match"] == pytest.approx(200 / 3)
    assert "55.56" in metric.result_string()
    # answer types: "red" and "dark blue" are other (0.5 mean), the no/no/yes question yes/no (2/3)
    assert s["by_type"]["other"] == (pytest.approx(50.0), 2)
    assert s["by_type"]["yes/no"] == (pytest.approx(200 / 3), 1) and "number" not in s["by_type"]
    assert "yes/no 66.67 (n=1); other 50.00 (n=2)" in metric.result_string()


@pytest.mark.parametrize("refs, kind", [(["yes"], "yes/no"), (["No."], "yes/no"), (["two", "2", "3"], "number"),
                                        (["1.5"], "number"), (["blue", "no", "blue"], "other"),
                                        (["2 dogs"], "other")])
def test_answer_type_from_the_most_frequent_reference(refs, kind):
    assert answer_type(refs) == kind


def test_batch_accuracy():
    assert batch_vqa_accuracy(["a dog", "cat"], ["dog", "dog <sep> cat"]) == [1.0, pytest.approx(1 / 3)]
    with pytest.raises(ValueError):
        batch_vqa_accuracy(["x"], [])


def test_leave_one_out_soft_accuracy_as_the_official_evaluation():
    refs = ["yes"] * 3 + ["no"] * 7
    # leaving out one of the 3 "yes": 2/3 (3 subsets); leaving out a "no": min(3/3, 1) (7 subsets)
    assert vqa_accuracy("yes", refs, leave_one_out=True) == pytest.approx((3 * 2 / 3 + 7 * 1) / 10)  # 0.9
    assert vqa_accuracy("yes", refs) == 1.0
    # one match in 10: 0 when it is left out, 1/3 in the other 9 subsets
    assert vqa_accuracy("maybe", refs[:9] + ["maybe"], leave_one_out=True) == pytest.approx(0.3)
    # 4 or more matches: full credit in every subset; no match: 0; one reference: exact match
    assert vqa_accuracy("no", refs, leave_one_out=True) == 1.0
    assert vqa_accuracy("blue", refs, leave_one_out=True) == 0.0
    assert vqa_accuracy("two", ["2"], leave_one_out=True) == 1.0
    metric = VQAAccuracy(leave_one_out=True)
    metric.add(join_references(refs), "yes")
    assert metric.score() == pytest.approx(90.0)


def test_leave_one_out_matches_a_brute_force_over_subsets():
    import random
    rng = random.Random(0)
    for _ in range(200):
        refs = [rng.choice("abc") for _ in range(rng.randint(2, 10))]
        pred = rng.choice("abcd")
        subsets = [refs[:i] + refs[i + 1:] for i in range(len(refs))]
        brute = sum(min(sum(r == pred for r in s) / 3, 1) for s in subsets) / len(subsets)
        assert vqa_accuracy(pred, refs, leave_one_out=True) == pytest.approx(brute)

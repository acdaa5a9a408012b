"""Caption metrics and caption data helpers (unix.metrics.caption, unix.data.captions)."""

import random
import shutil

import numpy as np
import pytest
import torch

from unix.data.captions import (
    CaptionDataError,
    CaptionSet,
    first_reference,
    join_pieces,
    lang_of_source,
    parse_generate_output,
    read_aligned,
    read_flickr8k_captions,
)
from unix.metrics.caption import (
    CorpusCiderD,
    MissingReferenceError,
    cider_d,
    coco_scores,
    ptb_tokenize,
)

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap's PTB tokenizer needs java")

WORDS = "a the dog cat man woman red blue runs sits on in grass street ball with two young".split()


def random_corpus(n_images: int, seed: int = 0):
    rng = random.Random(seed)
    sent = lambda: " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))  # noqa: E731
    refs = [[sent() for _ in range(rng.randint(1, 5))] for _ in range(n_images)]
    hyps = [rng.choice(r) if rng.random() < 0.3 else sent() for r in refs]
    return hyps, refs


def test_corpus_cider_batches_average_to_pycocoevalcap_corpus_score():
    from pycocoevalcap.cider.cider import Cider

    hyps, refs = random_corpus(23)
    gts = {i: r for i, r in enumerate(refs)}
    res = {i: [h] for i, h in enumerate(hyps)}
    direct, direct_per_image = Cider().compute_score(gts, res)
    corpus = CorpusCiderD(refs)
    batches = [range(0, 8), range(8, 11), range(11, 23)]
    per_image = np.concatenate([corpus.image_scores([hyps[i] for i in b], [refs[i] for i in b]) for b in batches])
    assert direct > 0.1  # some hypotheses copy a reference
    assert per_image.mean() == pytest.approx(direct, rel=1e-12)
    np.testing.assert_allclose(per_image, direct_per_image, rtol=1e-12)
    score, scores = cider_d(hyps, refs, tokenize=False)
    assert score == pytest.approx(direct, rel=1e-12)


def test_cider_refuses_an_image_without_reference():
    with pytest.raises(MissingReferenceError, match="image 2"):
        cider_d(["a dog", "a cat"], [["a dog"], []], tokenize=False)
    with pytest.raises(MissingReferenceError):
        CorpusCiderD([["a dog"], ["  "]])


@needs_java
def test_ptb_tokenize_keeps_every_caption_on_its_own_line():
    out = ptb_tokenize(["A dog\r runs.", "", "Ein Mädchen, klettert!", "x\ty\u2028z", "...", "ok"])
    assert out == ["a dog runs", "", "ein mädchen klettert", "x y z", "", "ok"]


@needs_java
def test_coco_scores_english_and_german():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor

    refs = [["A dog runs on the grass .", "a brown dog is running", "the dog plays outside"],
            ["Two men sit on a bench .", "two people are sitting", "men on a bench in a park"],
            ["A red car in the street .", "a car is parked", "the red car waits"]]
    hyps = ["a dog runs on grass", "two men are sitting on a bench", "a blue bicycle"]
    en = coco_scores(hyps, refs, "en")
    assert set(en) >= {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"}
    assert "SPICE" in en["skipped"] and "download" in en["skipped"]["SPICE"]
    assert 0 < en["METEOR"] < 1 and 0 < en["ROUGE-L"] < 1
    tok_h, tok_r = ptb_tokenize(hyps), [ptb_tokenize(r) for r in refs]
    gts, res = {i: r for i, r in enumerate(tok_r)}, {i: [h] for i, h in enumerate(tok_h)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert [en[f"BLEU-{k}"] for k in range(1, 5)] == pytest.approx(bleu)
    assert en["CIDEr"] == pytest.approx(Cider().compute_score(gts, res)[0])
    assert en["METEOR"] == pytest.approx(Meteor().compute_score(gts, res)[0], abs=1e-12)
    de = coco_scores(["ein hund rennt"], [["Ein Hund rennt .", "ein brauner Hund"]], "de")
    assert "METEOR" not in de and "English" in de["skipped"]["METEOR"]
    assert "ROUGE-L" not in de and "BLEU-4" in de and "CIDEr" in de


def test_first_reference_cuts_multi_reference_targets():
    sep, eos, pad = 9, 2, 1
    target = torch.tensor([[5, 6, sep, 7, sep, 8, eos], [5, eos, pad, pad, pad, pad, pad]])
    tgt, prev = first_reference(target, sep, eos, pad)
    assert tgt.tolist() == [[5, 6, eos], [5, eos, pad]]
    assert prev.tolist() == [[eos, 5, 6], [eos, 5, pad]]


def test_caption_set_drops_repeats_across_sources_only():
    cs = CaptionSet()
    assert cs.add("p.jpg", "en", "A dog runs .", source="flickr8k")
    assert not cs.add("p.jpg", "en", "a dog  runs.", source="multi30k_task2")  # same words, other source
    assert cs.add("p.jpg", "en", "A brown dog runs.", source="multi30k_task2")
    assert cs.add("p.jpg", "en", "a dog runs", source="flickr8k")  # a benchmark's own repeat is kept
    assert not cs.add("p.jpg", "en", " . ", source="flickr8k")
    assert cs.refs("p.jpg", "en") == ["A dog runs .", "A brown dog runs.", "a dog runs"]
    assert cs.refs("p.jpg", "en", ("flickr8k",)) == ["A dog runs .", "a dog runs"]
    assert cs.refs("p.jpg", "de") == [] and cs.count("en") == (1, 3)
    assert (cs.duplicates, cs.empty) == (1, 1)
    with pytest.raises(CaptionDataError, match="f.txt:3"):
        cs.add("p.jpg", "en", "a <sep> b", where="f.txt:3")


def test_caption_files_report_file_and_line(tmp_path):
    caps = tmp_path / "captions.txt"
    caps.write_text("a_1.jpg#0\tA dog .\na_1.jpg#1\t  \nb_2.jpg#0 no tab here\n")
    with pytest.raises(CaptionDataError, match=r"captions.txt:3"):
        read_flickr8k_captions(str(caps))
    caps.write_text("a_1.jpg#0\tA dog .\na_1.jpg#1\t  \n")
    assert read_flickr8k_captions(str(caps)) == {"a_1.jpg": ["A dog ."]}
    (tmp_path / "images.txt").write_text("1.jpg\n2.jpg\n")
    (tmp_path / "x.de").write_text("eins\nzwei\n")
    (tmp_path / "x.fr").write_text("un\n")
    assert list(read_aligned(str(tmp_path / "images.txt"), [str(tmp_path / "x.de")])) == \
        [(1, "1.jpg", ["eins"]), (2, "2.jpg", ["zwei"])]
    with pytest.raises(CaptionDataError, match="x.fr: 1 lines but"):
        list(read_aligned(str(tmp_path / "images.txt"), [str(tmp_path / "x.fr")]))


def test_generate_output_parsing(tmp_path):
    out = tmp_path / "gen.txt"
    out.write_text("S-1\t__de__\nT-1\tein hund <sep> zwei hunde\nH-1\t-0.5\t\u2581ein \u2581hund\n"
                   "D-1\t-0.5\tein hund\nP-1\t-0.1 -0.2\nS-0\t__de__\nH-0\t-0.7\t\nD-0\t-0.7\t\n"
                   "Generate test_de with beam=5: CIDEr-D = 1.00\n")
    gen = parse_generate_output(str(out))
    assert gen[1]["D"] == "ein hund" and gen[0]["D"] == "" and gen[1]["T"].startswith("ein hund")
    assert join_pieces(gen[1]["H"]) == "ein hund"
    assert lang_of_source(gen[0]["S"]) == "de" and lang_of_source("a dog") is None
    (tmp_path / "empty.txt").write_text("nothing here\n")
    with pytest.raises(CaptionDataError, match="no hypothesis"):
        parse_generate_output(str(tmp_path / "empty.txt"))


def test_sentence_bleu_hand_computed_with_brevity_penalty():
    from unix.metrics.caption import sentence_bleu

    refs = [["a dog runs on grass", "the dog is running on the grass"], ["a dog runs on grass"]]
    # "a dog runs on the grass": precisions 6/6, 5/5, 3/4, 1/3; closest reference 5 words (tie 5 / 7:
    # the shorter), so no brevity penalty: (1 * 1 * 0.75 / 3) ** 0.25
    # "a dog": BLEU-2 = 1 * exp(1 - 5/2) (brevity penalty, both precisions 1)
    got4 = sentence_bleu(["a dog runs on the grass", "a dog"], refs)
    got2 = sentence_bleu(["a dog runs on the grass", "a dog"], refs, n=2)
    assert got4[0] == pytest.approx(0.25 ** 0.25, rel=1e-6) and got4[1] < 1e-3
    assert got2[1] == pytest.approx(np.exp(-1.5), rel=1e-6)
    with pytest.raises(MissingReferenceError, match="image 2"):
        sentence_bleu(["a", "b"], [["a"], []])


def test_bleu_statistics_hand_computed_and_summed_batches_equal_pycocoevalcap_corpus_bleu():
    import contextlib
    import io

    from pycocoevalcap.bleu.bleu import Bleu

    from unix.metrics.caption import bleu_statistic_names, bleu_statistics, corpus_bleu

    # "a dog runs on the grass" against 5- and 7-word references: closest length 5 (tie: the shorter);
    # n-grams 6/5/4/3, matched 6/5/3/1 (as in the sentence-BLEU test above)
    st = bleu_statistics(["a dog runs on the grass"], [["a dog runs on grass", "the dog is running on the grass"]])
    assert dict(zip(bleu_statistic_names(), st[0])) == {
        "testlen": 6, "reflen": 5, "guess1": 6, "guess2": 5, "guess3": 4, "guess4": 3,
        "correct1": 6, "correct2": 5, "correct3": 3, "correct4": 1}
    assert corpus_bleu(st[0])[3] == pytest.approx(0.25 ** 0.25, rel=1e-9)
    hyps, refs = random_corpus(40, seed=3)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocoevalcap prints its statistics
        direct, _ = Bleu(4).compute_score({i: r for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)})
    summed = bleu_statistics(hyps[:13], refs[:13]).sum(0) + bleu_statistics(hyps[13:], refs[13:]).sum(0)
    assert corpus_bleu(summed) == pytest.approx(direct, rel=1e-12)
    assert direct[3] > 0.05  # not a trivial all-zero case
    with pytest.raises(ValueError, match=r"shape \(9,\)"):
        corpus_bleu(summed[:9])


@needs_java
def test_sentence_meteor_matches_pycocoevalcap_per_caption_and_keeps_one_process():
    from pycocoevalcap.meteor.meteor import Meteor

    from unix.metrics.meteor import SentenceMeteor

    rng = random.Random(0)
    refs = [[" ".join(rng.choices(WORDS, k=rng.randint(4, 9))) for _ in range(3)] for _ in range(6)]
    hyps = [refs[0][0], "", *[" ".join(rng.choices(WORDS, k=6)) for _ in range(4)]]
    expected = Meteor().compute_score({i: r for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)})[1]
    meteor = SentenceMeteor()
    first, again = meteor(hyps, refs), meteor(hyps[::-1], refs[::-1])
    assert first == pytest.approx(expected) and again == pytest.approx(expected[::-1])
    assert first[0] > 0.9 and first[1] == 0.0  # a reference itself; an empty caption
    meteor.close()
    with pytest.raises(RuntimeError, match="closed"):
        meteor(hyps, refs)

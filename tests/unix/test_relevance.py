"""Textual relevance of weakly-aligned captions (unix/data/relevance.py)."""

import pytest

from unix.data.relevance import RelevanceError, chrf_relevance, read_relevance, relevance_scores, write_relevance


def test_identical_caption_has_relevance_one_and_floor_lifts_the_rest():
    assert chrf_relevance("Ein Hund rennt.", "Ein Hund rennt.") == pytest.approx(1.0)
    raw = chrf_relevance("Ein Hund rennt über die Wiese.", "Ein brauner Hund läuft.")
    assert 0.0 < raw < 1.0
    # floor f: r = f + (1 - f) * raw
    assert chrf_relevance("Ein Hund rennt über die Wiese.", "Ein brauner Hund läuft.", floor=0.5) == \
        pytest.approx(0.5 + 0.5 * raw)
    assert chrf_relevance("xyz", "Ein Hund.", floor=0.25) == pytest.approx(0.25)  # no shared character n-gram


def test_relevance_is_sacrebleu_sentence_chrf():
    from sacrebleu.metrics import CHRF

    weak, strict = "Zwei Männer arbeiten im Garten.", "Zwei junge Männer sind im Freien."
    assert chrf_relevance(weak, strict) == pytest.approx(CHRF().sentence_score(weak, [strict]).score / 100)
    assert relevance_scores([weak, strict], [strict, strict]) == pytest.approx([chrf_relevance(weak, strict), 1.0])
    with pytest.raises(RelevanceError, match="2 weak captions but 1 strict"):
        relevance_scores([weak, strict], [strict])
    with pytest.raises(RelevanceError, match="floor"):
        chrf_relevance(weak, strict, floor=1.0)


def test_read_relevance_round_trip_and_errors(tmp_path):
    p = tmp_path / "train.relevance"
    write_relevance(str(p), [0.25, 1.0, 0.0])
    assert read_relevance(str(p), expected=3) == [0.25, 1.0, 0.0]
    with pytest.raises(RelevanceError, match=r"3 relevance lines for 4 samples"):
        read_relevance(str(p), expected=4)
    p.write_text("0.5\n1.2\n")
    with pytest.raises(RelevanceError, match=r"train.relevance:2: relevance 1.2 is outside"):
        read_relevance(str(p))
    p.write_text("0.5\nhigh\n")
    with pytest.raises(RelevanceError, match=r"train.relevance:2: 'high' is not a number"):
        read_relevance(str(p))
    with pytest.raises(RelevanceError, match="not found"):
        read_relevance(str(tmp_path / "missing.relevance"))

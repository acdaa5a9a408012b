"""METEOR 1.5 run on two files in any language (unix.metrics.meteor.meteor_15) and what it can run here."""

import pytest

from unix.metrics import meteor


def test_meteor_setup_says_why_or_which_modules(monkeypatch):
    monkeypatch.setattr(meteor.shutil, "which", lambda name: None)
    assert meteor.meteor_setup("de") == (None, "METEOR 1.5 needs java")
    monkeypatch.setattr(meteor.shutil, "which", lambda name: "/usr/bin/java")
    monkeypatch.setattr(meteor.os.path, "exists", lambda path: not path.endswith("paraphrase-de.gz"))
    options, note = meteor.meteor_setup("de")
    assert options == ["-m", "exact stem"] and "paraphrase-de.gz" in note
    monkeypatch.setattr(meteor.os.path, "exists", lambda path: True)
    assert meteor.meteor_setup("de") == ([], "")


def test_meteor_output_is_parsed_or_refused():
    assert meteor.parse_meteor_output("Segment 1 score: 0.5\nFinal score:            0.5412345\n") == 54.12
    with pytest.raises(RuntimeError, match="no 'Final score:'"):
        meteor.parse_meteor_output("Exception in thread main")


def test_meteor_15_of_german_references_is_100_and_less_for_a_wrong_word(tmp_path):
    options, note = meteor.meteor_setup("de")
    if options is None:
        pytest.skip(note)
    refs = ["ein hund läuft am strand .", "zwei männer spielen fußball ."]
    assert meteor.meteor_15(refs, refs, "de", str(tmp_path), options) == 100.0
    assert meteor.meteor_15([refs[0], "zwei frauen spielen fußball ."], refs, "de", str(tmp_path), options) < 100.0

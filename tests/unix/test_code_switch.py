"""Bilingual word list from parallel data, and code-switching augmentation."""

from __future__ import annotations

import random

import pytest

from unix.data.code_switch import (
    CodeSwitcher, induce_lexicon, load_lexicon, save_lexicon, score_word_pairs, words,
)

COLORS = {"red": "rot", "green": "gruen", "blue": "blau", "yellow": "gelb"}
THINGS = {"dog": "hund", "cat": "katze", "ball": "ball", "car": "auto", "house": "haus"}


def toy_parallel(n=60, seed=0):
    rng = random.Random(seed)
    en, de = [], []
    for _ in range(n):
        c, t = rng.choice(list(COLORS)), rng.choice(list(THINGS))
        en.append(f"The {c} {t} is here.")
        de.append(f"Das {COLORS[c]} {THINGS[t]} ist hier.")
    en.append("a zebra")  # seen once: below min_count
    de.append("ein zebra")
    return en, de


def test_words():
    assert words("The Dog's ball, über-Größe!") == ["the", "dog", "s", "ball", "über", "größe"]


def test_dice_by_hand():
    src = ["a dog", "a cat", "the dog"]
    tgt = ["ein hund", "eine katze", "der hund"]
    got = {(p.src, p.tgt): p for p in score_word_pairs(src, tgt, min_count=1)}
    # c(dog)=2, c(hund)=2, c(dog,hund)=2 -> 2*2/(2+2)
    assert got["dog", "hund"].dice == pytest.approx(1.0) and got["dog", "hund"].count == 2
    # c(a)=2, c(ein)=1, c(a,ein)=1 -> 2/3 ; c(a,hund)=1 -> 2/4
    assert got["a", "ein"].dice == pytest.approx(2 / 3)
    assert got["a", "hund"].dice == pytest.approx(0.5)
    # positions (i + 0.5) / len: a=0.25 vs ein=0.25 ; a=0.25 vs hund=0.75
    assert got["a", "ein"].diag == pytest.approx(0.0) and got["a", "hund"].diag == pytest.approx(0.5)
    assert ("cat", "ein") not in got  # never together
    assert all(p.count >= 2 for p in score_word_pairs(src, tgt, min_count=2))
    with pytest.raises(ValueError):
        score_word_pairs(src, tgt[:2])


def test_lexicon_recovers_toy_dictionary():
    en, de = toy_parallel()
    lex = induce_lexicon(en, de, min_count=2, min_dice=0.3)
    expected = {**{k: [v] for k, v in COLORS.items()}, **{k: [v] for k, v in THINGS.items()},
                "the": ["das"], "is": ["ist"], "here": ["hier"]}  # ties of function words: by position
    assert lex == expected  # and no "zebra" (seen once)


def test_mutual_and_thresholds():
    src, tgt = ["x y"] * 3, ["z"] * 3  # x and y both co-occur perfectly with z
    assert induce_lexicon(src, tgt, mutual=False) == {"x": ["z"], "y": ["z"]}
    assert induce_lexicon(src, tgt, mutual=True) == {"x": ["z"]}  # z's best source: tie -> by name
    src, tgt = ["a b"] * 2 + ["a"] * 6, ["c d"] * 2 + ["c"] * 6  # dice(b, c) = 4/10
    assert induce_lexicon(src, tgt, min_dice=0.5, mutual=False) == {"a": ["c"], "b": ["d"]}  # (a,d), (b,c) cut
    assert induce_lexicon(src, tgt, min_dice=0.3, max_translations=2, mutual=False)["b"] == ["d", "c"]


def test_save_load_roundtrip(tmp_path):
    lex = {"dog": ["hund", "köter"], "red": ["rot"]}
    save_lexicon(str(tmp_path / "lex.tsv"), lex)
    assert load_lexicon(str(tmp_path / "lex.tsv")) == lex
    (tmp_path / "bad.tsv").write_text("dog hund\n")
    with pytest.raises(ValueError, match="bad.tsv:1"):
        load_lexicon(str(tmp_path / "bad.tsv"))


def test_code_switch_off_by_default_and_full():
    lex = {"de": {"the": ["das"], "red": ["rot"], "dog": ["hund"]}}
    off = CodeSwitcher(lex)
    assert not off.enabled and off("The red dog runs.") == "The red dog runs."
    on = CodeSwitcher(lex, prob=1.0)
    out, n = on.switch("The red dog runs, RED dog!")
    assert out == "Das rot hund runs, ROT hund!" and n == 5  # case and punctuation kept, "runs" has no entry


def test_code_switch_probability_and_seeding():
    lex = {"de": {w: [w.upper() + "x"] for w in ("a", "b", "c", "d", "e")}}
    cs = CodeSwitcher(lex, prob=0.5, seed=3)
    total = sum(cs.switch("a b c d e")[1] for _ in range(400))
    assert 0.45 < total / 2000 < 0.55
    s = "a b c d e a b c d e"
    assert CodeSwitcher(lex, prob=0.5, seed=3)(s, key=(1, 7)) == cs(s, key=(1, 7))  # per-sample, order-free
    assert len({cs(s, key=(0, i)) for i in range(20)}) > 1
    c1, c2 = CodeSwitcher(lex, prob=0.5, seed=9), CodeSwitcher(lex, prob=0.5, seed=9)
    assert [c1(s) for _ in range(5)] == [c2(s) for _ in range(5)]  # sequential generator, seeded


def test_code_switch_several_languages():
    lex = {"de": {"dog": ["hund"], "cat": ["katze"]}, "fr": {"dog": ["chien"]}}
    cs = CodeSwitcher(lex, prob=1.0, seed=0)
    outs = [cs("dog cat bird") for _ in range(50)]
    assert {o.split()[0] for o in outs} == {"hund", "chien"}  # the language is drawn per word
    assert all(o.split()[1:] == ["katze", "bird"] for o in outs)
    with pytest.raises(ValueError):
        CodeSwitcher(lex, prob=1.5)

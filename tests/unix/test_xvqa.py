"""Multilingual easy-VQA (xGQA-style): template parsing, hand-checked translations, agreement, coverage."""

import json
import os
from itertools import product

import pytest

from unix.data.vqa import VQARecord
from unix.data.xvqa import UnknownQuestionError, coverage, parse_question, translate_question, translate_records
from unix.data.xvqa_templates import COLORS, ENGLISH, LANGS, SHAPES, TEMPLATES, Noun, _cs, _de, _fr, render


def slot_values(template: str):
    if "{color}" in template:
        return [{"color": c} for c in COLORS]
    if "{shape}" in template:
        return [{"shape": s} for s in SHAPES]
    return [{}]


def easy_vqa_questions(split: str):
    easy_vqa = pytest.importorskip("easy_vqa")
    path = os.path.join(os.path.dirname(easy_vqa.__file__), "data", split, "questions.json")
    if not os.path.exists(path):
        pytest.skip(f"easy-VQA questions not found: {path}")
    with open(path, encoding="utf-8") as f:
        return [q for q, _, _ in json.load(f)]


def test_every_template_round_trips_and_every_language_has_all_24():
    assert len(ENGLISH) == 24 and all(set(TEMPLATES[lang]) == set(ENGLISH) for lang in LANGS)
    seen = {lang: set() for lang in LANGS}
    for name, template in ENGLISH.items():
        for slots in slot_values(template):
            question = render("en", name, slots)
            assert parse_question(question) == (name, slots)
            assert translate_question(question, "en") == question  # English regenerated = original
            for lang in LANGS:
                seen[lang].add(translate_question(question, lang))
    n = sum(len(slot_values(t)) for t in ENGLISH.values())
    assert n == 9 * 8 + 10 * 3 + 5  # colour templates x 8 colours, shape templates x 3 shapes, 5 without slot
    assert all(len(s) == n for s in seen.values())  # no two English questions share a translation


def test_hand_checked_german():
    cases = {
        "does the image contain a circle?": "enthält das Bild einen Kreis?",
        "does the image contain a rectangle?": "enthält das Bild ein Rechteck?",
        "does the image not contain a circle?": "enthält das Bild keinen Kreis?",
        "does the image not contain a triangle?": "enthält das Bild kein Dreieck?",
        "does the image contain a teal shape?": "enthält das Bild eine blaugrüne Form?",
        "is no gray shape present?": "ist keine graue Form vorhanden?",
        "is a circle present?": "ist ein Kreis vorhanden?",
        "is there a circle in the image?": "gibt es einen Kreis im Bild?",
        "what color is the circle?": "welche Farbe hat der Kreis?",
        "what color is the rectangle?": "welche Farbe hat das Rechteck?",
        "what is the color of the circle?": "was ist die Farbe des Kreises?",
        "what is the color of the triangle?": "was ist die Farbe des Dreiecks?",
        "what is the black shape?": "was ist die schwarze Form?",
        "what shape does the image contain?": "welche Form enthält das Bild?",
    }
    for en, de in cases.items():
        assert translate_question(en, "de") == de


def test_hand_checked_french():
    cases = {
        "does the image contain a green shape?": "l'image contient-elle une forme verte ?",
        "does the image not contain a blue shape?": "l'image ne contient-elle pas de forme bleue ?",
        "is there a teal shape?": "y a-t-il une forme bleu canard ?",
        "is there not a brown shape in the image?": "n'y a-t-il pas de forme marron dans l'image ?",
        "is a gray shape present?": "une forme grise est-elle présente ?",
        "is a triangle present?": "un triangle est-il présent ?",
        "is no black shape present?": "aucune forme noire n'est présente ?",
        "is no circle present?": "aucun cercle n'est présent ?",
        "what is the color of the rectangle?": "quelle est la couleur du rectangle ?",
        "what is the color of the shape?": "quelle est la couleur de la forme ?",
        "what is the yellow shape?": "quelle est la forme jaune ?",
    }
    for en, fr in cases.items():
        assert translate_question(en, "fr") == fr


def test_hand_checked_czech():
    cases = {
        "does the image contain a red shape?": "obsahuje obrázek červený tvar?",
        "does the image not contain a triangle?": "neobsahuje obrázek trojúhelník?",
        "is no yellow shape present?": "není přítomen žádný žlutý tvar?",
        "is a rectangle present?": "je přítomen obdélník?",
        "is there a gray shape in the image?": "je na obrázku šedý tvar?",
        "is there not a circle?": "není tam kruh?",
        "what color is the triangle?": "jakou barvu má trojúhelník?",
        "what is the color of the circle?": "jaká je barva kruhu?",
        "what is the color of the rectangle?": "jaká je barva obdélníku?",
        "what is the color of the shape?": "jaká je barva tvaru?",
        "what shape is in the image?": "jaký tvar je na obrázku?",
    }
    for en, cs in cases.items():
        assert translate_question(en, "cs") == cs


def test_agreement_by_gender_and_case():
    kreis, dreieck, form = Noun("Kreis", "m", {"gen": "Kreises"}), Noun("Dreieck", "n", {"gen": "Dreiecks"}), \
        Noun("Form", "f")
    # German mixed declension after ein/kein, weak after der/die/das, genitive nouns
    assert _de("indef.nom", kreis, "rot") == "ein roter Kreis"
    assert _de("indef.acc", kreis, "rot") == "einen roten Kreis"
    assert _de("neg.nom", dreieck, "blau") == "kein blaues Dreieck"
    assert _de("def.nom", form, "gelb") == "die gelbe Form"
    assert _de("def.gen", form, "gelb") == "der gelben Form"
    assert _de("def.gen", kreis, "grün") == "des grünen Kreises"
    # French: feminine determiners, pronoun and participle; elision before a vowel
    cercle, ellipse = Noun("cercle", "m"), Noun("ellipse", "f")
    assert [_fr(r, ellipse, None) for r in ("indef", "def", "of_def", "neg", "aucun", "pron", "present")] == [
        "une ellipse", "l'ellipse", "de l'ellipse", "d'ellipse", "aucune ellipse", "elle", "présente"]
    assert _fr("indef", cercle, ("vert", "verte")) == "un cercle vert"
    assert _fr("indef", Noun("forme", "f"), ("bleu canard", "bleu canard")) == "une forme bleu canard"
    # Czech hard adjectives: masculine inanimate, feminine, neuter
    assert _cs("gen", Noun("kruh", "m", {"gen": "kruhu"}), "červen") == "červeného kruhu"
    assert _cs("acc", Noun("elipsa", "f", {"acc": "elipsu"}), "červen") == "červenou elipsu"
    assert _cs("no.nom", Noun("kolo", "n"), "modr") == "žádné modré kolo"
    assert _cs("present", Noun("elipsa", "f"), None) == "přítomna"


def test_capitalisation_follows_the_english_question():
    assert translate_question("Does the image contain a circle?", "de") == "Enthält das Bild einen Kreis?"
    assert translate_question("Is a red shape present?", "fr") == "Une forme rouge est-elle présente ?"
    assert render("cs", "shape_present", {}, lowercase_first=False) == "Jaký tvar je přítomen?"


def test_unknown_question_is_an_error_naming_it():
    with pytest.raises(UnknownQuestionError, match=r"'is there a purple shape\?' is none of easy-VQA's 24"):
        parse_question("is there a purple shape?")
    recs = [VQARecord("what shape is present?", ["circle"], "test/images/0.png", "t.jsonl:1"),
            VQARecord("how many shapes are there?", ["1"], "test/images/0.png", "t.jsonl:2")]
    with pytest.raises(UnknownQuestionError, match=r"^t.jsonl:2: question 'how many shapes are there\?'"):
        translate_records(recs, "fr")
    with pytest.raises(ValueError, match="no easy-VQA templates for language 'es'"):
        translate_question("what shape is present?", "es")
    ok = translate_records(recs[:1], "cs")[0]
    assert (ok.question, ok.answers, ok.image, ok.where) == ("jaký tvar je přítomen?", ["circle"],
                                                             "test/images/0.png", "t.jsonl:1")


@pytest.mark.parametrize("split", ["test", "train"])
def test_every_real_easy_vqa_question_is_covered(split):
    questions = easy_vqa_questions(split)
    n, unknown = coverage(questions)
    assert unknown == [] and n == len(questions) == {"test": 9673, "train": 38575}[split]
    for q in questions:
        assert translate_question(q, "en") == q
    distinct = set(questions)
    for lang in LANGS:
        assert len({translate_question(q, lang) for q in distinct}) == len(distinct)


def test_all_slot_combinations_render_without_leftover_braces():
    for lang, name in product(LANGS, ENGLISH):
        for slots in slot_values(ENGLISH[name]):
            text = render(lang, name, slots)
            assert "{" not in text and "}" not in text and "  " not in text and text.endswith("?")

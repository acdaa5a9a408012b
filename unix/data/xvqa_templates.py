"""easy-VQA's 24 English question templates, 3 shapes and 8 colours in German, French and Czech.

easy-VQA (``easy_vqa`` package, ``data/*/questions.json``) asks every question from one of 24
English templates with a colour slot, a shape slot or none (recovered from its questions: every
train and test question is one of them, see ``tests/unix/test_xvqa.py``). This module is the
table of their translations, xGQA-style (questions translated, images and answers unchanged),
and the little grammar that puts slot words in the right form:

* **German**: *die Form* (f) for "shape"; *der Kreis* (m, genitive *des Kreises*), *das
  Rechteck*, *das Dreieck* (n, *des Rechtecks*, *des Dreiecks*); articles by case and gender
  (*einen Kreis* / *ein Rechteck*, *keinen Kreis* / *kein Dreieck*) and adjective endings of the
  weak (after *der/die/das*) and mixed (after *ein/kein*) declension (*eine rote Form*);
* **French**: *la forme* (f); *le cercle*, *le rectangle*, *le triangle* (m); colour adjectives
  agree with *forme* (*verte*, *bleue*, *noire*, *grise*; *rouge*, *jaune* unchanged; compound
  *bleu canard* and *marron* invariable); *un/une*, *le/la*, *du/de la*, *aucun/aucune*, the
  pronoun *il/elle* and *présent/présente* follow the gender; *pas de* after a negation;
* **Czech**: *tvar* (m inanimate) for "shape"; *kruh*, *obdélník*, *trojúhelník* (m inanimate;
  genitive *kruhu*, *obdélníku*, *trojúhelníku*); colours are hard adjectives (*červený*,
  genitive *červeného*), *žádný* likewise; *přítomen/přítomna/přítomno* follow the gender.

Choices: teal is *blaugrün* / *bleu canard* / *modrozelený*; gray *grau* / *gris* / *šedý*.
French puts a space before ``?`` (French typography), German and Czech do not. Templates are
written with a capital letter; :func:`render` lowercases it when the English question starts in
lower case (easy-VQA's questions all do). The translations are the author's (not a native
speaker's); ``tests/unix/test_xvqa.py`` lists hand-checked renderings of every language.
"""

from __future__ import annotations

import re
from typing import Dict, NamedTuple, Optional

COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
SHAPES = ("circle", "rectangle", "triangle")
LANGS = ("de", "fr", "cs")

# easy-VQA's English templates, by our name; {color} and {shape} are the slots
ENGLISH: Dict[str, str] = {
    "contain_color": "does the image contain a {color} shape?",
    "contain_shape": "does the image contain a {shape}?",
    "not_contain_color": "does the image not contain a {color} shape?",
    "not_contain_shape": "does the image not contain a {shape}?",
    "present_color": "is a {color} shape present?",
    "present_shape": "is a {shape} present?",
    "no_present_color": "is no {color} shape present?",
    "no_present_shape": "is no {shape} present?",
    "there_in_color": "is there a {color} shape in the image?",
    "there_color": "is there a {color} shape?",
    "there_in_shape": "is there a {shape} in the image?",
    "there_shape": "is there a {shape}?",
    "not_there_in_color": "is there not a {color} shape in the image?",
    "not_there_color": "is there not a {color} shape?",
    "not_there_in_shape": "is there not a {shape} in the image?",
    "not_there_shape": "is there not a {shape}?",
    "color_is_shape": "what color is the {shape}?",
    "color_is": "what color is the shape?",
    "what_color_shape": "what is the {color} shape?",
    "color_of_shape": "what is the color of the {shape}?",
    "color_of": "what is the color of the shape?",
    "shape_contain": "what shape does the image contain?",
    "shape_in": "what shape is in the image?",
    "shape_present": "what shape is present?",
}

# Translations. {color:ROLE} is the noun phrase "<colour> shape", {shape:ROLE} the phrase of the
# shape, in the form ROLE names (see the grammar of each language below).
TEMPLATES: Dict[str, Dict[str, str]] = {
    "de": {
        "contain_color": "Enthält das Bild {color:indef.acc}?",
        "contain_shape": "Enthält das Bild {shape:indef.acc}?",
        "not_contain_color": "Enthält das Bild {color:neg.acc}?",
        "not_contain_shape": "Enthält das Bild {shape:neg.acc}?",
        "present_color": "Ist {color:indef.nom} vorhanden?",
        "present_shape": "Ist {shape:indef.nom} vorhanden?",
        "no_present_color": "Ist {color:neg.nom} vorhanden?",
        "no_present_shape": "Ist {shape:neg.nom} vorhanden?",
        "there_in_color": "Gibt es {color:indef.acc} im Bild?",
        "there_color": "Gibt es {color:indef.acc}?",
        "there_in_shape": "Gibt es {shape:indef.acc} im Bild?",
        "there_shape": "Gibt es {shape:indef.acc}?",
        "not_there_in_color": "Gibt es {color:neg.acc} im Bild?",
        "not_there_color": "Gibt es {color:neg.acc}?",
        "not_there_in_shape": "Gibt es {shape:neg.acc} im Bild?",
        "not_there_shape": "Gibt es {shape:neg.acc}?",
        "color_is_shape": "Welche Farbe hat {shape:def.nom}?",
        "color_is": "Welche Farbe hat die Form?",
        "what_color_shape": "Was ist {color:def.nom}?",
        "color_of_shape": "Was ist die Farbe {shape:def.gen}?",
        "color_of": "Was ist die Farbe der Form?",
        "shape_contain": "Welche Form enthält das Bild?",
        "shape_in": "Welche Form ist im Bild?",
        "shape_present": "Welche Form ist vorhanden?",
    },
    "fr": {
        "contain_color": "L'image contient-elle {color:indef} ?",
        "contain_shape": "L'image contient-elle {shape:indef} ?",
        "not_contain_color": "L'image ne contient-elle pas {color:neg} ?",
        "not_contain_shape": "L'image ne contient-elle pas {shape:neg} ?",
        "present_color": "{color:indef} est-{color:pron} {color:present} ?",
        "present_shape": "{shape:indef} est-{shape:pron} {shape:present} ?",
        "no_present_color": "{color:aucun} n'est {color:present} ?",
        "no_present_shape": "{shape:aucun} n'est {shape:present} ?",
        "there_in_color": "Y a-t-il {color:indef} dans l'image ?",
        "there_color": "Y a-t-il {color:indef} ?",
        "there_in_shape": "Y a-t-il {shape:indef} dans l'image ?",
        "there_shape": "Y a-t-il {shape:indef} ?",
        "not_there_in_color": "N'y a-t-il pas {color:neg} dans l'image ?",
        "not_there_color": "N'y a-t-il pas {color:neg} ?",
        "not_there_in_shape": "N'y a-t-il pas {shape:neg} dans l'image ?",
        "not_there_shape": "N'y a-t-il pas {shape:neg} ?",
        "color_is_shape": "De quelle couleur est {shape:def} ?",
        "color_is": "De quelle couleur est la forme ?",
        "what_color_shape": "Quelle est {color:def} ?",
        "color_of_shape": "Quelle est la couleur {shape:of_def} ?",
        "color_of": "Quelle est la couleur de la forme ?",
        "shape_contain": "Quelle forme l'image contient-elle ?",
        "shape_in": "Quelle forme se trouve dans l'image ?",
        "shape_present": "Quelle forme est présente ?",
    },
    "cs": {
        "contain_color": "Obsahuje obrázek {color:acc}?",
        "contain_shape": "Obsahuje obrázek {shape:acc}?",
        "not_contain_color": "Neobsahuje obrázek {color:acc}?",
        "not_contain_shape": "Neobsahuje obrázek {shape:acc}?",
        "present_color": "Je {color:present} {color:nom}?",
        "present_shape": "Je {shape:present} {shape:nom}?",
        "no_present_color": "Není {color:present} {color:no.nom}?",
        "no_present_shape": "Není {shape:present} {shape:no.nom}?",
        "there_in_color": "Je na obrázku {color:nom}?",
        "there_color": "Je tam {color:nom}?",
        "there_in_shape": "Je na obrázku {shape:nom}?",
        "there_shape": "Je tam {shape:nom}?",
        "not_there_in_color": "Není na obrázku {color:nom}?",
        "not_there_color": "Není tam {color:nom}?",
        "not_there_in_shape": "Není na obrázku {shape:nom}?",
        "not_there_shape": "Není tam {shape:nom}?",
        "color_is_shape": "Jakou barvu má {shape:nom}?",
        "color_is": "Jakou barvu má tvar?",
        "what_color_shape": "Co je {color:nom}?",
        "color_of_shape": "Jaká je barva {shape:gen}?",
        "color_of": "Jaká je barva tvaru?",
        "shape_contain": "Jaký tvar obrázek obsahuje?",
        "shape_in": "Jaký tvar je na obrázku?",
        "shape_present": "Jaký tvar je přítomen?",
    },
}


class Noun(NamedTuple):
    """A noun: its base (nominative singular) form, gender and the other case forms it needs."""

    base: str
    gender: str  # "m", "f", "n"
    cases: Dict[str, str] = {}

    def form(self, case: str) -> str:
        return self.cases.get(case, self.base)


# the word for "shape" (the head of a colour slot's phrase) and the three shapes
NOUNS: Dict[str, Dict[str, Noun]] = {
    "de": {"shape": Noun("Form", "f"), "circle": Noun("Kreis", "m", {"gen": "Kreises"}),
           "rectangle": Noun("Rechteck", "n", {"gen": "Rechtecks"}),
           "triangle": Noun("Dreieck", "n", {"gen": "Dreiecks"})},
    "fr": {"shape": Noun("forme", "f"), "circle": Noun("cercle", "m"), "rectangle": Noun("rectangle", "m"),
           "triangle": Noun("triangle", "m")},
    "cs": {"shape": Noun("tvar", "m", {"gen": "tvaru"}), "circle": Noun("kruh", "m", {"gen": "kruhu"}),
           "rectangle": Noun("obdélník", "m", {"gen": "obdélníku"}),
           "triangle": Noun("trojúhelník", "m", {"gen": "trojúhelníku"})},
}

# colour adjectives: German stem, French (masculine, feminine), Czech hard stem
COLOR_WORDS = {
    "de": {"red": "rot", "green": "grün", "blue": "blau", "black": "schwarz", "gray": "grau", "teal": "blaugrün",
           "brown": "braun", "yellow": "gelb"},
    "fr": {"red": ("rouge", "rouge"), "green": ("vert", "verte"), "blue": ("bleu", "bleue"),
           "black": ("noir", "noire"), "gray": ("gris", "grise"), "teal": ("bleu canard", "bleu canard"),
           "brown": ("marron", "marron"), "yellow": ("jaune", "jaune")},
    "cs": {"red": "červen", "green": "zelen", "blue": "modr", "black": "čern", "gray": "šed", "teal": "modrozelen",
           "brown": "hněd", "yellow": "žlut"},
}

# -- German: determiners and adjective endings by (determiner, case) and gender ----------------------
DE_DET = {("def", "nom"): ("der", "die", "das"), ("def", "acc"): ("den", "die", "das"),
          ("def", "gen"): ("des", "der", "des"), ("indef", "nom"): ("ein", "eine", "ein"),
          ("indef", "acc"): ("einen", "eine", "ein"), ("indef", "gen"): ("eines", "einer", "eines"),
          ("neg", "nom"): ("kein", "keine", "kein"), ("neg", "acc"): ("keinen", "keine", "kein"),
          ("neg", "gen"): ("keines", "keiner", "keines")}
DE_ADJ = {("def", "nom"): ("e", "e", "e"), ("def", "acc"): ("en", "e", "e"), ("def", "gen"): ("en", "en", "en"),
          ("mixed", "nom"): ("er", "e", "es"), ("mixed", "acc"): ("en", "e", "es"),
          ("mixed", "gen"): ("en", "en", "en")}
GENDERS = ("m", "f", "n")


def _de(role: str, noun: Noun, adj: Optional[str]) -> str:
    det, case = role.split(".")
    g = GENDERS.index(noun.gender)
    words = [DE_DET[(det, case)][g]]
    if adj:
        words.append(adj + DE_ADJ[("def" if det == "def" else "mixed", case)][g])
    return " ".join(words + [noun.form(case)])


# -- French -----------------------------------------------------------------------------------
FR_WORDS = {"indef": ("un", "une"), "def": ("le", "la"), "of_def": ("du", "de la"), "aucun": ("aucun", "aucune"),
            "neg": ("de", "de"), "pron": ("il", "elle"), "present": ("présent", "présente")}
VOWELS = "aeiouyàâéèêëîïôûh"


def _fr(role: str, noun: Noun, adj) -> str:
    f = noun.gender == "f"
    word = FR_WORDS[role][f]
    if role in ("pron", "present"):
        return word
    phrase = noun.base + (" " + adj[f] if adj else "")
    if word in ("le", "la", "de") and phrase[0].lower() in VOWELS:
        return word[:-1] + "'" + phrase  # l'..., d'...
    if word == "de la" and phrase[0].lower() in VOWELS:
        return "de l'" + phrase
    return f"{word} {phrase}"


# -- Czech: hard adjective endings by case and gender (masculine inanimate, feminine, neuter) ------
CS_ADJ = {"nom": ("ý", "á", "é"), "acc": ("ý", "ou", "é"), "gen": ("ého", "é", "ého")}
CS_PRESENT = ("přítomen", "přítomna", "přítomno")


def _cs(role: str, noun: Noun, adj: Optional[str]) -> str:
    g = GENDERS.index(noun.gender)
    if role == "present":
        return CS_PRESENT[g]
    neg, _, case = role.rpartition(".")
    words = ["žádn" + CS_ADJ[case][g]] if neg == "no" else []
    if adj:
        words.append(adj + CS_ADJ[case][g])
    return " ".join(words + [noun.form(case)])


GRAMMAR = {"de": _de, "fr": _fr, "cs": _cs}
SLOT = re.compile(r"\{(color|shape):([\w.]+)\}")


def slot_phrase(lang: str, slot: str, value: str, role: str) -> str:
    """The phrase of a slot: ``slot`` ``color`` -> "<value> shape", ``shape`` -> the shape ``value``.

    Raises:
        KeyError: an unknown language, value or role.
    """
    nouns = NOUNS[lang]
    if slot == "color":
        return GRAMMAR[lang](role, nouns["shape"], COLOR_WORDS[lang][value])
    return GRAMMAR[lang](role, nouns[value], None)


def render(lang: str, template_id: str, slots: Dict[str, str], lowercase_first: bool = True) -> str:
    """The question of template ``template_id`` in ``lang`` (``en`` too) with ``slots`` filled.

    Args:
        slots: ``{"color": "red"}``, ``{"shape": "circle"}`` or ``{}`` as the template needs.
        lowercase_first: lowercase the first letter (easy-VQA's English questions are lower case);
            False: capitalise it.
    """
    if lang == "en":
        text = ENGLISH[template_id].format(**slots)
    else:
        text = SLOT.sub(lambda m: slot_phrase(lang, m.group(1), slots[m.group(1)], m.group(2)),
                        TEMPLATES[lang][template_id])
    return (text[0].lower() if lowercase_first else text[0].upper()) + text[1:]

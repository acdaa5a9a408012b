"""VQA accuracy: exact match after answer normalization, soft accuracy with several references.

Answers are compared after the normalization of the VQA evaluation (Antol et al. 2015):
lowercase; commas inside numbers dropped (``1,000`` -> ``1000``); punctuation replaced by spaces
(a period only where it is not a decimal point); number words ``zero``..``ten`` (and ``none``) as
digits; articles ``a``/``an``/``the`` dropped; a few contractions written without apostrophe
restored (``dont`` -> ``don't``); whitespace collapsed.

Scores per question, with ``refs`` the reference answers (one per annotator, repeats allowed):

* one reference: 1 if the normalized prediction equals it, else 0;
* several references: ``min(#references equal to the prediction / 3, 1)`` (VQA soft accuracy);
* several references, ``leave_one_out=True``: the official VQA evaluation's form of it, the mean
  over the leave-one-annotator-out subsets of ``min(#matches in the subset / 3, 1)`` (with 10
  references: over the 10 subsets of 9). It differs from the simple form only when 1 to 3
  references match: 3 of 10 give 0.9, not 1; 1 of 10 gives 0.3, not 1/3.

Several references travel in one target string joined by ``<sep>``
(:mod:`unix.metrics.references`); :class:`VQAAccuracy` takes such strings.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Dict, List, Sequence

from unix.metrics.references import split_references

_PUNCT = ";/[]\"{}()=+\\_-><@`,?!:*#%^&|~$"
_PUNCT_RE = re.compile("[" + re.escape(_PUNCT) + "]")
_COMMA_IN_NUMBER = re.compile(r"(?<=\d),(?=\d)")
_PERIOD_NOT_DECIMAL = re.compile(r"(?<!\d)\.|\.(?!\d)")
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
            "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_CONTRACTIONS = {"dont": "don't", "doesnt": "doesn't", "isnt": "isn't", "arent": "aren't", "cant": "can't",
                 "wont": "won't", "wasnt": "wasn't", "werent": "weren't", "didnt": "didn't",
                 "hasnt": "hasn't", "havent": "haven't", "couldnt": "couldn't", "shouldnt": "shouldn't",
                 "wouldnt": "wouldn't", "im": "i'm", "ive": "i've", "youre": "you're", "theyre": "they're",
                 "thats": "that's", "whats": "what's", "lets": "let's", "hes": "he's", "shes": "she's"}

SOFT_DENOMINATOR = 3.0  # humans needed for full credit in the VQA soft accuracy


def normalize_answer(answer: str) -> str:
    """Normalize an answer as the VQA evaluation does (see the module docstring).

    >>> normalize_answer("The Two dogs!")
    '2 dogs'
    """
    text = answer.replace("\n", " ").replace("\t", " ").strip().lower()
    text = _COMMA_IN_NUMBER.sub("", text)
    text = _PUNCT_RE.sub(" ", text)
    text = _PERIOD_NOT_DECIMAL.sub(" ", text)
    words = []
    for w in text.split():
        w = _NUMBERS.get(w, w)
        if w in _ARTICLES:
            continue
        words.append(_CONTRACTIONS.get(w, w))
    return " ".join(words)


def vqa_accuracy(prediction: str, references: Sequence[str], leave_one_out: bool = False) -> float:
    """Accuracy of one predicted answer against the reference answers of its question.

    Args:
        prediction: the generated answer (detokenized text).
        references: the reference answers, one per annotator (repeats count).
        leave_one_out: with several references, average the soft accuracy over the subsets that
            leave one reference out, as the official VQA evaluation script does.

    Returns:
        A score in [0, 1]: exact match with one reference, the soft accuracy with several.

    Raises:
        ValueError: if there is no reference.
    """
    if not references:
        raise ValueError("a question needs at least one reference answer")
    pred = normalize_answer(prediction)
    refs = [normalize_answer(r) for r in references]
    if len(refs) == 1:
        return float(pred == refs[0])
    matches = sum(r == pred for r in refs)
    if not leave_one_out:
        return min(matches / SOFT_DENOMINATOR, 1.0)
    # leaving out a matching reference removes one match; leaving out another keeps them all
    left_match = min((matches - 1) / SOFT_DENOMINATOR, 1.0)
    left_other = min(matches / SOFT_DENOMINATOR, 1.0)
    return (matches * left_match + (len(refs) - matches) * left_other) / len(refs)


ANSWER_TYPES = ("yes/no", "number", "other")


def answer_type(references: Sequence[str]) -> str:
    """VQA answer type of a question from its most frequent normalized reference:
    ``yes/no``, ``number`` (digits after normalization, so "two" counts) or ``other``."""
    counts = Counter(normalize_answer(r) for r in references)
    top = counts.most_common(1)[0][0] if counts else ""
    if top in ("yes", "no"):
        return "yes/no"
    return "number" if top.replace(".", "", 1).isdigit() else "other"


class VQAAccuracy:
    """Accumulates :func:`vqa_accuracy` over a corpus.

    ``add(target, prediction)`` takes the target string of a question (references joined by
    ``<sep>``) and the generated answer; :meth:`score` is the mean accuracy in percent.
    ``leave_one_out`` selects the official evaluation's averaging (see :func:`vqa_accuracy`).
    """

    def __init__(self, leave_one_out: bool = False):
        self.leave_one_out = leave_one_out
        self.total = 0.0
        self.count = 0
        self.exact = 0
        self.by_type: Dict[str, List[float]] = {}  # answer type -> [sum of accuracies, questions]

    def add(self, target: str, prediction: str) -> float:
        """Score one question; returns its accuracy in [0, 1]."""
        refs = split_references(target)
        if not refs:
            raise ValueError(f"empty reference answer (target {target!r})")
        acc = vqa_accuracy(prediction, refs, self.leave_one_out)
        self.total += acc
        self.count += 1
        self.exact += int(normalize_answer(prediction) in {normalize_answer(r) for r in refs})
        acc_n = self.by_type.setdefault(answer_type(refs), [0.0, 0])
        acc_n[0] += acc
        acc_n[1] += 1
        return acc

    def score(self) -> float:
        """Mean accuracy in percent (0 for an empty corpus)."""
        return 100.0 * self.total / self.count if self.count else 0.0

    def summary(self) -> Dict[str, object]:
        """``accuracy`` (percent), ``match`` (percent of predictions equal to any reference), ``n``,
        and ``by_type``: answer type -> ``(accuracy percent, questions)``, as the VQA evaluation."""
        match = 100.0 * self.exact / self.count if self.count else 0.0
        ordered = sorted(self.by_type.items(), key=lambda kv: ANSWER_TYPES.index(kv[0]))
        by_type = {t: (100.0 * tot / n, n) for t, (tot, n) in ordered}
        return {"accuracy": self.score(), "match": match, "n": self.count, "by_type": by_type}

    def result_string(self) -> str:
        s = self.summary()
        types = "; ".join(f"{t} {a:.2f} (n={n})" for t, (a, n) in s["by_type"].items())
        return f"VQA accuracy = {s['accuracy']:.2f} (any-reference match {s['match']:.2f}, n={s['n']}; {types})"


def batch_vqa_accuracy(predictions: Sequence[str], targets: Sequence[str],
                       leave_one_out: bool = False) -> List[float]:
    """Per-question accuracies of aligned predictions and ``<sep>``-joined target strings."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    return [vqa_accuracy(p, split_references(t), leave_one_out) for p, t in zip(predictions, targets)]

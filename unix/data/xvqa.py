"""A multilingual easy-VQA test set, built the way xGQA was: questions translated, images and
answers unchanged (answers stay the English words), for zero-shot cross-lingual VQA.

Every English easy-VQA question is parsed back into its template and slots
(:data:`unix.data.xvqa_templates.ENGLISH`) and generated again from the German, French or Czech
template (:func:`unix.data.xvqa_templates.render`). A question that fits no template is an error
naming it (and its file and line): nothing is dropped silently, so the translated files stay
aligned line by line with the English one. The command is ``unix-prepare-xvqa``
(:mod:`unix.cli.prepare_xvqa`).
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, NamedTuple, Sequence, Tuple

from unix.data.vqa import VQADataError, VQARecord
from unix.data.xvqa_templates import COLORS, ENGLISH, LANGS, SHAPES, render


class UnknownQuestionError(VQADataError):
    """A question that is none of easy-VQA's templates; the message names it."""


class ParsedQuestion(NamedTuple):
    """A question as template name and slot values (``{"color": "red"}``, ``{"shape": ...}`` or ``{}``)."""

    template: str
    slots: Dict[str, str]


def _pattern(template: str) -> "re.Pattern[str]":
    text = re.escape(template)
    text = text.replace(re.escape("{color}"), f"(?P<color>{'|'.join(COLORS)})")
    text = text.replace(re.escape("{shape}"), f"(?P<shape>{'|'.join(SHAPES)})")
    return re.compile(text)


PATTERNS = {name: _pattern(t) for name, t in ENGLISH.items()}


def parse_question(question: str, where: str = "") -> ParsedQuestion:
    """Template and slots of an English easy-VQA question (its words as easy-VQA writes them, lower
    case; a capital first letter and extra spaces are accepted).

    Raises:
        UnknownQuestionError: the question fits no template (``where`` prefixes the message).
    """
    text = " ".join(question.split())
    text = text[:1].lower() + text[1:]
    for name, pattern in PATTERNS.items():
        m = pattern.fullmatch(text)
        if m:
            return ParsedQuestion(name, {k: v for k, v in m.groupdict().items() if v is not None})
    prefix = f"{where}: " if where else ""
    raise UnknownQuestionError(f"{prefix}question {question!r} is none of easy-VQA's {len(ENGLISH)} templates "
                               "(unix/data/xvqa_templates.py)")


def translate_question(question: str, lang: str, where: str = "") -> str:
    """The question in ``lang`` (``de``, ``fr``, ``cs``; ``en`` gives it back regenerated)."""
    if lang not in LANGS + ("en",):
        raise ValueError(f"no easy-VQA templates for language {lang!r}; have: {', '.join(LANGS)}")
    parsed = parse_question(question, where)
    return render(lang, parsed.template, parsed.slots, lowercase_first=question[:1].islower())


def translate_records(records: Sequence[VQARecord], lang: str) -> List[VQARecord]:
    """Records with the question in ``lang``; image, answers and order unchanged.

    Raises:
        UnknownQuestionError: naming the file and line (``record.where``) of the first question
            that fits no template.
    """
    return [VQARecord(translate_question(r.question, lang, r.where), list(r.answers), r.image, r.where)
            for r in records]


def coverage(questions: Iterable[str]) -> Tuple[int, List[str]]:
    """``(number of questions that parse, the distinct ones that do not)``."""
    n, unknown = 0, []
    for q in questions:
        try:
            parse_question(q)
            n += 1
        except UnknownQuestionError:
            if q not in unknown:
                unknown.append(q)
    return n, unknown

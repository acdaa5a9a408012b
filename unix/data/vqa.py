"""VQA data in the project's plain format: one JSON object per line (JSONL).

Each line of ``<split>.jsonl`` is one question::

    {"image": "train/images/17.png", "question": "what color is the shape?", "answers": ["blue"]}

* ``image``: path of the question's image, relative to an image root (or absolute); required.
* ``question``: the question text; must not be empty.
* ``answers``: the reference answers, one per annotator (repeats allowed, several words allowed);
  ``"answer": "blue"`` is accepted for a single one. Training uses the most frequent answer
  (ties: the first given); evaluation keeps all of them, joined by ``<sep>``.

Every problem is reported as :class:`VQADataError` naming the file and line.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence

from unix.metrics.references import SEP, join_references

logger = logging.getLogger(__name__)


class VQADataError(ValueError):
    """A VQA file is malformed; the message names the file and line."""


@dataclass
class VQARecord:
    """One question: its text, reference answers, image path and where it was read."""

    question: str
    answers: List[str]
    image: str
    where: str = ""

    @property
    def training_answer(self) -> str:
        return most_common_answer(self.answers)

    @property
    def target(self) -> str:
        """All references joined by ``<sep>`` (the evaluation target)."""
        return join_references(self.answers)


def most_common_answer(answers: Sequence[str]) -> str:
    """The most frequent answer; ties go to the one given first."""
    if not answers:
        raise ValueError("no answer")
    counts = Counter(answers)
    best = max(counts.values())
    return next(a for a in answers if counts[a] == best)


def _clean(text: str) -> str:
    return " ".join(str(text).split())


def parse_record(obj, where: str, image_root: Optional[str] = None, check_image: bool = True) -> VQARecord:
    """Validate one decoded JSON object; ``where`` (``file:line``) prefixes every error."""
    if not isinstance(obj, dict):
        raise VQADataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    question = _clean(obj.get("question") or "")
    if not question:
        raise VQADataError(f"{where}: empty question")
    if "answers" in obj:
        answers = obj["answers"]
        if isinstance(answers, str):
            answers = [answers]
    elif "answer" in obj:
        answers = [obj["answer"]]
    else:
        raise VQADataError(f"{where}: no 'answers' (or 'answer') field")
    if not isinstance(answers, list) or not answers:
        raise VQADataError(f"{where}: 'answers' must be a non-empty list of strings")
    answers = [_clean(a) if isinstance(a, str) else None for a in answers]
    for a in answers:
        if not a:
            raise VQADataError(f"{where}: empty or non-string answer in {obj.get('answers', obj.get('answer'))!r}")
        if SEP in a:
            raise VQADataError(f"{where}: answer {a!r} contains the reference separator {SEP}")
    image = obj.get("image")
    if not isinstance(image, str) or not image.strip():
        raise VQADataError(f"{where}: question has no image ('image' field missing or empty)")
    image = image.strip()
    if check_image:
        full = image if os.path.isabs(image) or image_root is None else os.path.join(image_root, image)
        if not os.path.isfile(full):
            raise VQADataError(f"{where}: image not found: {full}")
    return VQARecord(question, answers, image, where)


def read_vqa_jsonl(path: str, image_root: Optional[str] = None, check_images: bool = True,
                   max_records: int = 0) -> List[VQARecord]:
    """Read and check a JSONL file of questions.

    Args:
        path: the ``.jsonl`` file.
        image_root: directory the image paths are relative to.
        check_images: check that every image file exists.
        max_records: keep the first N records only (0 = all).

    Raises:
        VQADataError: naming file and line, on bad JSON, an empty question, a missing answer or
            a missing image; or if the file holds no question.
    """
    if not os.path.exists(path):
        raise VQADataError(f"VQA file not found: {path}")
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if max_records and len(records) >= max_records:
                break
            where = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise VQADataError(f"{where}: invalid JSON ({e.msg})") from e
            records.append(parse_record(obj, where, image_root, check_images))
    if not records:
        raise VQADataError(f"{path}: no question in the file")
    return records


def write_vqa_jsonl(records: Iterable[VQARecord], path: str) -> int:
    """Write records in the JSONL format; returns the number written."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({"image": r.image, "question": r.question, "answers": r.answers},
                               ensure_ascii=False) + "\n")
            n += 1
    return n


def read_answer_list(path: str) -> List[str]:
    """Read a closed answer list (one answer a line; repeats are dropped with a warning).

    Raises:
        VQADataError: if the file is missing, has an empty line or a ``<sep>``, or holds no answer.
    """
    if not os.path.exists(path):
        raise VQADataError(f"answer list not found: {path}")
    answers: List[str] = []
    seen = set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            a = _clean(line)
            if not a:
                raise VQADataError(f"{path}:{n}: empty answer in the answer list")
            if SEP in a:
                raise VQADataError(f"{path}:{n}: answer {a!r} contains the reference separator {SEP}")
            if a in seen:
                logger.warning("%s:%d: answer %r listed twice", path, n, a)
                continue
            seen.add(a)
            answers.append(a)
    if not answers:
        raise VQADataError(f"{path}: the answer list is empty")
    return answers


def check_training_answers(records: Sequence[VQARecord], answers: Iterable[str], list_path: str) -> None:
    """Raise naming the first training question whose (training) answer is not in the list."""
    allowed = set(answers)
    bad = [r for r in records if r.training_answer not in allowed]
    if bad:
        raise VQADataError(
            f"{bad[0].where}: answer {bad[0].training_answer!r} is not in the answer list {list_path} "
            f"({len(bad)} training questions in all); add it to the list or drop those questions")

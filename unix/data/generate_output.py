"""The one reader of ``fairseq-generate`` output (its ``S-``/``T-``/``H-``/``D-``/``P-`` lines).

Every tool that scores or reranks saved generations reads them through :func:`read_generate_output`:
caption scoring (:func:`unix.data.captions.parse_generate_output`), MMT BLEU
(:func:`unix.metrics.bleu.read_generate_output`), VQA results and MBR reranking of n-best lists.
A sample's lines share its id: ``S-<id>\\t<source>``, ``T-<id>\\t<target>``, then per hypothesis
``H-<id>\\t<score>\\t<text>`` (tokenized), ``D-<id>\\t<score>\\t<text>`` (detokenized) and
``P-<id>\\t<positional scores>`` (base 2). Other lines (logs, the scorer's summary) are skipped.
A ``.gz`` file is read through gzip (outputs kept compressed, e.g. the ones behind a results table).
Kept outputs trimmed to their ``D-`` lines (no ``H-`` line anywhere in the file) are read too: each
``D-`` line is then a hypothesis whose tokenized and detokenized texts are both its text.
Outputs decoded in parts (``--distributed-world-size N --distributed-rank I``) are read once concatenated;
a sentence whose ``S-`` line comes twice is refused (a part concatenated twice).
"""

import gzip
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

LINE = re.compile(r"^([STHDP])-(\d+)\t(.*)$")


class GenerateOutputError(ValueError):
    """A malformed ``fairseq-generate`` output (the message names the file and line)."""


@dataclass
class Hypothesis:
    """One ``H-`` line and the ``D-``/``P-`` lines after it.

    Attributes:
        text: the tokenized text of the ``H-`` line.
        score: its score, as printed (length-normalised, base 2).
        line: its line number in the file (1-based).
        detok: the text of the ``D-`` line (``None`` without one).
        positional: the ``P-`` line's scores as printed (``None`` without one).
    """

    text: str
    score: str
    line: int
    detok: Optional[str] = None
    positional: Optional[str] = None


@dataclass
class GeneratedSample:
    """The lines of one sample id: its first ``S-`` and ``T-`` text and its hypotheses in file order."""

    source: Optional[str] = None
    target: Optional[str] = None
    hyps: List[Hypothesis] = field(default_factory=list)


def open_text(path: str):
    """Open a UTF-8 text file for reading; a ``.gz`` name is read through gzip."""
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _scored(path: str, n: int, kind: str, rest: str):
    score, sep, text = rest.partition("\t")
    if not sep:
        raise GenerateOutputError(f"{path}:{n}: expected '{kind}-<id>\\t<score>\\t<text>'")
    return score, text


def read_generate_output(path: str) -> Dict[int, GeneratedSample]:
    """Sample id -> :class:`GeneratedSample`, in order of first appearance.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        GenerateOutputError: naming file and line for a malformed ``H-``/``D-`` line, a ``D-`` or
            ``P-`` line without its hypothesis (or a second one for it), ``P-`` scores that are
            not numbers; or if the file has no hypothesis at all.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"fairseq-generate output not found: {path}")
    out: Dict[int, GeneratedSample] = {}
    mode = None  # "H" (fairseq-generate's own output) or "D" (kept D- lines only), set by the first of them
    first_s: Dict[int, int] = {}  # id -> line of its S- line
    with open_text(path) as f:
        for n, line in enumerate(f, start=1):
            m = LINE.match(line.rstrip("\n"))
            if not m:
                continue
            kind, sid, rest = m.group(1), int(m.group(2)), m.group(3)
            sample = out.setdefault(sid, GeneratedSample())
            if kind == "S":
                if sid in first_s:  # fairseq prints one S- line a sentence: two outputs concatenated?
                    raise GenerateOutputError(f"{path}:{n}: S-{sid} again (first at line {first_s[sid]}): the same "
                                              "sentence decoded twice (parts of one output concatenated twice?)")
                first_s[sid] = n
                sample.source = rest
            elif kind == "T":
                sample.target = rest if sample.target is None else sample.target
            elif kind == "H" or (kind == "D" and mode in (None, "D")):
                if mode not in (None, kind):
                    raise GenerateOutputError(f"{path}:{n}: H-{sid} line in a file of D- lines only")
                mode = kind
                score, text = _scored(path, n, kind, rest)
                sample.hyps.append(Hypothesis(text, score, n, detok=text if kind == "D" else None))
            else:
                hyp = sample.hyps[-1] if sample.hyps else None
                if hyp is None or (hyp.detok if kind == "D" else hyp.positional) is not None:
                    raise GenerateOutputError(f"{path}:{n}: {kind}-{sid} line without its H-{sid} line")
                if kind == "D":
                    hyp.detok = _scored(path, n, kind, rest)[1]
                else:
                    try:
                        [float(x) for x in rest.split()]
                    except ValueError:
                        raise GenerateOutputError(f"{path}:{n}: P-{sid} scores are not numbers") from None
                    hyp.positional = rest
    if not any(s.hyps for s in out.values()):
        raise GenerateOutputError(f"{path}: no hypothesis (H- or D- line) found; is it a fairseq-generate output?")
    return out

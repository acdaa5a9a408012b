"""METEOR 1.5 through pycocoevalcap's jar, one process kept open: per-caption statistics, sentence
and corpus scores.

pycocoevalcap starts a JVM (about 2 GB, ten seconds to load its paraphrase tables) per ``Meteor()``
and runs METEOR 1.5 with English resources only (``-l en -norm``). Corpus scores
(:func:`unix.metrics.caption.coco_scores`), rewards computed every update (:class:`SentenceMeteor`),
validation (``--eval-metric meteor``, :mod:`unix.metrics.evaluators`) and bootstrap intervals
(:func:`unix.metrics.bootstrap.bootstrap_meteor`) all go through :class:`MeteorStatistics`.

Translation into other languages (the Multi30K tables: ``-l de``, ``-l fr``) runs the jar once on two files
(:func:`meteor_15`), with the modules :func:`meteor_setup` says the language has here.
"""

import os
import re
import shutil
import subprocess
from typing import List, Optional, Sequence, Tuple

import numpy as np

from unix.metrics.references import check_references


def _start_meteor():
    """pycocoevalcap's ``Meteor`` (a JVM running METEOR 1.5 with English resources)."""
    if shutil.which("java") is None:
        raise RuntimeError("METEOR needs java on the PATH")
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()


class MeteorStatistics:
    """METEOR 1.5 sufficient statistics per caption, and the corpus METEOR of any multiset of captions.

    One pycocoevalcap METEOR process (``-l en -norm``, English only) is kept open. A caption's
    statistics are the jar's ``SCORE`` answer, a vector of counts (lengths, function words, matches
    per stage, chunks, matched words). The jar's corpus score (``EVAL``, what pycocoevalcap reports)
    adds these vectors up, except that a caption matched entirely in one chunk adds no chunk (it
    has no fragmentation); :meth:`summed` applies that rule, so the jar's score of the sum is the
    corpus METEOR, and :meth:`scores` scores many sums in one request (what makes a bootstrap
    cheap). :meth:`exact_corpus` asks the jar to aggregate the captions itself; :meth:`check_summed`
    compares the two (bootstrap and validation call it before they trust the sums).

    Example::

        meteor = MeteorStatistics()
        stats = meteor.statistics(ptb_tokenize(hyps), ptb_tokenize_groups(refs))  # (N, K)
        whole = meteor.corpus(stats)
        draws = bootstrap_meteor(meteor, stats, resamples=1000)
        meteor.close()
    """

    def __init__(self):
        self._meteor = _start_meteor()
        self._num_statistics: Optional[int] = None

    def num_statistics(self) -> int:
        """K, the length of a caption's statistics vector (asked of the jar once, with a one-word caption)."""
        if self._num_statistics is None:
            self._num_statistics = int(self.statistics(["a"], [["a"]]).shape[1])
        return self._num_statistics

    def _process(self):
        if self._meteor is None:
            raise RuntimeError(f"{type(self).__name__} was closed")
        return self._meteor

    def statistics(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
        """(N, K) float64 METEOR statistics of PTB-tokenized ``hyps`` (N,) against their references."""
        if len(hyps) != len(refs):
            raise ValueError(f"{len(hyps)} captions but {len(refs)} reference lists")
        if not hyps:
            raise ValueError("no captions to score")
        check_references(refs)
        meteor = self._process()
        with meteor.lock:  # pycocoevalcap's own per-caption SCORE request, as in its compute_score
            lines = [meteor._stat(h, list(r)) for h, r in zip(hyps, refs)]
        rows = [np.array(line.split(), dtype=np.float64) for line in lines]
        if len({len(r) for r in rows}) != 1:
            raise RuntimeError(f"METEOR returned statistics of different lengths: {sorted({len(r) for r in rows})}")
        return np.stack(rows)

    @staticmethod
    def summed(stats: np.ndarray, idx: Optional[np.ndarray] = None) -> np.ndarray:
        """Sum of caption statistics (N, K) -> (K,), or of the rows ``idx`` (R, N) -> (R, K), as the jar aggregates.

        Columns: 0 and 1 are the caption and reference lengths, the last three the chunks and the
        matched caption and reference words. A caption matched whole in one chunk adds 0 chunks.
        """
        stats = np.array(stats, dtype=np.float64)
        whole = (stats[:, -3] == 1) & (stats[:, -2] == stats[:, 0]) & (stats[:, -1] == stats[:, 1])
        stats[whole, -3] = 0.0
        return stats.sum(axis=0) if idx is None else stats[idx].sum(axis=-2)

    def _request(self, rows: np.ndarray) -> np.ndarray:
        """The jar's ``EVAL`` of the rows (M, K): (M + 1,) scores, one per row and then their aggregate."""
        rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        if rows.shape[0] == 0:
            raise ValueError("no METEOR statistics to score")
        meteor = self._process()
        proc = meteor.meteor_p
        request = "EVAL ||| " + " ||| ".join(" ".join(repr(float(v)) for v in row) for row in rows) + "\n"
        with meteor.lock:
            proc.stdin.write(request.encode())
            proc.stdin.flush()
            lines = [proc.stdout.readline().strip() for _ in range(len(rows) + 1)]
        try:
            return np.array([float(line) for line in lines], dtype=np.float64)
        except ValueError:
            raise RuntimeError(f"METEOR answered {lines[0][:80]!r} instead of scores") from None

    def scores(self, sums: np.ndarray) -> np.ndarray:
        """(M,) METEOR (0-1) of each row of ``sums`` (M, K), every row a :meth:`summed` set of statistics."""
        return self._request(sums)[:-1]

    def corpus(self, stats: np.ndarray) -> float:
        """Corpus METEOR (pycocoevalcap scale, 0-1) of the captions whose statistics are the rows of ``stats``."""
        stats = np.asarray(stats, dtype=np.float64)
        if stats.ndim != 2 or stats.shape[0] == 0:
            raise ValueError(f"expected (N, K) METEOR statistics with N >= 1, got shape {stats.shape}")
        return float(self.scores(self.summed(stats))[0])

    def exact_corpus(self, stats: np.ndarray) -> float:
        """The jar's own aggregate of the captions' statistics (N, K), without :meth:`summed`."""
        return float(self._request(stats)[-1])

    def check_summed(self, stats: np.ndarray) -> None:
        """Raise unless :meth:`corpus` (from :meth:`summed`) equals the jar's own aggregate of ``stats`` (N, K)."""
        summed, exact = self.corpus(stats), self.exact_corpus(stats)
        if abs(summed - exact) > 1e-9:
            raise RuntimeError(f"summed METEOR statistics score {summed} but the jar aggregates {exact}: "
                               "this METEOR build aggregates differently from MeteorStatistics.summed")

    def close(self) -> None:
        if self._meteor is not None:
            meteor, self._meteor = self._meteor, None
            del meteor

    def __del__(self):
        self.close()


class SentenceMeteor(MeteorStatistics):
    """METEOR 1.5 of every caption on its own (pycocoevalcap's per-caption scores).

    Example::

        meteor = SentenceMeteor()
        scores = meteor(ptb_tokenize(hyps), ptb_tokenize_groups(refs))  # (N,)
        meteor.close()
    """

    def __call__(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
        """(N,) METEOR of PTB-tokenized ``hyps`` against their references (lists of PTB-tokenized strings)."""
        if len(hyps) != len(refs):
            raise ValueError(f"{len(hyps)} captions but {len(refs)} reference lists")
        if not hyps:
            return np.zeros(0, dtype=np.float64)
        out = self.scores(self.statistics(hyps, refs))  # an empty caption scores 0
        if out.shape != (len(hyps),) or not np.all(np.isfinite(out)):
            raise RuntimeError(f"METEOR returned {out.shape[0]} scores for {len(hyps)} captions (or non-finite ones)")
        return out


def meteor_setup(lang: str) -> Tuple[Optional[List[str]], str]:
    """(extra options of ``meteor-1.5.jar -l lang -norm``, note for the table): ``None`` when METEOR 1.5 cannot
    run here (the note says why); ``["-m", "exact stem"]`` when the language's paraphrase table is missing (the
    jar holds its stemmer and function words, not the table); ``[]`` for full METEOR."""
    if shutil.which("java") is None:
        return None, "METEOR 1.5 needs java"
    try:
        import pycocoevalcap.meteor.meteor as m
    except ImportError:
        return None, "METEOR 1.5 comes with pycocoevalcap, not installed"
    table = os.path.join(os.path.dirname(m.__file__), "data", f"paraphrase-{lang}.gz")
    if not os.path.exists(table):
        return ["-m", "exact stem"], (
            f"METEOR 1.5 -l {lang} -norm with its exact and stem modules (the language's weights and parameters); "
            f"its paraphrase module needs paraphrase-{lang}.gz, which pycocoevalcap does not ship (only "
            f"paraphrase-en.gz), so paraphrase matches are not counted and the score is below full METEOR's")
    return [], ""


def meteor_15(hyps: List[str], refs: List[str], lang: str, workdir: str, options: Sequence[str] = ()) -> float:
    """Corpus METEOR 1.5 (x100) of tokenized lowercase hypotheses: ``java -jar meteor-1.5.jar -l lang -norm``
    (+ ``options``, e.g. the modules of :func:`meteor_setup`)."""
    import pycocoevalcap.meteor.meteor as m

    jar = os.path.join(os.path.dirname(m.__file__), "meteor-1.5.jar")
    hyp_path, ref_path = os.path.join(workdir, "meteor.hyp"), os.path.join(workdir, "meteor.ref")
    for path, lines in ((hyp_path, hyps), (ref_path, refs)):
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    out = subprocess.run(["java", "-Xmx2G", "-jar", jar, hyp_path, ref_path, "-l", lang, "-norm", *options],
                         capture_output=True, text=True, check=True).stdout
    return parse_meteor_output(out)


def parse_meteor_output(text: str) -> float:
    m = re.search(r"^Final score:\s+([0-9.]+)", text, re.M)
    if not m:
        raise RuntimeError(f"METEOR printed no 'Final score:' line: {text[-300:]!r}")
    return round(100.0 * float(m.group(1)), 2)

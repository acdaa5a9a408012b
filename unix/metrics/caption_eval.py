"""Validation statistics of generated captions: additive per batch, scores from their sums.

A validation batch's captions are scored against all references of their photo; what a batch
returns is a dict of statistics that add up over batches and over distributed workers (sums of
per-photo CIDEr-D, corpus-BLEU n-gram counts, METEOR sufficient statistics), and the corpus
scores are derived from the summed dict (:func:`cider_score`, :func:`bleu4_score`,
:func:`meteor_score`), so they equal the scores of the whole split computed at once.

Keys: ``_cider_sum`` / ``_cider_n`` (sum of per-photo CIDEr-D, photos), ``_bleu_<stat>``
(:data:`BLEU_STATS`), ``_meteor_<j>`` / ``_meteor_n`` (summed METEOR statistics of the English
photos, their number).

Scoring a saved ``fairseq-generate`` output (``unix-score-captions``, ``unix-mbr-captions``,
``unix-gallery``): :func:`hypothesis` is a sample's caption, :func:`read_references` reads a
``<split>.refs.txt`` file, :func:`pair_up` matches hypotheses with their references by sample id.
"""

import logging
import os
from typing import Dict, Hashable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from unix.data.captions import CaptionDataError, group_references, join_pieces
from unix.metrics.caption import (CorpusCiderD, MissingReferenceError, bleu_statistic_names, bleu_statistics,
                                  corpus_bleu, ptb_tokenize_groups)
from unix.metrics.meteor import MeteorStatistics
from unix.metrics.references import split_references

logger = logging.getLogger(__name__)

# the corpus-BLEU statistics that validation sums over batches (bleu_statistics, n=4)
BLEU_STATS = bleu_statistic_names(4)
CIDER_KEYS = ("_cider_sum", "_cider_n")
BLEU_KEYS = tuple(f"_bleu_{name}" for name in BLEU_STATS)
METEOR_KEY = "_meteor_"  # keys of the summed METEOR statistics: _meteor_n (photos), _meteor_0, ...


def corpus_cider(split: str, refs: Sequence[Sequence[str]],
                 keys: Sequence[Hashable]) -> Tuple[CorpusCiderD, List[List[str]]]:
    """CIDEr-D with the document frequencies of all references of a split.

    The references of a sample are those of every sample with the same key (photo and
    language tag): the sample's own on an evaluation split (all references in one target),
    all the photo's captions in that language on a training split (one caption per sample).

    Args:
        split: the split's name, for messages.
        refs: (N,) the detokenized references of every sample.
        keys: (N,) the key of every sample, e.g. ``(photo path, language tag id)``.

    Returns:
        the scorer and the PTB-tokenized references of every sample (N lists).

    Raises:
        ValueError: naming the first sample without a reference.
    """
    empty = [i for i, r in enumerate(refs) if not r]
    if empty:
        raise ValueError(f"{split}: sample {empty[0]} (line {empty[0] + 1}) has no reference")
    group_of, groups = group_references(keys, refs)
    tok = ptb_tokenize_groups(groups)
    cider = CorpusCiderD(tok)
    logger.info("%s: CIDEr-D document frequencies from %d photo-language pairs, %.2f references each",
                split, len(tok), sum(map(len, tok)) / max(len(tok), 1))
    return cider, [tok[g] for g in group_of]


def cider_bleu_statistics(cider: CorpusCiderD, hyps_tok: Sequence[str],
                          refs_tok: Sequence[Sequence[str]]) -> Dict[str, float]:
    """``_cider_sum``, ``_cider_n`` and ``_bleu_<stat>`` of a batch of PTB-tokenized captions and references."""
    scores = cider.image_scores(hyps_tok, refs_tok)
    out = {"_cider_sum": float(scores.sum()), "_cider_n": len(hyps_tok)}
    bleu = bleu_statistics(hyps_tok, refs_tok).sum(axis=0)  # (10,), zeros for an empty batch
    out.update({key: float(v) for key, v in zip(BLEU_KEYS, bleu)})
    return out


def meteor_statistics(meteor: MeteorStatistics, hyps_tok: Sequence[str], refs_tok: Sequence[Sequence[str]],
                      langs: Sequence[str]) -> Dict[str, float]:
    """Summed METEOR statistics of the English captions of a batch (zeros, ``n`` 0, when it has none).

    Args:
        meteor: the open METEOR process.
        hyps_tok: (B,) PTB-tokenized captions; refs_tok: (B,) their PTB-tokenized references.
        langs: (B,) the language code of every caption (METEOR 1.5 is English only).
    """
    english = [k for k, lang in enumerate(langs) if lang == "en"]
    if not english:  # the same keys as an English batch: distributed workers sum them key by key
        out = {f"{METEOR_KEY}{j}": 0.0 for j in range(meteor.num_statistics())}
        out[f"{METEOR_KEY}n"] = 0
        return out
    stats = meteor.statistics([hyps_tok[k] for k in english], [refs_tok[k] for k in english])
    meteor.check_summed(stats)  # one more request per batch: the sums are what the jar would aggregate
    summed = meteor.summed(stats)
    out = {f"{METEOR_KEY}{j}": float(v) for j, v in enumerate(summed)}
    out[f"{METEOR_KEY}n"] = len(english)
    return out


def meteor_keys(logs: Sequence[Mapping[str, float]]) -> List[str]:
    """The ``_meteor_<j>`` keys present in any of ``logs``, by ``j``."""
    columns = sorted({int(k[len(METEOR_KEY):]) for log in logs for k in log
                      if k.startswith(METEOR_KEY) and k[len(METEOR_KEY):].isdigit()})
    return [f"{METEOR_KEY}{j}" for j in columns]


def cider_score(summed: Mapping[str, float]) -> float:
    """Corpus CIDEr-D x100 (2 decimals) from summed ``_cider_sum`` / ``_cider_n``."""
    return round(100.0 * summed["_cider_sum"] / max(summed["_cider_n"], 1), 2)


def bleu4_score(summed: Mapping[str, float]) -> float:
    """Corpus BLEU-4 x100 (2 decimals) from the summed ``_bleu_<stat>``."""
    stats = np.array([summed[key] for key in BLEU_KEYS], dtype=np.float64)
    return round(100.0 * corpus_bleu(stats, n=4)[3], 2)


def meteor_score(meteor: MeteorStatistics, summed: Mapping[str, float], keys: Sequence[str]) -> float:
    """Corpus METEOR x100 (2 decimals) from the summed statistics ``keys`` (:func:`meteor_keys`)."""
    stats = np.array([summed[key] for key in keys], dtype=np.float64)
    return round(100.0 * float(meteor.scores(stats)[0]), 2)


def read_references(path: str) -> List[List[str]]:
    """One ``<sep>``-joined reference set a line; an empty line is an error naming file and line."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"references not found: {path}")
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            refs = split_references(line.rstrip("\n"))
            if not refs:
                raise MissingReferenceError(f"{path}:{i}: no reference for sample {i - 1}")
            out.append(refs)
    return out


def hypothesis(entry: Dict[str, str]) -> Optional[str]:
    """The caption of one sample of a generate output (its ``D-`` line, else ``H-``), or None."""
    text = entry.get("D", entry.get("H"))
    return None if text is None else join_pieces(text)


def pair_up(gen: Dict[int, Dict[str, str]], gen_path: str, refs_path: Optional[str],
            allow_partial: bool = False) -> Tuple[List[int], List[str], List[List[str]]]:
    """Match hypotheses with their references by sample id; returns (ids, hyps, refs)."""
    ids = sorted(i for i, v in gen.items() if hypothesis(v) is not None)
    hyps = [hypothesis(gen[i]) for i in ids]
    if refs_path:
        all_refs = read_references(refs_path)
        beyond = [i for i in ids if i >= len(all_refs)]
        if beyond:
            raise CaptionDataError(f"{gen_path}: sample id {beyond[0]} has no line in {refs_path} "
                                   f"({len(all_refs)} lines): references of another split?")
        missing = sorted(set(range(len(all_refs))) - set(ids))
        if missing and not allow_partial:
            raise CaptionDataError(f"{refs_path}:{missing[0] + 1}: no hypothesis for sample {missing[0]} in "
                                   f"{gen_path} ({len(missing)} missing); pass --allow-partial to score the rest")
        refs = [all_refs[i] for i in ids]
    else:
        refs = []
        for i in ids:
            r = split_references(join_pieces(gen[i].get("T", "")))
            if not r:
                raise MissingReferenceError(f"{gen_path}: sample {i} has no T- line (no reference); "
                                            "pass --references")
            refs.append(r)
    return ids, hyps, refs

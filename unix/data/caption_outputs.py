"""Saved captions and their references: what the caption tools score.

``unix-score-captions``, ``unix-mbr-captions``, ``unix-gallery`` and ``unix-results caption`` read a
``fairseq-generate`` output and a ``<split>.refs.txt`` file (one ``<sep>``-joined reference set a
line): :func:`hypothesis` is a sample's caption, :func:`read_references` reads the references,
:func:`pair_up` matches hypotheses with their references by sample id.
"""

import os
from typing import Dict, List, Optional, Tuple

from unix.data.captions import CaptionDataError, join_pieces
from unix.metrics.caption import MissingReferenceError
from unix.metrics.references import split_references


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

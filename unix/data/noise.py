"""Text corruption for denoising pre-training (BART-style), on one token sequence.

Two noise functions, each taking a 1-D tensor of token ids and a seeded ``torch.Generator``:

* :func:`span_mask` -- *text infilling*: spans with Poisson(``lambda``) lengths cover
  ``ceil(ratio * n)`` of the ``n`` maskable units; each span becomes one ``<mask>``
  (``replace_length=1``, BART), one ``<mask>`` per token (``-1``) or nothing (``0``). With
  ``replace_length=1`` a zero-length span inserts a ``<mask>``, as in BART.
* :func:`delete_tokens` -- *token deletion*: exactly ``ceil(ratio * n)`` units are removed.

A *unit* is a token, or a whole word when ``word_starts`` is given (sentencepiece pieces that
start with ``\u2581``; see :func:`word_starts_from_pieces`). Protected ids (language tag, bos,
eos, padding) are never touched and spans never cross them. The denoising target is the
original sequence.

Example::

    g = torch.Generator().manual_seed(seed)
    noisy = span_mask(tokens, mask_idx, ratio=0.3, protected=[eos, lang_id], generator=g)
"""

from __future__ import annotations

import logging
import math
from typing import Iterable, List, Optional, Sequence, Tuple

import torch

logger = logging.getLogger(__name__)

WORD_START = "\u2581"  # sentencepiece's word-boundary marker


def word_starts_from_pieces(pieces: Sequence[str]) -> torch.Tensor:
    """(T,) bool, True at pieces that start a word (``\u2581...`` or a ``__lang__``/``<ctrl>`` symbol)."""
    def starts(p: str) -> bool:
        return p.startswith(WORD_START) or (p.startswith("__") and p.endswith("__")) or \
            (p.startswith("<") and p.endswith(">"))
    return torch.tensor([starts(p) for p in pieces], dtype=torch.bool)


def _num_units(ratio: float, n: int) -> int:
    """``ceil(ratio * n)``, robust to float error (0.3 * 10 must give 3, not 4)."""
    return math.ceil(ratio * n - 1e-9)


def _units(tokens: torch.Tensor, protected: Iterable[int],
           word_starts: Optional[torch.Tensor]) -> Tuple[List[Tuple[int, int]], List[bool]]:
    """Split (T,) tokens into units ``[start, end)`` and whether each is maskable."""
    if tokens.dim() != 1:
        raise ValueError(f"expected a 1-D token sequence, got shape {tuple(tokens.shape)}")
    T = tokens.shape[0]
    prot = torch.isin(tokens, torch.tensor(sorted(set(protected)), dtype=tokens.dtype)).tolist() \
        if protected else [False] * T
    if word_starts is not None and word_starts.shape != tokens.shape:
        raise ValueError("word_starts must have the shape of tokens")
    ws = word_starts.tolist() if word_starts is not None else [True] * T
    units: List[Tuple[int, int]] = []
    maskable: List[bool] = []
    for t in range(T):
        new = t == 0 or ws[t] or prot[t] or prot[t - 1]
        if new:
            units.append((t, t + 1))
            maskable.append(not prot[t])
        else:
            units[-1] = (units[-1][0], t + 1)
    return units, maskable


def sample_spans(maskable: Sequence[bool], ratio: float, poisson_lambda: Optional[float],
                 generator: Optional[torch.Generator] = None,
                 allow_insertions: bool = True) -> Tuple[List[Tuple[int, int]], List[int]]:
    """Choose non-overlapping spans over units covering ``ceil(ratio * n_maskable)`` units.

    Repeatedly: draw a length ``L ~ Poisson(lambda)`` (1 when ``poisson_lambda`` is None), cut to
    the remaining budget; ``L = 0`` records an insertion point (if allowed); otherwise start at a
    uniformly chosen unmasked maskable unit and extend right while units are maskable, unmasked
    and budget remains. Each non-empty draw masks at least one unit, so the budget is met exactly.

    Args:
        maskable: (U,) whether each unit may be masked.
        ratio: fraction of maskable units to cover, in [0, 1].

    Returns:
        ``(spans, insertions)``: spans ``[start, end)`` in unit indices, sorted; insertion points
        (a ``<mask>`` goes before unit ``k``), sorted, at most ``ceil(ratio * n_maskable)``.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    if poisson_lambda is not None and poisson_lambda <= 0:
        raise ValueError(f"poisson_lambda must be > 0 (or None), got {poisson_lambda}")
    candidates = [u for u, m in enumerate(maskable) if m]
    budget = _num_units(ratio, len(candidates))
    max_insertions = budget
    masked = [False] * len(maskable)
    spans: List[Tuple[int, int]] = []
    insertions: List[int] = []
    lam = None if poisson_lambda is None else torch.tensor([float(poisson_lambda)])
    while budget > 0:
        L = 1 if lam is None else int(torch.poisson(lam, generator=generator).item())
        free = [u for u in candidates if not masked[u]]
        start = free[int(torch.randint(len(free), (1,), generator=generator).item())]
        if L == 0:  # an insertion, else redrawn (a zero-truncated Poisson)
            if allow_insertions and len(insertions) < max_insertions:
                insertions.append(start)
            continue
        end = start
        while end < len(maskable) and maskable[end] and not masked[end] and end - start < min(L, budget):
            masked[end] = True
            end += 1
        spans.append((start, end))
        budget -= end - start
    return sorted(spans), sorted(insertions)


def span_mask(tokens: torch.Tensor, mask_idx: int, ratio: float = 0.3,
              poisson_lambda: Optional[float] = 3.0, replace_length: int = 1,
              protected: Iterable[int] = (), word_starts: Optional[torch.Tensor] = None,
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Text infilling: replace random spans of units by ``<mask>``.

    Args:
        tokens: (T,) token ids of one sentence.
        mask_idx: id of ``<mask>``.
        ratio: fraction of maskable units to mask (BART: 0.3).
        poisson_lambda: mean span length in units (BART: 3); None = spans of one unit.
        replace_length: 1 = one ``<mask>`` per span, -1 = one per token, 0 = delete the span.
        protected: ids never masked (language tags, bos, eos, pad).
        word_starts: (T,) bool; when given, units are whole words.
        generator: seeded generator for reproducible noise.

    Returns:
        (T',) the corrupted sequence (same dtype and device).
    """
    if replace_length not in (-1, 0, 1):
        raise ValueError(f"replace_length must be -1, 0 or 1, got {replace_length}")
    units, maskable = _units(tokens.cpu(), protected, None if word_starts is None else word_starts.cpu())
    spans, insertions = sample_spans(maskable, ratio, poisson_lambda, generator,
                                     allow_insertions=replace_length == 1)
    span_at = {s: e for s, e in spans}
    ins = {}
    for k in insertions:
        ins[k] = ins.get(k, 0) + 1
    ids = tokens.tolist()
    out: List[int] = []
    u = 0
    while u < len(units):
        out.extend([mask_idx] * ins.get(u, 0))
        if u in span_at:
            end = span_at[u]
            if replace_length == 1:
                out.append(mask_idx)
            elif replace_length == -1:
                out.extend([mask_idx] * (units[end - 1][1] - units[u][0]))
            u = end
            continue
        out.extend(ids[units[u][0]:units[u][1]])
        u += 1
    return torch.tensor(out, dtype=tokens.dtype, device=tokens.device)


def delete_tokens(tokens: torch.Tensor, ratio: float = 0.1, protected: Iterable[int] = (),
                  word_starts: Optional[torch.Tensor] = None,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Token deletion: remove ``ceil(ratio * n)`` of the ``n`` maskable units, chosen uniformly.

    Args:
        tokens: (T,) token ids of one sentence.
        ratio: fraction of maskable units to delete, in [0, 1].
        protected: ids never deleted.
        word_starts: (T,) bool; when given, whole words are deleted.
        generator: seeded generator.

    Returns:
        (T',) the remaining tokens, in order.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    units, maskable = _units(tokens.cpu(), protected, None if word_starts is None else word_starts.cpu())
    candidates = [u for u, m in enumerate(maskable) if m]
    n = _num_units(ratio, len(candidates))
    order = torch.randperm(len(candidates), generator=generator).tolist()
    drop = {candidates[i] for i in order[:n]}
    keep = torch.ones(tokens.shape[0], dtype=torch.bool)
    for u in drop:
        keep[units[u][0]:units[u][1]] = False
    return tokens[keep.to(tokens.device)]

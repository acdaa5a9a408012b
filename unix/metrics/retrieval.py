"""Retrieval metrics: recall@K of image<->text and sentence<->sentence retrieval.

A query is answered correctly at ``K`` when one of its positives is among the ``K`` gallery items
of highest similarity. Ties are broken by gallery order (``torch.sort(stable=True)``), so a
positive tied with a negative that comes first in the gallery is ranked after it.

Example::

    sim = img_emb @ txt_emb.T                                      # (I, T)
    r = image_text_recall(sim, text_to_image=torch.tensor([0, 0, 1]))
    r["i2t_r1"], r["t2i_r5"]                                       # percentages
"""

from __future__ import annotations

import logging
from typing import Dict, List, Sequence

import torch

logger = logging.getLogger(__name__)

DEFAULT_KS = (1, 5, 10)


def first_positive_rank(sim: torch.Tensor, positives: Sequence[Sequence[int]]) -> torch.Tensor:
    """0-based rank of the best-ranked positive of every query.

    Args:
        sim: (Q, G) similarities of Q queries to G gallery items.
        positives: Q lists of gallery indices that are correct for each query (non-empty).

    Returns:
        (Q,) long ranks (0 = the top item is a positive).
    """
    if sim.dim() != 2 or sim.shape[0] != len(positives):
        raise ValueError(f"expected (Q, G) similarities for {len(positives)} queries, got {tuple(sim.shape)}")
    order = torch.sort(sim.float(), dim=1, descending=True, stable=True).indices  # (Q, G)
    ranks = torch.empty(sim.shape[0], dtype=torch.long)
    for q, pos in enumerate(positives):
        if len(pos) == 0:
            raise ValueError(f"query {q} has no positive")
        hit = torch.isin(order[q], torch.as_tensor(list(pos), dtype=order.dtype))  # (G,)
        ranks[q] = int(hit.nonzero()[0])
    return ranks


def recall_at_k(sim: torch.Tensor, positives: Sequence[Sequence[int]], ks: Sequence[int] = DEFAULT_KS,
                prefix: str = "r") -> Dict[str, float]:
    """Recall@K in percent: ``{f"{prefix}{k}": 100 * mean(rank < k)}``."""
    ranks = first_positive_rank(sim, positives)
    return {f"{prefix}{k}": 100.0 * float((ranks < k).float().mean()) for k in ks}


def image_text_recall(sim: torch.Tensor, text_to_image: torch.Tensor,
                      ks: Sequence[int] = DEFAULT_KS) -> Dict[str, float]:
    """Image->text and text->image recall@K.

    Args:
        sim: (I, T) similarities of I images and T texts.
        text_to_image: (T,) index of the image each text describes (an image may have several).

    Returns:
        ``i2t_r{k}`` (an image query is right if any of its texts is in the top K) and
        ``t2i_r{k}`` (a text query is right if its image is in the top K), in percent.
    """
    text_to_image = torch.as_tensor(text_to_image, dtype=torch.long)
    if sim.shape[1] != len(text_to_image):
        raise ValueError(f"{sim.shape[1]} texts in the similarities, {len(text_to_image)} in text_to_image")
    texts_of: List[List[int]] = [[] for _ in range(sim.shape[0])]
    for t, i in enumerate(text_to_image.tolist()):
        texts_of[i].append(t)
    keep = [i for i, ts in enumerate(texts_of) if ts]  # images without a text are not queries
    out = recall_at_k(sim[keep], [texts_of[i] for i in keep], ks, "i2t_r")
    out.update(recall_at_k(sim.t(), [[i] for i in text_to_image.tolist()], ks, "t2i_r"))
    return out


def parallel_recall(sim: torch.Tensor, ks: Sequence[int] = DEFAULT_KS, names=("a2b", "b2a")) -> Dict[str, float]:
    """Sentence retrieval between aligned lists (sentence ``i`` of a translates sentence ``i`` of b).

    Args:
        sim: (N, N) similarities of the N sentences of a to the N of b.

    Returns:
        ``{names[0]}_r{k}`` (a -> b) and ``{names[1]}_r{k}`` (b -> a), in percent.
    """
    if sim.dim() != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"expected square (N, N) similarities, got {tuple(sim.shape)}")
    pos = [[i] for i in range(sim.shape[0])]
    out = recall_at_k(sim, pos, ks, f"{names[0]}_r")
    out.update(recall_at_k(sim.t(), pos, ks, f"{names[1]}_r"))
    return out

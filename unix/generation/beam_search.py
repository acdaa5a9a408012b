"""Batched beam search for :class:`unix.models.UnixModel`, without fairseq.

It returns the hypotheses and scores that ``fairseq-generate`` returns for the same checkpoint
and options under a unix task: it follows fairseq's ``SequenceGenerator._generate`` (ve-fairseq
0.12.3) step by step with the changes the unix tasks make to it:

* the decoder starts from ``bos`` (default ``eos``); at most ``min(a * S + b, max_positions - 1)``
  tokens before ``eos`` (``S`` the padded source width, language tag and ``eos`` included), at
  least ``min_len``; the log-probabilities are ``log_softmax`` of the logits in fp32, ``pad``
  never chosen, ``unk_penalty`` subtracted from ``unk``;
* every step takes the ``2 * beam`` best continuations of each sentence (``topk`` over its
  ``beam x V`` cumulative scores), finishes those among the first ``beam`` that end in ``eos``
  (score = cumulative log-probability / length ** ``lenpen``, the length counting ``eos``) and
  continues with the first ``beam`` that do not; a finished sentence leaves the batch;
* ``stop="fairseq"``: a sentence ends with its first ``beam`` finished hypotheses (fairseq's
  rule); ``stop="best"``: it keeps the ``beam`` best and ends once the best of them is at least
  the best live cumulative score normalised at the current length
  (:mod:`fairseq_plugins.generation.best_stop`, the default of ``unix_vqa``);
* ``no_repeat_ngram_size``: the blocker that works (:mod:`fairseq_plugins.generation.ngram_block`),
  vectorised here;
* ``answer_trie``: closed-set decoding (:mod:`fairseq_plugins.generation.trie_generator`): the
  step's log-probabilities are masked to the trie before anything else, and the length limit is
  the longest answer.

The image and the source are encoded once, and the encoder output stays one row per sentence:
the decoder's cross-attention lets the beams of a sentence share its keys/values
(:class:`unix.modules.attention.MultiheadAttention`), computed at the first step, which runs once
per sentence (its beams are identical; fairseq reads only the first one's log-probabilities).
The self-attention cache is then repeated for the beams and reordered every step; the encoder
output and its keys/values only change when sentences leave the batch.

Example::

    src, lengths = collate_sources([[tag, 17, 42, eos], [tag, 9, eos]], pad=1)
    hypos = beam_search(model, src, lengths, eos=2, pad=1, unk=3, beam=5, max_len_b=50)
    hypos[0][0].tokens, hypos[0][0].score
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from unix.generation.answer_trie import constrain_log_probs

if TYPE_CHECKING:
    from unix.generation.answer_trie import AnswerTrie

STOP_RULES = ("fairseq", "best")


def resolve_beam_stop(beam_stop: Optional[str], default: str, best_beam_stop: bool = False,
                      fairseq_beam_stop: bool = False) -> str:
    """The stopping rule of a task's settings: ``beam_stop`` (``None``: the task's ``default``), unless
    a deprecated flag of older versions names one (``best_beam_stop`` -> ``"best"``,
    ``fairseq_beam_stop`` -> ``"fairseq"``).

    Raises:
        ValueError: for a rule not in :data:`STOP_RULES`, or both deprecated flags set.
    """
    if best_beam_stop and fairseq_beam_stop:
        raise ValueError("--best-beam-stop and --fairseq-beam-stop contradict each other: use --beam-stop")
    stop = "best" if best_beam_stop else "fairseq" if fairseq_beam_stop else (beam_stop or default)
    if stop not in STOP_RULES:
        raise ValueError(f"beam stop {stop!r}: choose from {', '.join(STOP_RULES)}")
    return stop
STATIC_CACHE_KEY = "cross"  # sub-dict of a decoder layer's cache holding the encoder keys/values


@dataclass
class Hypothesis:
    tokens: torch.Tensor             # (L,) ids, ending with eos, as fairseq's hypo["tokens"]
    score: float                     # fairseq's hypo["score"]: sum(positional_scores) / L**lenpen, natural log
    positional_scores: torch.Tensor  # (L,) natural-log prob of each token


def collate_sources(sources: List[List[int]], pad: int, left_pad: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """token-id lists (each already ending with eos, with the language tag first where the task puts one)
    -> (src_tokens (B, S) padded as fairseq's collater pads them, src_lengths (B,))"""
    if not sources:
        raise ValueError("collate_sources: no source sentence")
    for i, s in enumerate(sources):
        if len(s) == 0:
            raise ValueError(f"collate_sources: source {i} is empty (it needs at least eos)")
    width = max(len(s) for s in sources)
    src = torch.full((len(sources), width), pad, dtype=torch.long)
    for i, s in enumerate(sources):
        row = torch.as_tensor(s, dtype=torch.long)
        if left_pad:
            src[i, width - len(s):] = row
        else:
            src[i, :len(s)] = row
    return src, torch.tensor([len(s) for s in sources], dtype=torch.long)


def vocab_size(model) -> int:
    """Rows of the model's output layer (V)."""
    proj = model.decoder.output_projection
    return proj.out_features if proj is not None else model.decoder.embed_tokens.num_embeddings


def reorder_decoder_cache(cache: Dict[str, Any], order: torch.Tensor, static_order: Optional[torch.Tensor] = None,
                          static: bool = False) -> None:
    """Select rows of the cached tensors, in place: the self-attention ones by ``order``, the encoder
    keys/values (one row per sentence) by ``static_order`` (left alone without it)."""
    for key, value in cache.items():
        if torch.is_tensor(value):
            if not static:
                cache[key] = value.index_select(0, order)
            elif static_order is not None:
                cache[key] = value.index_select(0, static_order)
        elif isinstance(value, dict):
            reorder_decoder_cache(value, order, static_order, static or key == STATIC_CACHE_KEY)


def block_repeated_ngrams(tokens: torch.Tensor, lprobs: torch.Tensor, step: int, n: int) -> torch.Tensor:
    """Set to ``-inf``, in place, every next token that would repeat an n-gram of its hypothesis.

    The rule of :class:`fairseq_plugins.generation.ngram_block.UnixNGramRepeatBlock`: the prefix
    is ``tokens[:, :step + 1]`` (the start symbol counts, except for unigrams).

    Args:
        tokens: (N, >= step + 1) token buffer, column 0 the start symbol.
        lprobs: (N, V) next-token log-probabilities.
        step: index of the last generated column.
        n: n-gram size (>= 1).

    Returns:
        ``lprobs``.
    """
    if n == 1:
        if step >= 1:
            lprobs.scatter_(1, tokens[:, 1:step + 1], -math.inf)
        return lprobs
    prefix = tokens[:, :step + 1]
    windows = step + 1 - n + 1
    if windows <= 0:
        return lprobs
    grams = prefix.unfold(1, n, 1)                                  # (N, W, n)
    context = prefix[:, step + 1 - (n - 1):]                        # (N, n-1)
    match = (grams[:, :, :n - 1] == context[:, None, :]).all(-1)    # (N, W)
    rows, cols = match.nonzero(as_tuple=True)
    if rows.numel():
        lprobs[rows, grams[rows, cols, n - 1]] = -math.inf
    return lprobs


class _Finished:
    """The finished hypotheses of every sentence and the stopping rule (fairseq's ``finalize_hypos``)."""

    def __init__(self, bsz: int, beam: int, eos: int, lenpen: float, stop: str):
        self.hypos: List[List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in range(bsz)]
        self.beam, self.eos, self.lenpen, self.stop = beam, eos, lenpen, stop

    def add(self, step: int, bbsz_idx: torch.Tensor, eos_scores: torch.Tensor, tokens: torch.Tensor,
            scores: torch.Tensor, sentence_of_row: List[int], max_len: int) -> List[int]:
        """Finish the hypotheses ``bbsz_idx`` that end in eos at ``step``; return the rows (current batch
        indices) of the sentences that are done.

        Args:
            bbsz_idx: (K,) rows of the token buffer that end here, grouped by sentence.
            eos_scores: (K,) their cumulative scores with eos.
            tokens: (bsz*beam, max_len + 2) token buffer (column 0 the start symbol).
            scores: (bsz*beam, max_len + 1) cumulative scores before this step.
            sentence_of_row: current batch row -> original sentence index.
        """
        beam = self.beam
        toks = tokens.index_select(0, bbsz_idx)[:, 1:step + 2]
        toks[:, step] = self.eos
        pos = scores.index_select(0, bbsz_idx)[:, :step + 1]
        pos[:, step] = eos_scores
        pos[:, 1:] = pos[:, 1:] - pos[:, :-1]
        normed = eos_scores / (step + 1) ** self.lenpen
        rows = torch.div(bbsz_idx, beam, rounding_mode="trunc").tolist()
        fresh: Dict[int, list] = {}
        for i, row in enumerate(rows):
            fresh.setdefault(row, []).append((toks[i], normed[i], pos[i]))
        if self.stop == "fairseq":
            done = []
            for row in sorted(fresh):
                sent = sentence_of_row[row]
                room = beam - len(self.hypos[sent])
                self.hypos[sent].extend(fresh[row][:room])
                if len(self.hypos[sent]) == beam or step == max_len:
                    done.append(row)
            return done
        # "best": keep the beam best; done when the best beats every live beam (checked for every
        # sentence, whenever some sentence of the batch finished a hypothesis, as the fairseq plugin)
        if step == 0:
            live = torch.zeros(len(sentence_of_row))
        else:
            live = scores[:, step - 1].view(len(sentence_of_row), beam).max(dim=1).values.float().cpu()
        live = (live / (step + 1) ** self.lenpen).tolist()
        done = []
        for row, sent in enumerate(sentence_of_row):
            if row in fresh:
                merged = self.hypos[sent] + fresh[row]
                self.hypos[sent] = sorted(merged, key=lambda h: -float(h[1]))[:beam]
            kept = self.hypos[sent]
            if step == max_len or (len(kept) >= beam and float(kept[0][1]) >= live[row]):
                done.append(row)
        return done

    def results(self, nbest: int) -> List[List[Hypothesis]]:
        """Every sentence's hypotheses sorted by score (fairseq's final ``torch.sort``), first ``nbest``."""
        out = []
        for hypos in self.hypos:
            order = torch.sort(torch.tensor([float(h[1]) for h in hypos]), descending=True)[1].tolist()
            out.append([Hypothesis(hypos[i][0], float(hypos[i][1]), hypos[i][2]) for i in order[:nbest]])
        return out


@torch.no_grad()
def beam_search(model, src_tokens, src_lengths, *, eos: int, pad: int, unk: Optional[int] = None, bos: Optional[int] = None,
                images=None, image_features=None, image_mask=None,
                beam: int = 5, nbest: int = 1, max_len_a: float = 0.0, max_len_b: int = 200, min_len: int = 1,
                lenpen: float = 1.0, unk_penalty: float = 0.0, no_repeat_ngram_size: int = 0,
                answer_trie: Optional["AnswerTrie"] = None, stop: str = "fairseq") -> List[List[Hypothesis]]:
    """one list of nbest hypotheses (best first) per input row

    Args:
        model: a :class:`unix.models.UnixModel` (put in eval mode while searching).
        src_tokens: (B, S) sources as :func:`collate_sources` pads them.
        src_lengths: (B,) their lengths (checked only; fairseq's beam search does not use them).
        eos, pad, unk, bos: special ids of the dictionary (``bos`` defaults to ``eos``, the start
            symbol of fairseq's decoder; without ``unk`` there is no unk penalty).
        images: (B, 3, H, W) pixels, or image_features (B, N, C); image_mask (B,) bool.
        beam: hypotheses per sentence (at most V - 1); nbest: how many to return (<= beam).
        max_len_a, max_len_b: at most ``int(a * S + b)`` tokens before eos (and ``max_positions - 1``);
            replaced by the longest answer with ``answer_trie``.
        min_len: eos is forbidden before this many tokens.
        lenpen: length penalty (score = log-prob / length ** lenpen).
        unk_penalty: subtracted from the log-probability of ``unk``.
        no_repeat_ngram_size: forbid repeating n-grams of this size (0 = off).
        answer_trie: closed-set decoding over these answers.
        stop: "fairseq" or "best" (see the module docstring).

    Returns:
        B lists of at most ``nbest`` hypotheses, best first (empty only where no hypothesis could end,
        e.g. every beam pruned by the answer trie).

    Raises:
        ValueError: bad shapes or options.
    """
    if stop not in STOP_RULES:
        raise ValueError(f"stop={stop!r}: choose from {', '.join(STOP_RULES)}")
    if src_tokens.dim() != 2 or src_lengths.shape != src_tokens.shape[:1]:
        raise ValueError(f"expected src_tokens (B, S) and src_lengths (B,), got {tuple(src_tokens.shape)} and "
                         f"{tuple(src_lengths.shape)}")
    if unk is None and unk_penalty != 0:
        raise ValueError("unk_penalty needs the unk id")
    V = vocab_size(model)
    beam = min(beam, V - 1)
    if not 1 <= nbest <= beam:
        raise ValueError(f"nbest={nbest} must be between 1 and the beam size {beam}")
    if answer_trie is not None:
        if answer_trie.eos != eos or len(answer_trie) == 0:
            raise ValueError(f"the answer trie must be non-empty and end answers with eos={eos}")
        if no_repeat_ngram_size > 0 or min_len > 1:
            raise ValueError("no_repeat_ngram_size and min_len > 1 cannot be combined with an answer trie")
        max_len_a, max_len_b = 0, answer_trie.max_len
    device = src_tokens.device
    bsz, src_len = src_tokens.shape
    max_len = min(int(max_len_a * src_len + max_len_b), model.decoder.cfg.max_positions - 1)
    if answer_trie is not None and max_len < answer_trie.max_len:
        raise ValueError(f"the longest answer has {answer_trie.max_len} tokens; the model generates at most {max_len}")
    if min_len > max_len:
        raise ValueError(f"min_len {min_len} > max_len {max_len}")
    was_training = model.training
    model.eval()
    try:
        return _search(model, src_tokens, dict(images=images, image_features=image_features, image_mask=image_mask),
                       V, bsz, beam, nbest, max_len, min_len, eos, pad, unk, eos if bos is None else bos, lenpen,
                       unk_penalty, no_repeat_ngram_size, answer_trie, stop, device)
    finally:
        model.train(was_training)


def _search(model, src_tokens, image_inputs, V, bsz, beam, nbest, max_len, min_len, eos, pad, unk, bos, lenpen,
            unk_penalty, ngram, trie, stop, device) -> List[List[Hypothesis]]:
    enc = model.encode(src_tokens, **image_inputs)  # (bsz, ...): expanded to the beams after step 0
    scores = torch.zeros(bsz * beam, max_len + 1, device=device)
    tokens = torch.full((bsz * beam, max_len + 2), pad, dtype=torch.long, device=device)
    tokens[:, 0] = bos
    cands_to_ignore = torch.zeros(bsz, beam, dtype=torch.bool, device=device)
    finished = _Finished(bsz, beam, eos, lenpen, stop)
    sentence_of_row = list(range(bsz))
    cand_size = 2 * beam
    bbsz_offsets = (torch.arange(bsz, device=device) * beam)[:, None]
    cand_offsets = torch.arange(cand_size, device=device)
    cache: Dict[str, Any] = {}
    reorder_state: Optional[torch.Tensor] = None
    batch_idxs: Optional[torch.Tensor] = None
    for step in range(max_len + 1):
        if reorder_state is not None:
            if batch_idxs is not None:
                corr = batch_idxs - torch.arange(batch_idxs.numel(), device=device)
                reorder_state.view(-1, beam).add_(corr[:, None] * beam)
                enc = model.reorder_encoder_out(enc, batch_idxs)
            reorder_decoder_cache(cache, reorder_state, batch_idxs)
        # step 0: the beams of a sentence are identical and fairseq only reads the first one's
        # log-probabilities, so the decoder runs once per sentence, then its self-attention cache
        # is repeated for the beams; the encoder output and its keys/values stay one row per sentence
        hyps = tokens[::beam] if step == 0 else tokens
        logits = model.decode(hyps[:, :step + 1], enc, cache)
        if step == 0:
            reorder_decoder_cache(cache, torch.arange(bsz, device=device).repeat_interleave(beam))
        lprobs = F.log_softmax(logits[:, -1, :], dim=-1, dtype=torch.float32)
        if trie is not None:
            lprobs = constrain_log_probs(lprobs, hyps[:, 1:step + 1], trie)
        if torch.isnan(lprobs.sum()):  # (one reduction; a NaN anywhere makes the sum NaN, -inf does not)
            lprobs.masked_fill_(lprobs.isnan(), -math.inf)
        lprobs[:, pad] = -math.inf
        if unk is not None and unk_penalty != 0:
            lprobs[:, unk] -= unk_penalty
        if step >= max_len:
            lprobs[:, :eos] = -math.inf
            lprobs[:, eos + 1:] = -math.inf
        if step < min_len:
            lprobs[:, eos] = -math.inf
        if ngram > 0 and step > 0:  # (nothing to block at step 0: no generated token, no complete n-gram)
            block_repeated_ngrams(tokens, lprobs, step, ngram)

        # fairseq's search.BeamSearch.step
        if step == 0:
            lp = lprobs.view(bsz, 1, V)
        else:  # (in place: lprobs is not used any more)
            lp = lprobs.view(bsz, beam, V).add_(scores.view(bsz, beam, -1)[:, :, step - 1].unsqueeze(-1))
        flat = lp.view(bsz, -1)
        cand_scores, cand_flat = torch.topk(flat, k=min(cand_size, flat.size(1) - 1))
        cand_beams = torch.div(cand_flat, V, rounding_mode="trunc")
        cand_indices = cand_flat.fmod(V)
        cand_bbsz_idx = cand_beams + bbsz_offsets

        eos_mask = cand_indices.eq(eos) & cand_scores.ne(-math.inf)
        eos_mask[:, :beam][cands_to_ignore] = False
        eos_bbsz_idx = torch.masked_select(cand_bbsz_idx[:, :beam], mask=eos_mask[:, :beam])
        done_rows: List[int] = []
        if eos_bbsz_idx.numel() > 0:
            eos_scores = torch.masked_select(cand_scores[:, :beam], mask=eos_mask[:, :beam])
            done_rows = finished.add(step, eos_bbsz_idx, eos_scores, tokens, scores, sentence_of_row, max_len)
        if len(done_rows) == bsz or step >= max_len:
            break

        if done_rows:  # drop the finished sentences from the batch
            new_bsz = bsz - len(done_rows)
            batch_mask = torch.ones(bsz, dtype=torch.bool, device=device)
            batch_mask[done_rows] = False
            batch_idxs = torch.arange(bsz, device=device).masked_select(batch_mask)
            eos_mask, cand_beams = eos_mask[batch_idxs], cand_beams[batch_idxs]
            bbsz_offsets = bbsz_offsets[:new_bsz]
            cand_bbsz_idx = cand_beams + bbsz_offsets
            cand_scores, cand_indices = cand_scores[batch_idxs], cand_indices[batch_idxs]
            cands_to_ignore = cands_to_ignore[batch_idxs]
            scores = scores.view(bsz, -1)[batch_idxs].view(new_bsz * beam, -1)
            tokens = tokens.view(bsz, -1)[batch_idxs].view(new_bsz * beam, -1)
            keep = batch_idxs.tolist()
            sentence_of_row = [sentence_of_row[i] for i in keep]
            bsz = new_bsz
        else:
            batch_idxs = None

        # continue with the first `beam` candidates that do not end in eos
        eos_mask[:, :beam] = ~((~cands_to_ignore) & (~eos_mask[:, :beam]))
        active_mask = eos_mask.long() * cand_size + cand_offsets[:eos_mask.size(1)]
        new_cands_to_ignore, active_hypos = torch.topk(active_mask, k=beam, dim=1, largest=False)
        cands_to_ignore = new_cands_to_ignore.ge(cand_size)[:, :beam]
        active_bbsz_idx = torch.gather(cand_bbsz_idx, dim=1, index=active_hypos).view(-1)
        tokens[:, :step + 1] = torch.index_select(tokens[:, :step + 1], dim=0, index=active_bbsz_idx)
        tokens.view(bsz, beam, -1)[:, :, step + 1] = torch.gather(cand_indices, dim=1, index=active_hypos)
        if step > 0:
            scores[:, :step] = torch.index_select(scores[:, :step], dim=0, index=active_bbsz_idx)
        scores.view(bsz, beam, -1)[:, :, step] = torch.gather(cand_scores, dim=1, index=active_hypos)
        reorder_state = active_bbsz_idx
    return finished.results(nbest)

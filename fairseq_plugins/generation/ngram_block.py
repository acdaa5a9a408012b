"""``--no-repeat-ngram-size`` that blocks repeated n-grams (fairseq's does nothing here).

fairseq's ``NGramRepeatBlock`` (main branch, ``ve-fairseq`` 0.12.3) compares each hypothesis'
*last* ``n - 1`` positions of the whole token buffer (``bsz*beam, max_len + 2``, padded after the
current step) with its earlier (n-1)-grams: those positions are padding until the very last step,
so no n-gram is ever blocked. Its CUDA kernel, which is right, does not build in the wheel, so
the option is silently ignored on CPU and GPU alike (fairseq issue #5206, open). Measured on the
Flickr8k validation photos: a caption model's beam-3 output was byte-identical with and without
``--no-repeat-ngram-size 3`` (docs/experiments/captioning.md, section 4).

:class:`UnixNGramRepeatBlock` subclasses it and looks at the generated prefix
(``tokens[:, :step + 1]``): after ``w_1 .. w_t``, every token ``x`` such that
``(w_{t-n+2} .. w_t, x)`` already occurs in the hypothesis gets ``-inf`` (Hugging Face's and
fairseq's documented meaning; the begin-of-sentence column counts as a token, except for
unigrams, where it would ban ending the sentence). :func:`fix_ngram_blocking` puts it into any fairseq generator;
every unix task does so in ``build_generator``.
"""

from typing import List, Sequence

import torch
from fairseq.ngram_repeat_block import NGramRepeatBlock


def banned_next_tokens(prefix: Sequence[int], n: int) -> List[int]:
    """Tokens that would repeat an n-gram of ``prefix`` if generated next.

    Args:
        prefix: the tokens generated so far (the beginning-of-sentence token included).
        n: n-gram size (>= 1).

    Returns:
        The banned token ids, without duplicates, in order of first occurrence.
    """
    if n < 1:
        raise ValueError(f"n-gram size {n} < 1")
    prefix = list(prefix)
    if len(prefix) < n - 1:
        return []
    context = prefix[len(prefix) - (n - 1):] if n > 1 else []
    banned: List[int] = []
    for i in range(len(prefix) - n + 1):
        if prefix[i:i + n - 1] == context and prefix[i + n - 1] not in banned:
            banned.append(prefix[i + n - 1])
    return banned


class UnixNGramRepeatBlock(NGramRepeatBlock):
    """fairseq's n-gram blocker reading the generated prefix instead of the padded buffer's end."""

    def __init__(self, no_repeat_ngram_size: int):
        super().__init__(no_repeat_ngram_size, use_extension=False)

    def forward(self, tokens: torch.Tensor, lprobs: torch.Tensor, bsz: int, beam_size: int,
                step: int) -> torch.Tensor:
        """Set the log-probabilities of repeating tokens to ``-inf``, in place.

        Args:
            tokens: (bsz*beam, >= step + 1) token buffer; columns ``0..step`` are the prefix.
            lprobs: (bsz*beam, V) next-token log-probabilities.
            bsz: sentences in the batch.
            beam_size: hypotheses per sentence.
            step: index of the last generated column.

        Returns:
            ``lprobs``.
        """
        n = self.no_repeat_ngram_size
        if tokens.size(0) != bsz * beam_size or lprobs.size(0) != bsz * beam_size:
            raise ValueError(f"expected {bsz * beam_size} hypotheses, got {tokens.size(0)} / {lprobs.size(0)}")
        if step + 1 < n - 1 or n < 1:
            return lprobs
        start = 1 if n == 1 else 0  # unigrams: the begin-of-sentence column is </s>, never ban ending
        for row, prefix in enumerate(tokens[:, start:step + 1].tolist()):
            banned = banned_next_tokens(prefix, n)
            if banned:
                lprobs[row, banned] = -float("inf")
        return lprobs


def fix_ngram_blocking(generator):
    """Replace fairseq's n-gram blocker of ``generator`` (if it has one) by :class:`UnixNGramRepeatBlock`."""
    blocker = getattr(generator, "repeat_ngram_blocker", None)
    if blocker is not None and not isinstance(blocker, UnixNGramRepeatBlock):
        generator.repeat_ngram_blocker = UnixNGramRepeatBlock(blocker.no_repeat_ngram_size)
    return generator

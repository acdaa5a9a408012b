"""Datasets of ``unix_pretrain``: one wrapper per stream and the mixture of streams.

* :class:`DenoisingSourceDataset`: a monolingual dataset whose items are corrupted on the fly
  (:func:`unix.data.noise.span_mask`, seeded by seed, epoch and index) behind a language tag;
* :class:`PretrainStreamDataset`: wraps one stream's ``LanguagePairDataset`` (or its
  :class:`ImagePairDataset`), names the stream in every batch (``batch["stream"]``) and adds the
  texts the contrastive objectives embed, right-padded: ``text_tokens`` (caption streams: tag +
  caption, code-switched when enabled), ``xl_src`` / ``xl_tgt`` (translation streams: each side
  behind its own language tag), and ``relevance`` (B,) for a weakly-aligned caption stream (RC3);
* :class:`StreamMixDataset`: fairseq's ``MultiCorpusDataset`` with ``batch_sample=True`` (each
  batch from one stream, samples drawn with the stream ratios anew every epoch), whose batches
  are grouped so that all data-parallel workers see the same stream at the same step (the
  contrastive losses all-gather embeddings: every rank must take part).
"""

import logging
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from fairseq.data import BaseWrapperDataset, data_utils
from fairseq.data.multi_corpus_dataset import MultiCorpusDataset

from unix.data.collate import collate_tokens
from unix.data.noise import span_mask

logger = logging.getLogger(__name__)


class DenoisingSourceDataset(BaseWrapperDataset):
    """Noisy source side of a monolingual dataset: ``[lang tag] + span_mask(sentence)``.

    Args:
        dataset: token sequences ending with ``</s>``.
        tag: id of the language tag put in front.
        mask_idx: id of ``<mask>``.
        protected: ids never masked (specials, language tags).
        ratio, poisson_lambda: BART text-infilling parameters.
        seed: base seed; item ``i`` of epoch ``e`` is corrupted the same way in every run.
    """

    def __init__(self, dataset, tag: int, mask_idx: int, protected: Sequence[int], ratio: float = 0.3,
                 poisson_lambda: float = 3.0, seed: int = 1):
        super().__init__(dataset)
        self.tag, self.mask_idx, self.protected = tag, mask_idx, sorted(set(protected) | {tag})
        self.ratio, self.poisson_lambda, self.seed = ratio, poisson_lambda, seed
        self.epoch = 1

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.epoch = epoch

    def __getitem__(self, index):
        tokens = self.dataset[index]  # (T,)
        g = torch.Generator().manual_seed((self.seed * 1000003 + self.epoch) * 1000003 + int(index))
        noisy = span_mask(tokens, self.mask_idx, self.ratio, self.poisson_lambda, protected=self.protected,
                          generator=g)
        return torch.cat([tokens.new_tensor([self.tag]), noisy])

    @property
    def sizes(self):
        return self.dataset.sizes + 1  # an upper bound only when spans merge; used for batching

    def num_tokens(self, index):
        return int(self.sizes[index])

    def size(self, index):
        return int(self.sizes[index])


class PretrainStreamDataset(BaseWrapperDataset):
    """One pre-training stream: a pair dataset plus the stream name and contrastive texts.

    Args:
        dataset: a ``LanguagePairDataset`` or :class:`ImagePairDataset` of the stream.
        name: stream name, put in every batch as ``batch["stream"]``.
        kind: ``caption``, ``translation`` or ``denoise``.
        pad: padding id of the texts.
        src_tag, tgt_tag: language-tag ids of a translation stream's two sides.
        text_fn: caption streams: ``(item, index, epoch) -> (T,) tokens`` of the text to embed
            (tag + caption, possibly code-switched).
        epoch_listeners: inner datasets to tell the epoch (e.g. a :class:`DenoisingSourceDataset`).
        relevance: caption streams of weakly-aligned pairs: the textual relevance of every sample
            (:mod:`unix.data.relevance`), collated as ``batch["relevance"]`` (B,) for RC3.
    """

    def __init__(self, dataset, name: str, kind: str, pad: int, src_tag: Optional[int] = None,
                 tgt_tag: Optional[int] = None, text_fn: Optional[Callable] = None,
                 epoch_listeners: Sequence = (), relevance: Optional[Sequence[float]] = None):
        super().__init__(dataset)
        if relevance is not None and len(relevance) != len(dataset):
            raise ValueError(f"stream {name!r}: {len(relevance)} relevance values for {len(dataset)} samples")
        self.relevance = relevance
        self.name, self.kind, self.pad = name, kind, pad
        self.src_tag, self.tgt_tag, self.text_fn = src_tag, tgt_tag, text_fn
        self.epoch_listeners = list(epoch_listeners)  # inner datasets fairseq's pair dataset hides
        self.epoch = 1

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.epoch = epoch
        for d in self.epoch_listeners:
            d.set_epoch(epoch)

    def __getitem__(self, index):
        item = self.dataset[index]
        if self.kind == "caption" and self.text_fn is not None:
            item["text"] = self.text_fn(item, index, self.epoch)  # (T,)
        elif self.kind == "translation" and self.src_tag is not None:
            src = item["source"][1:]  # the target-language tag in front is the model's, not the text's
            item["xl_src"] = torch.cat([src.new_tensor([self.src_tag]), src])
            item["xl_tgt"] = torch.cat([item["target"].new_tensor([self.tgt_tag]), item["target"]])
        if self.relevance is not None:
            item["relevance"] = float(self.relevance[index])
        return item

    def collater(self, samples):
        batch = self.dataset.collater(samples)
        if not batch:
            return batch
        batch["stream"] = self.name
        by_id = {int(s["id"]): s for s in samples}
        order = [by_id[int(i)] for i in batch["id"]]  # the pair collater sorts by source length
        for key, out in (("text", "text_tokens"), ("xl_src", "xl_src"), ("xl_tgt", "xl_tgt")):
            if key in order[0]:
                batch[out] = collate_tokens([s[key] for s in order], self.pad)  # (B, T)
        if "relevance" in order[0]:
            batch["relevance"] = torch.tensor([s["relevance"] for s in order], dtype=torch.float)  # (B,)
        return batch


class StreamMixDataset(MultiCorpusDataset):
    """Streams mixed with sampling ratios; every batch from one stream.

    Args:
        streams: name -> :class:`PretrainStreamDataset`.
        ratios: share of the samples drawn from each stream per epoch (sums to 1).
        seed: sampling seed.
        resample: draw the samples anew every epoch with ``ratios`` (training); False = every
            sample exactly once (validation).
    """

    def __init__(self, streams: "OrderedDict[str, PretrainStreamDataset]", ratios: List[float], seed: int,
                 resample: bool = True):
        super().__init__(streams, ratios, seed, sort_indices=True, batch_sample=True)
        self.resample = resample
        self.num_shards = 1  # set by the task from fairseq's data-parallel world size
        self.epoch = 1

    def set_epoch(self, epoch, **unused):
        super().set_epoch(epoch)
        for ds in self.datasets.values():
            ds.set_epoch(epoch)

    def ordered_indices(self):
        if self.resample:
            return super().ordered_indices()
        sizes = np.array([self.num_tokens(i) for i in range(len(self))], dtype=np.int64)
        return np.argsort(sizes, kind="mergesort")

    def stream_of_batch(self, batch: Sequence[int]) -> str:
        return self._map_index(int(batch[0]))[1]

    def batch_by_size(self, indices, max_tokens=None, max_sentences=None, required_batch_size_multiple=1):
        """Batches of one stream each, in groups of ``num_shards`` consecutive same-stream batches.

        fairseq gives batch ``k * num_shards + r`` to rank ``r``, so all ranks see the same
        stream at every step. Training drops the last incomplete group of a stream (fewer than
        ``num_shards`` batches); validation fills it by repeating that stream's batches.
        """
        batches = super().batch_by_size(indices, max_tokens, max_sentences, required_batch_size_multiple)
        by_stream: Dict[str, List] = OrderedDict()
        for b in batches:
            by_stream.setdefault(self.stream_of_batch(b), []).append(b)
        n = max(1, self.num_shards)
        groups = []
        for name, bs in by_stream.items():
            if len(bs) % n:
                if self.resample:
                    logger.info("stream %s: %d batch(es) left out to keep %d workers on one stream",
                                name, len(bs) % n, n)
                    bs = bs[: len(bs) - len(bs) % n]
                else:
                    bs = bs + [bs[i % len(bs)] for i in range(n - len(bs) % n)]
            groups += [bs[i:i + n] for i in range(0, len(bs), n)]
        if self.resample:
            with data_utils.numpy_seed(self.seed, self.epoch, 7):
                order = np.random.permutation(len(groups))
            groups = [groups[i] for i in order]
        return [b for g in groups for b in g]

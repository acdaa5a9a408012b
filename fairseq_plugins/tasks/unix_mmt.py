"""Task ``unix_mmt``: source text + optional image -> target text.

Data: what ``fairseq-preprocess`` writes for a language pair (one shared ``dict.txt``), plus per
split an image list ``<split>.<image-list-suffix>`` aligned line by line with the sentences (an
empty line = no image). Images come as pixels from ``--image-root`` or as cached backbone
features from ``--image-features`` (see ``scripts/build_feature_cache.py``). The target-language
tag (``__de__``) is put in front of every source sentence, so one model serves any pair.
"""


import logging
import os
from dataclasses import dataclass

from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask, load_langpair_dataset

from fairseq_plugins.tasks.base import ImageTaskMixin, UnixImageDataConfig, check_nonempty

logger = logging.getLogger(__name__)


@dataclass
class UnixMMTConfig(TranslationConfig, UnixImageDataConfig):
    pass


@register_task("unix_mmt", dataclass=UnixMMTConfig)
class UnixMMTTask(ImageTaskMixin, TranslationTask):
    """Multimodal machine translation (text + optional image -> text)."""

    def __init__(self, cfg, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.tgt_lang_idx = None
        if cfg.lang_tag:
            self.tgt_lang_idx = self.lang_tag_index(cfg.target_lang, src_dict)

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        """Use the shared ``dict.txt`` of the data directory for both sides when there is one."""
        shared = os.path.join(cfg.data.split(os.pathsep)[0], "dict.txt")
        if not os.path.exists(shared):
            return super().setup_task(cfg, **kwargs)
        if cfg.source_lang is None or cfg.target_lang is None:
            raise ValueError("give the language pair with -s/--source-lang and -t/--target-lang")
        dictionary = cls.load_dictionary(shared)
        logger.info("shared dictionary %s: %d types", shared, len(dictionary))
        return cls(cfg, dictionary, dictionary)

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        paths = self.cfg.data.split(os.pathsep)
        data_path = paths[(epoch - 1) % len(paths)] if split == self.cfg.train_subset else paths[0]
        dataset = load_langpair_dataset(
            data_path, split, self.cfg.source_lang, self.src_dict, self.cfg.target_lang, self.tgt_dict,
            combine=combine, dataset_impl=self.cfg.dataset_impl, upsample_primary=self.cfg.upsample_primary,
            left_pad_source=self.cfg.left_pad_source, left_pad_target=self.cfg.left_pad_target,
            max_source_positions=self.cfg.max_source_positions,
            max_target_positions=self.cfg.max_target_positions, truncate_source=self.cfg.truncate_source,
            num_buckets=self.cfg.num_batch_buckets, shuffle=(split != "test"),
            pad_to_multiple=self.cfg.required_seq_len_multiple, prepend_bos_src=self.tgt_lang_idx,
        )
        check_nonempty(dataset, os.path.join(data_path, f"{split}.{self.cfg.source_lang}-{self.cfg.target_lang}"),
                       min_src=2 if self.tgt_lang_idx is not None else 1)
        self.datasets[split] = self.wrap_with_images(split, dataset)

    def build_model(self, cfg, from_checkpoint=False):
        self.prepare_model_cfg(cfg)
        return super().build_model(cfg, from_checkpoint)

"""Task ``unix_mmt``: source text + optional image -> target text.

Data: what ``fairseq-preprocess`` writes for a language pair (one shared ``dict.txt``), plus per
split an image list ``<split>.<image-list-suffix>`` aligned line by line with the sentences (an
empty line = no image). Images come as pixels from ``--image-root`` or as cached backbone
features from ``--image-features`` (see ``unix-build-features``). The target-language
tag (``__de__``) is put in front of every source sentence, so one model serves any pair.
Loading, images, the model and ``--beam-stop`` are :class:`~fairseq_plugins.tasks.base.UnixImageTask`'s.
"""


import logging
import os
from dataclasses import dataclass

from fairseq.tasks import register_task

from fairseq_plugins.tasks.base import UnixImageTask, UnixImageTaskConfig

logger = logging.getLogger(__name__)


@dataclass
class UnixMMTConfig(UnixImageTaskConfig):
    pass


@register_task("unix_mmt", dataclass=UnixMMTConfig)
class UnixMMTTask(UnixImageTask):
    """Multimodal machine translation (text + optional image -> text)."""

    task_name = "unix_mmt"

    def tag_lang(self):
        return self.cfg.target_lang if self.cfg.lang_tag else None

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

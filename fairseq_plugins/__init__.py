"""fairseq user directory of unix: ``fairseq-train --user-dir fairseq_plugins ...``.

Importing it registers every unix model, task, criterion and scorer with fairseq, and makes
fairseq's checkpoint loading work under ``torch.load(weights_only=True)`` with an allow-list.
"""

from fairseq_plugins.checkpoint import patch_fairseq_checkpoint_loading

patch_fairseq_checkpoint_loading()

from fairseq_plugins.models import unix  # noqa: E402,F401  (model "unix", archs unix_*)
from fairseq_plugins.tasks import unix_mmt  # noqa: E402,F401
from fairseq_plugins.tasks import unix_vqa  # noqa: E402,F401
from fairseq_plugins.scoring import vqa_accuracy  # noqa: E402,F401  (scorer "vqa_accuracy")
from fairseq_plugins.tasks import unix_caption  # noqa: E402,F401
from fairseq_plugins.scoring import cider  # noqa: E402,F401  (fairseq-generate --scoring cider)
from fairseq_plugins.tasks import unix_pretrain  # noqa: E402,F401  (multi-stream pre-training)
from fairseq_plugins.criterions import unix_pretrain as unix_pretrain_criterion  # noqa: E402,F401
from fairseq_plugins.criterions import unix_scst  # noqa: E402,F401  (self-critical training on CIDEr-D)

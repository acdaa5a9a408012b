"""fairseq user directory of unix: ``fairseq-train --user-dir fairseq_plugins ...``.

Importing it registers every unix model, task, criterion and scorer with fairseq, and makes
fairseq's checkpoint loading work under ``torch.load(weights_only=True)`` with an allow-list.
"""

from fairseq_plugins.checkpoint import patch_fairseq_checkpoint_loading

patch_fairseq_checkpoint_loading()

from fairseq_plugins.models import unix  # noqa: E402,F401  (model "unix", archs unix_*)
from fairseq_plugins.tasks import unix_mmt  # noqa: E402,F401

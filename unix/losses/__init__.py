"""Training objectives as pure functions: contrastive (InfoNCE, RC3, ITM), seq2seq and SCST losses."""

from unix.losses.contrastive import (
    LOG_MAX_SCALE,
    ContrastiveOutput,
    HardNegatives,
    clamp_logit_scale_,
    contrastive_loss,
    distributed_world_size,
    gather_features,
    itm_loss,
    itm_pairs,
    logit_scale_value,
    sample_hard_negatives,
)
from unix.losses.rc3 import check_relevance, rc3_loss, relevance_targets
from unix.losses.scst import ScstLoss, leave_one_out_baseline, scst_loss
from unix.losses.seq2seq import SequenceLoss, label_smoothed_nll_loss, sequence_loss

__all__ = [
    "LOG_MAX_SCALE", "ContrastiveOutput", "HardNegatives", "SequenceLoss", "clamp_logit_scale_",
    "contrastive_loss", "distributed_world_size", "gather_features", "itm_loss", "itm_pairs",
    "label_smoothed_nll_loss", "leave_one_out_baseline", "logit_scale_value", "sample_hard_negatives",
    "check_relevance", "rc3_loss", "relevance_targets",
    "ScstLoss", "scst_loss", "sequence_loss",
]

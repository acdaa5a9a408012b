"""Which of fairseq's ``--ddp-backend`` wrappers the unix criteria work under.

``unix_scst`` and ``unix_pretrain`` compute part of their loss by calling the model's submodules
outside its ``forward`` (the encoder once per photo for K candidates; ``encode_image`` /
``encode_text`` for the contrastive objectives). PyTorch's ``DistributedDataParallel`` (fairseq's
default ``--ddp-backend c10d`` / ``pytorch_ddp``) synchronises gradients only for what runs through
its own ``forward``: measured on two CPU ranks, SCST then trains a different model on each rank
without any error (parameter sums 219.05 vs 218.87 after 4 updates), and pre-training fails at its
second update. fairseq's ``legacy_ddp`` (``no_c10d``) all-reduces every gradient after the backward
pass and keeps the ranks identical. :func:`check_ddp_backend` refuses the first kind at each training step
(a few attribute look-ups).
"""

import torch

REFUSED_WRAPPERS = ("DistributedDataParallel", "FullyShardedDataParallel")


def ddp_wrapper_name(model: torch.nn.Module, depth: int = 4):
    """Class name of a PyTorch DDP / FSDP wrapper around ``model`` (through fairseq's proxy wrappers), or None."""
    for _ in range(depth):
        if model is None:
            return None
        name = type(model).__name__
        if isinstance(model, torch.nn.parallel.DistributedDataParallel) or name in REFUSED_WRAPPERS:
            return name
        model = model._modules.get("module") if isinstance(model, torch.nn.Module) else None
    return None


def check_ddp_backend(model: torch.nn.Module, criterion: str) -> None:
    """Raise ``ValueError`` if ``model``'s wrapper would not synchronise ``criterion``'s gradients."""
    name = ddp_wrapper_name(model)
    if name is not None:
        raise ValueError(
            f"criterion {criterion} calls the model's encoder outside its forward, which {name} "
            f"(--ddp-backend c10d / pytorch_ddp / fully_sharded) does not synchronise across workers: each "
            f"worker would train its own model. Use --ddp-backend legacy_ddp")

"""fairseq_plugins.distributed: which --ddp-backend wrappers the unix criteria refuse."""

import os

import pytest
import torch
import torch.distributed as dist

from fairseq_plugins.distributed import check_ddp_backend, ddp_wrapper_name


@pytest.fixture
def process_group(tmp_path, monkeypatch):
    """A one-rank gloo process group (what DistributedDataParallel needs to be built)."""
    if os.path.exists("/sys/class/net/lo") and "GLOO_SOCKET_IFNAME" not in os.environ:
        monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # needs no resolvable hostname
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_pytorch_ddp_is_found_through_fairseqs_proxy_and_refused(process_group):
    from fairseq.distributed import LegacyDistributedDataParallel, ModuleProxyWrapper

    model = torch.nn.Linear(3, 2)
    assert ddp_wrapper_name(model) is None
    check_ddp_backend(model, "unix_scst")  # a plain model (one process) passes
    wrapped = ModuleProxyWrapper(torch.nn.parallel.DistributedDataParallel(model))  # fairseq's c10d
    assert ddp_wrapper_name(wrapped) == "DistributedDataParallel"
    with pytest.raises(ValueError, match=r"criterion unix_scst calls .* Use --ddp-backend legacy_ddp"):
        check_ddp_backend(wrapped, "unix_scst")
    legacy = LegacyDistributedDataParallel(model, process_group=dist.group.WORLD)  # fairseq's legacy_ddp
    assert ddp_wrapper_name(legacy) is None
    check_ddp_backend(legacy, "unix_pretrain")


def test_fully_sharded_wrapper_is_refused(process_group):
    """FSDP also shards and synchronises only what runs through its forward: refused like DDP.

    (fairseq's ``--ddp-backend fully_sharded`` wraps with fairscale's class of the same name, which is not
    installed here; PyTorch's own FSDP runs on CPU and is what the name check sees.)
    """
    from fairseq.distributed import ModuleProxyWrapper
    from torch.distributed.fsdp import FullyShardedDataParallel

    sharded = FullyShardedDataParallel(torch.nn.Linear(3, 2), device_id=torch.device("cpu"))
    assert sharded(torch.randn(4, 3)).shape == (4, 2)
    assert ddp_wrapper_name(ModuleProxyWrapper(sharded)) == "FullyShardedDataParallel"
    with pytest.raises(ValueError, match=r"unix_pretrain calls .*FullyShardedDataParallel.* legacy_ddp"):
        check_ddp_backend(ModuleProxyWrapper(sharded), "unix_pretrain")

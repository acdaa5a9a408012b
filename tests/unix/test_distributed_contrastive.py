"""Gathered negatives: 2 CPU processes (gloo) == 1 process on the concatenated batch.

Convention checked (see :mod:`unix.losses.contrastive`): on every rank the loss equals the
single-process loss; each rank's input gradients equal the single-process gradients of its rows;
the ``logit_scale`` gradients *summed* over ranks equal the single-process gradient. The same for
RC3's relevance-regularized loss (:mod:`unix.losses.rc3`), whose relevance is gathered too.
"""

from __future__ import annotations

import math
import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from unix.losses import contrastive_loss, gather_features, rc3_loss, sample_hard_negatives

WORLD = 2


def make_cases():
    g = torch.Generator().manual_seed(0)
    cases = {}
    for name, n, splits in (("equal", 6, [(0, 3), (3, 6)]), ("unequal", 5, [(0, 3), (3, 5)])):
        a = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1)
        b = torch.nn.functional.normalize(a + 0.8 * torch.randn(n, 4, generator=g), dim=-1)
        cases[name] = (a, b, splits, math.log(5.0))
    return cases


RELEVANCE = torch.tensor([1.0, 0.3, 0.8, 0.0, 0.55, 0.9])  # rows of a case: the first n


def _worker(rank: int, init_file: str, out_dir: str, cases) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        results = {}
        for name, (a_full, b_full, splits, log_scale) in cases.items():
            lo, hi = splits[rank]
            a = a_full[lo:hi].clone().requires_grad_(True)
            b = b_full[lo:hi].clone().requires_grad_(True)
            s = torch.tensor(log_scale, requires_grad=True)
            out = contrastive_loss(a, b, s)
            out.loss.backward()
            B = hi - lo
            local = out.logits[out.offset:out.offset + B, out.offset:out.offset + B]
            neg = sample_hard_negatives(local.detach(), generator=torch.Generator().manual_seed(rank))
            results[name] = dict(loss=out.loss.detach(), acc_a2b=out.acc_a2b, acc_b2a=out.acc_b2a,
                                 logits=out.logits.detach(), offset=out.offset, grad_a=a.grad,
                                 grad_b=b.grad, grad_s=s.grad, neg=neg.text_for_image)
            a, b = (x.detach().clone().requires_grad_(True) for x in (a, b))
            s = torch.tensor(log_scale, requires_grad=True)
            rc3 = rc3_loss(a, b, RELEVANCE[lo:hi], s)
            rc3.loss.backward()
            results[f"rc3_{name}"] = dict(loss=rc3.loss.detach(), offset=rc3.offset, grad_a=a.grad, grad_b=b.grad,
                                          grad_s=s.grad)
        x = torch.full((rank + 1, 2), float(rank))  # rank 0: 1 row, rank 1: 2 rows
        results["gathered"] = gather_features(x)[0]
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_workers(tmp_path, cases, timeout: float = 120.0):
    ctx = mp.start_processes(_worker, args=(str(tmp_path / "init"), str(tmp_path), cases), nprocs=WORLD,
                             join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    try:
        while not ctx.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail("distributed workers did not finish in time")
    finally:
        for p in ctx.processes:  # only the processes this test started
            if p.is_alive():
                p.terminate()
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory):
    cases = make_cases()
    with pytest.MonkeyPatch.context() as mpatch:
        mpatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the spawned workers
        return cases, run_workers(tmp_path_factory.mktemp("dist"), cases)


def single_process(a_full, b_full, log_scale):
    a = a_full.clone().requires_grad_(True)
    b = b_full.clone().requires_grad_(True)
    s = torch.tensor(log_scale, requires_grad=True)
    out = contrastive_loss(a, b, s)  # torch.distributed not initialised here: no gather
    out.loss.backward()
    return out, a.grad, b.grad, s.grad


@pytest.mark.parametrize("name", ["equal", "unequal"])
def test_two_ranks_equal_one_rank(two_rank_results, name):
    cases, results = two_rank_results
    a_full, b_full, splits, log_scale = cases[name]
    ref, grad_a, grad_b, grad_s = single_process(a_full, b_full, log_scale)
    for rank, (lo, hi) in enumerate(splits):
        r = results[rank][name]
        assert r["offset"] == lo
        assert torch.allclose(r["loss"], ref.loss.detach(), atol=1e-6)
        assert torch.allclose(r["logits"], ref.logits.detach(), atol=1e-6)
        assert r["acc_a2b"].item() == pytest.approx(ref.acc_a2b.item())
        assert r["acc_b2a"].item() == pytest.approx(ref.acc_b2a.item())
        assert torch.allclose(r["grad_a"], grad_a[lo:hi], atol=1e-6)
        assert torch.allclose(r["grad_b"], grad_b[lo:hi], atol=1e-6)
        # hard negatives come from the local block: indices local to the rank, never the positive
        assert ((r["neg"] >= 0) & (r["neg"] < hi - lo)).all()
        assert (r["neg"] != torch.arange(hi - lo)).all()
    assert grad_s.abs().item() > 1e-4  # the comparison below is not trivially 0 == 0
    summed = sum(results[rank][name]["grad_s"] for rank in range(WORLD))
    assert torch.allclose(summed, grad_s, atol=1e-6)


@pytest.mark.parametrize("name", ["equal", "unequal"])
def test_rc3_two_ranks_equal_one_rank(two_rank_results, name):
    cases, results = two_rank_results
    a_full, b_full, splits, log_scale = cases[name]
    n = a_full.shape[0]
    a, b = a_full.clone().requires_grad_(True), b_full.clone().requires_grad_(True)
    s = torch.tensor(log_scale, requires_grad=True)
    ref = rc3_loss(a, b, RELEVANCE[:n], s)
    ref.loss.backward()
    plain = contrastive_loss(a_full, b_full, log_scale).loss
    assert abs(ref.loss.item() - plain.item()) > 1e-3  # the relevance matters in this case
    for rank, (lo, hi) in enumerate(splits):
        r = results[rank][f"rc3_{name}"]
        assert r["offset"] == lo
        assert torch.allclose(r["loss"], ref.loss.detach(), atol=1e-6)
        assert torch.allclose(r["grad_a"], a.grad[lo:hi], atol=1e-6)
        assert torch.allclose(r["grad_b"], b.grad[lo:hi], atol=1e-6)
    summed = sum(results[rank][f"rc3_{name}"]["grad_s"] for rank in range(WORLD))
    assert torch.allclose(summed, s.grad, atol=1e-6)


def test_gather_features_variable_sizes(two_rank_results):
    _, results = two_rank_results
    expected = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    for rank in range(WORLD):
        assert torch.equal(results[rank]["gathered"], expected)


def test_gather_is_noop_without_distributed():
    x = torch.randn(3, 2)
    y, offset = gather_features(x)
    assert y is x and offset == 0

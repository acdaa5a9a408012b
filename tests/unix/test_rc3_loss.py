"""RC3's relevance-regularized contrastive loss against hand-computed values and plain InfoNCE."""

from __future__ import annotations

import math

import pytest
import torch

from unix.losses import contrastive_loss, rc3_loss, relevance_targets


def rc3_by_hand(a, b, relevance, scale):
    """The loss with plain Python loops and the explicit soft targets q_ij."""
    M = len(a)
    dot = [[sum(x * y for x, y in zip(a[i], b[j])) * scale for j in range(M)] for i in range(M)]

    def q(i, j):
        return relevance[i] * (i == j) + (1 - relevance[i]) / M

    rows = []
    for i in range(M):
        lse = math.log(sum(math.exp(dot[i][j]) for j in range(M)))
        rows.append(sum(-q(i, j) * (dot[i][j] - lse) for j in range(M)))
    cols = []
    for j in range(M):
        lse = math.log(sum(math.exp(dot[i][j]) for i in range(M)))
        cols.append(sum(-q(j, i) * (dot[i][j] - lse) for i in range(M)))
    return 0.5 * (sum(rows) / M + sum(cols) / M)


def test_two_rows_hand_computed():
    # a = b = I, scale s = 2: logits [[2, 0], [0, 2]].
    # every row (and column): log-sum-exp = log(e^2 + 1) = log(8.389056) = 2.126928
    #   -log p(own)   = 2.126928 - 2 = 0.126928
    #   -log p(other) = 2.126928
    #   uniform part  = mean_j -log p_j = (0.126928 + 2.126928) / 2 = 1.126928
    # relevance (1, 0.5):
    #   row 0: 1 * 0.126928                         = 0.126928  (plain InfoNCE)
    #   row 1: 0.5 * 0.126928 + 0.5 * 1.126928      = 0.626928
    #   mean over rows = 0.376928; columns give the same (symmetric logits): L = 0.376928
    s = 2.0
    logit = torch.tensor(math.log(s), requires_grad=True)
    e = torch.eye(2)
    out = rc3_loss(e, e, torch.tensor([1.0, 0.5]), logit)
    assert out.loss.item() == pytest.approx(0.376928, abs=1e-6)
    # d/ds: -log p(own) = log(e^s + 1) - s          -> e^s / (e^s + 1) - 1   = 0.880797 - 1   = -0.119203
    #       uniform     = log(e^s + 1) - s / 2      -> e^s / (e^s + 1) - 1/2 = 0.880797 - 0.5 =  0.380797
    #   row 0: -0.119203; row 1: 0.5 * -0.119203 + 0.5 * 0.380797 = 0.130797; mean = 0.005797
    #   dL/dlogit_scale = s * dL/ds = 2 * 0.005797 = 0.011594 (the weak pair pushes the temperature up)
    out.loss.backward()
    assert logit.grad.item() == pytest.approx(0.011594, abs=1e-6)
    assert out.acc_a2b.item() == 1.0 and out.acc_b2a.item() == 1.0 and out.offset == 0


def test_three_rows_match_loops():
    a = [[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]]
    b = [[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]]
    r = [0.9, 0.2, 0.6]
    out = rc3_loss(torch.tensor(a), torch.tensor(b), torch.tensor(r), math.log(3.0))
    assert out.loss.item() == pytest.approx(rc3_by_hand(a, b, r, 3.0), rel=1e-6)
    assert out.logits[0, 0].item() == pytest.approx(3.0 * 0.96)


def test_relevance_one_is_plain_infonce_value_and_gradients():
    g = torch.Generator().manual_seed(0)
    a0 = torch.nn.functional.normalize(torch.randn(5, 4, generator=g), dim=-1)
    b0 = torch.nn.functional.normalize(a0 + 0.5 * torch.randn(5, 4, generator=g), dim=-1)
    grads = []
    for fn in (lambda a, b, s: rc3_loss(a, b, torch.ones(5), s), contrastive_loss):
        a, b = a0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        s = torch.tensor(math.log(4.0), requires_grad=True)
        out = fn(a, b, s)
        out.loss.backward()
        grads.append((out.loss.detach(), a.grad, b.grad, s.grad))
    for x, y in zip(*grads):
        assert torch.allclose(x, y, atol=1e-6)


def test_lower_relevance_pulls_the_pair_less():
    # the gradient on the positive logit shrinks with the relevance: softmax_ii - q_ii
    a = torch.nn.functional.normalize(torch.randn(4, 3, generator=torch.Generator().manual_seed(1)), dim=-1)
    pulls = []
    for r in (1.0, 0.5, 0.0):
        b = a.clone().requires_grad_(True)
        rc3_loss(a, b, torch.full((4,), r), math.log(5.0)).loss.backward()
        pulls.append(float((b.grad * a).sum()))  # < 0: moving b towards a lowers the loss
    assert pulls[0] < pulls[1] < pulls[2]


def test_targets_rows_sum_to_one():
    q = relevance_targets(torch.tensor([1.0, 0.25, 0.0]))
    # row 1: 0.25 on its own pair + 0.75 / 3 = 0.25 everywhere -> 0.5, 0.25, 0.25 (off-diagonal)
    assert torch.allclose(q[1], torch.tensor([0.25, 0.5, 0.25]))
    assert torch.allclose(q.sum(dim=1), torch.ones(3))
    assert torch.equal(q[0], torch.tensor([1.0, 0.0, 0.0]))


def test_bad_relevance_is_rejected():
    e = torch.eye(2)
    with pytest.raises(ValueError, match=r"row 1 has 1.5"):
        rc3_loss(e, e, torch.tensor([0.5, 1.5]), 1.0)
    with pytest.raises(ValueError, match=r"\(2,\) relevance"):
        rc3_loss(e, e, torch.ones(3), 1.0)
    with pytest.raises(ValueError):
        rc3_loss(e, e, torch.tensor([float("nan"), 1.0]), 1.0)

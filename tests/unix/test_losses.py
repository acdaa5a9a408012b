"""Losses against values computed by hand (explicit loops over tiny batches)."""

from __future__ import annotations

import math

import pytest
import torch

from unix.losses import (
    clamp_logit_scale_, contrastive_loss, itm_loss, itm_pairs, label_smoothed_nll_loss,
    logit_scale_value, sample_hard_negatives, sequence_loss,
)
from unix.losses.contrastive import HardNegatives


# -- contrastive -----------------------------------------------------------------------------------
def infonce_by_hand(a, b, scale):
    """Symmetric InfoNCE with plain Python loops: mean over rows and columns of -log softmax."""
    M = len(a)
    dot = [[sum(x * y for x, y in zip(a[i], b[j])) * scale for j in range(M)] for i in range(M)]
    rows = [-dot[i][i] + math.log(sum(math.exp(dot[i][j]) for j in range(M))) for i in range(M)]
    cols = [-dot[j][j] + math.log(sum(math.exp(dot[i][j]) for i in range(M))) for j in range(M)]
    return 0.5 * (sum(rows) / M + sum(cols) / M)


def test_contrastive_identity_closed_form():
    # logits = s * I, every row and column: -log(e^s / (e^s + 1)) = log(1 + e^-s)
    s = 2.0
    logit = torch.tensor(math.log(s), requires_grad=True)
    e = torch.eye(2)
    out = contrastive_loss(e, e, logit)
    assert out.loss.item() == pytest.approx(math.log(1 + math.exp(-s)), rel=1e-6)
    assert out.acc_a2b.item() == 1.0 and out.acc_b2a.item() == 1.0 and out.offset == 0
    out.loss.backward()
    # dL/dlogit = s * dL/ds = s * (-e^-s / (1 + e^-s)) = -s / (1 + e^s)
    assert logit.grad.item() == pytest.approx(-s / (1 + math.exp(s)), rel=1e-5)


def test_contrastive_matches_loops_and_accuracy():
    a = [[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]]
    b = [[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]]  # pairs 1 and 2 are swapped: wrong best match
    out = contrastive_loss(torch.tensor(a), torch.tensor(b), math.log(3.0))
    assert out.loss.item() == pytest.approx(infonce_by_hand(a, b, 3.0), rel=1e-6)
    # a0 best: b0 (.96 vs .8/.6); a1 best: b2 (1.0) -> wrong; a2 best: b1 -> wrong
    assert out.acc_a2b.item() == pytest.approx(1 / 3)
    assert out.acc_b2a.item() == pytest.approx(1 / 3)
    assert out.logits.shape == (3, 3)
    assert out.logits[0, 0].item() == pytest.approx(3.0 * 0.96)


def test_logit_scale_clamped_like_clip():
    assert logit_scale_value(torch.tensor(10.0)).item() == pytest.approx(100.0)
    assert logit_scale_value(torch.tensor(-1.0)).item() == pytest.approx(1.0)
    assert logit_scale_value(math.log(7.0)).item() == pytest.approx(7.0)
    p = torch.nn.Parameter(torch.tensor(6.0))
    clamp_logit_scale_(p)
    assert p.item() == pytest.approx(math.log(100.0))
    # above the bound the forward is clamped: same loss as at the bound, and no gradient
    e = torch.nn.functional.normalize(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    big = torch.tensor(8.0, requires_grad=True)
    out = contrastive_loss(e, e, big)
    out.loss.backward()
    assert out.loss.item() == pytest.approx(contrastive_loss(e, e, math.log(100.0)).loss.item())
    assert big.grad.item() == 0.0


def test_contrastive_rejects_bad_shapes():
    with pytest.raises(ValueError):
        contrastive_loss(torch.zeros(2, 3), torch.zeros(3, 3), 1.0)


# -- ITM hard negatives ----------------------------------------------------------------------------
def test_hard_negatives_never_positive():
    g = torch.Generator().manual_seed(0)
    B = 6
    ids = torch.tensor([0, 0, 1, 2, 2, 3])  # duplicates are positives of each other
    for _ in range(200):
        sim = 5 * torch.randn(B, B, generator=g)
        sim.diagonal().add_(10)  # positives most similar: the softmax would pick them otherwise
        neg = sample_hard_negatives(sim, generator=g)
        ar = torch.arange(B)
        assert (neg.text_for_image != ar).all() and (neg.image_for_text != ar).all()
        assert neg.image_valid.all() and neg.text_valid.all()
        neg = sample_hard_negatives(sim, ids=ids, generator=g)
        assert (ids[neg.text_for_image] != ids).all() and (ids[neg.image_for_text] != ids).all()


def test_hard_negatives_follow_softmax_rows_and_columns():
    l1, l3 = math.log(1.0), math.log(3.0)
    # image 0 -> texts 1, 2 with weights e^l3 : e^l1 = 3 : 1  (row 0)
    # text 0 -> images 1, 2 with weights e^l1 : e^l3 = 1 : 3  (column 0)
    sim = torch.tensor([[9.0, l3, l1], [l1, 9.0, 0.0], [l3, 0.0, 9.0]])
    g = torch.Generator().manual_seed(1)
    n, t1, i2 = 1000, 0, 0
    for _ in range(n):
        neg = sample_hard_negatives(sim, generator=g)
        t1 += int(neg.text_for_image[0] == 1)
        i2 += int(neg.image_for_text[0] == 2)
    # expected 0.75 each; binomial sd ~0.014 (a transposed or unmasked sampler gives 0.25 / ~0)
    assert abs(t1 / n - 0.75) < 0.05 and abs(i2 / n - 0.75) < 0.05


def test_hard_negatives_seeded_and_invalid_rows():
    sim = torch.randn(5, 5, generator=torch.Generator().manual_seed(3))
    n1 = sample_hard_negatives(sim, generator=torch.Generator().manual_seed(7))
    n2 = sample_hard_negatives(sim, generator=torch.Generator().manual_seed(7))
    assert torch.equal(n1.text_for_image, n2.text_for_image) and torch.equal(n1.image_for_text, n2.image_for_text)
    one = sample_hard_negatives(torch.zeros(1, 1))
    assert not one.image_valid.any() and not one.text_valid.any()
    image_idx, text_idx, labels = itm_pairs(one)
    assert image_idx.tolist() == [0] and text_idx.tolist() == [0] and labels.tolist() == [1]
    same = sample_hard_negatives(torch.zeros(3, 3), ids=torch.tensor([4, 4, 4]))
    assert not same.image_valid.any()


def test_itm_pairs_layout():
    neg = HardNegatives(text_for_image=torch.tensor([2, 0, 1]), image_for_text=torch.tensor([1, 2, 2]),
                        image_valid=torch.tensor([True, True, False]),
                        text_valid=torch.tensor([True, False, True]))
    image_idx, text_idx, labels = itm_pairs(neg)
    pairs = list(zip(image_idx.tolist(), text_idx.tolist(), labels.tolist()))
    assert pairs == [(0, 0, 1), (1, 1, 1), (2, 2, 1),  # positives
                     (0, 2, 0), (1, 0, 0),  # image i with its negative text (image 2 invalid)
                     (1, 0, 0), (2, 2, 0)]  # negative image with text j (text 1 invalid)


def test_itm_loss_two_way_and_binary():
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0], [0.5, 0.5]])
    labels = torch.tensor([1, 0, 1])
    loss, acc = itm_loss(logits, labels)
    ce = [-math.log(math.exp(2) / (1 + math.exp(2))), -math.log(math.exp(1) / (math.exp(1) + math.exp(-1))),
          math.log(2.0)]
    assert loss.item() == pytest.approx(sum(ce) / 3, rel=1e-6)
    assert acc.item() == pytest.approx(2 / 3)  # the tie picks class 0, wrong for label 1
    x = torch.tensor([2.0, -1.0, 0.0])
    loss, acc = itm_loss(x, labels)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    bce = [-math.log(sig(2.0)), -math.log(1 - sig(-1.0)), -math.log(sig(0.0))]
    assert loss.item() == pytest.approx(sum(bce) / 3, rel=1e-6)
    assert acc.item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        itm_loss(torch.zeros(3, 3), labels)


# -- label-smoothed cross-entropy ------------------------------------------------------------------
def smoothed_ce_by_hand(probs, targets, eps, pad):
    """Sum over non-pad positions of -sum_v q_v log p_v, q = 1-eps on the target, eps/(V-1) elsewhere."""
    total = nll = 0.0
    for p, t in zip(probs, targets):
        if t == pad:
            continue
        V = len(p)
        q = [(1 - eps) if v == t else eps / (V - 1) for v in range(V)]
        total += -sum(qv * math.log(pv) for qv, pv in zip(q, p))
        nll += -math.log(p[t])
    return total, nll


def test_label_smoothed_nll_by_hand():
    probs = [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]]
    target = [0, 2, 1]  # position 2 is padding (pad = 1)
    lprobs = torch.tensor(probs, dtype=torch.float64).log()
    loss, nll = label_smoothed_nll_loss(lprobs, torch.tensor(target), 0.1, ignore_index=1)
    exp_loss, exp_nll = smoothed_ce_by_hand(probs, target, 0.1, pad=1)
    assert loss.item() == pytest.approx(exp_loss, rel=1e-9) and nll.item() == pytest.approx(exp_nll, rel=1e-9)
    per, per_nll = label_smoothed_nll_loss(lprobs, torch.tensor(target), 0.1, ignore_index=1, reduce=False)
    assert per.shape == (3,) and per[2].item() == 0.0 and per_nll[1].item() == pytest.approx(-math.log(0.8))
    loss0, nll0 = label_smoothed_nll_loss(lprobs, torch.tensor(target), 0.0, ignore_index=1)
    assert loss0.item() == pytest.approx(-math.log(0.5) - math.log(0.8))
    assert nll0.item() == pytest.approx(loss0.item())


def test_label_smoothed_matches_fairseq():
    fs = pytest.importorskip("fairseq.criterions.label_smoothed_cross_entropy")
    g = torch.Generator().manual_seed(0)
    lprobs = torch.randn(2, 5, 7, generator=g).log_softmax(-1)
    target = torch.randint(0, 7, (2, 5), generator=g)
    target[1, 3:] = 1
    for eps in (0.0, 0.1, 0.3):
        ours = label_smoothed_nll_loss(lprobs, target, eps, ignore_index=1)
        theirs = fs.label_smoothed_nll_loss(lprobs.view(-1, 7), target.view(-1), eps, ignore_index=1)
        assert torch.allclose(ours[0], theirs[0]) and torch.allclose(ours[1], theirs[1])


def test_sequence_loss_prefix_tokens_and_accuracy():
    pad = 0
    logits = torch.tensor([[[0.0, 5.0, 0.0], [0.0, 0.0, 5.0], [0.0, 5.0, 0.0]],
                           [[0.0, 5.0, 0.0], [0.0, 5.0, 0.0], [5.0, 0.0, 0.0]]])  # (B=2, T=3, V=3)
    target = torch.tensor([[1, 2, 2], [1, 1, pad]])
    out = sequence_loss(logits, target, padding_idx=pad, epsilon=0.0, ignore_prefix_size=1)
    assert out.ntokens == 3  # (2, 2), (1, 1); the pad and the prefix column are left out
    assert out.n_correct.item() == 2  # [0,1]: argmax 2 ok, [0,2]: argmax 1 wrong, [1,1]: ok
    p_ok = math.exp(5) / (math.exp(5) + 2)
    p_bad = 1 / (math.exp(5) + 2)
    assert out.loss.item() == pytest.approx(-2 * math.log(p_ok) - math.log(p_bad), rel=1e-5)
    assert out.nll_loss.item() == pytest.approx(out.loss.item())


def test_with_unix_model_embeddings():
    from unix import UnixConfig, UnixModel

    torch.manual_seed(0)
    cfg = UnixConfig.from_arch("unix_tiny", image_feature_dim=6, embed_proj_dim=8)
    model = UnixModel(cfg, vocab_size=20, padding_idx=1)
    feats = torch.randn(3, 4, 6)  # (B, N, C)
    tokens = torch.tensor([[5, 6, 7, 2], [5, 8, 2, 1], [5, 9, 10, 2]])  # (B, T)
    out = contrastive_loss(model.encode_image(features=feats), model.encode_text(tokens), model.logit_scale)
    out.loss.backward()
    assert out.logits.shape == (3, 3) and torch.isfinite(out.loss)
    assert model.logit_scale.grad is not None and model.image_head.weight.grad.abs().sum() > 0
    assert model.text_head.weight.grad.abs().sum() > 0
    neg = sample_hard_negatives(out.logits.detach(), generator=torch.Generator().manual_seed(0))
    image_idx, text_idx, labels = itm_pairs(neg)
    assert len(labels) == 9 and labels.sum() == 3

"""SCST loss against hand-computed values; reference pooling for the reward."""

import pytest
import torch

from unix.data.captions import group_references
from unix.losses import leave_one_out_baseline, scst_loss


def example():
    # 1 photo, K = 3 candidates of 2, 3 and 1 tokens (-9 sits on padding and must not count)
    lp = torch.tensor([[-1.0, -2.0, -9.0], [-0.5, -0.5, -1.0], [-4.0, -9.0, -9.0]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    rewards = torch.tensor([[1.0, 0.0, 0.5]])
    return lp, mask, rewards


def test_leave_one_out_baseline_is_the_mean_of_the_other_candidates():
    r = torch.tensor([[1.0, 0.0, 0.5], [2.0, 2.0, 2.0]])
    assert torch.allclose(leave_one_out_baseline(r), torch.tensor([[0.25, 0.75, 0.5], [2.0, 2.0, 2.0]]))
    with pytest.raises(ValueError, match="at least 2"):
        leave_one_out_baseline(torch.ones(4, 1))


def test_scst_loss_hand_computed():
    lp, mask, rewards = example()
    out = scst_loss(lp, mask, rewards)
    # advantages 1-0.25, 0-0.75, 0.5-0.5; sequence log-probs -3, -2, -4
    assert torch.allclose(out.advantage, torch.tensor([[0.75, -0.75, 0.0]]))
    assert torch.allclose(out.seq_logprob, torch.tensor([[-3.0, -2.0, -4.0]]))
    assert out.loss.item() == pytest.approx(-(0.75 * -3 + -0.75 * -2))  # 0.75
    out.loss.backward()
    # d loss / d logp = -advantage on real tokens, 0 on padding
    assert torch.allclose(lp.grad, torch.tensor([[-0.75, -0.75, 0.0], [0.75, 0.75, 0.75], [0.0, 0.0, 0.0]]))


def test_scst_loss_length_normalized_and_greedy_baseline():
    lp, mask, rewards = example()
    norm = scst_loss(lp, mask, rewards, length_normalize=True)
    assert norm.loss.item() == pytest.approx(-(0.75 * -1.5 + -0.75 * (-2.0 / 3)))  # 0.625
    greedy = scst_loss(lp, mask, rewards, baseline=torch.tensor([[0.5]]))
    assert torch.allclose(greedy.advantage, torch.tensor([[0.5, -0.5, 0.0]]))
    assert greedy.loss.item() == pytest.approx(-(0.5 * -3 + -0.5 * -2))  # 0.5
    with pytest.raises(ValueError, match="B\\*K rows"):
        scst_loss(lp[:2], mask[:2], rewards)


def test_group_references_pools_captions_per_photo_and_language():
    keys = [("a.jpg", 4), ("a.jpg", 4), ("a.jpg", 5), ("b.jpg", 4), ("a.jpg", 4)]
    refs = [["a dog"], ["a brown dog"], ["ein hund"], ["a cat"], ["a dog"]]
    group_of, groups = group_references(keys, refs)
    assert group_of == [0, 0, 1, 2, 0]
    assert groups == [["a dog", "a brown dog"], ["ein hund"], ["a cat"]]
    # an evaluation split (unique keys, all references in one sample) is unchanged
    assert group_references([0, 1], [["x", "y"], ["z"]]) == ([0, 1], [["x", "y"], ["z"]])
    with pytest.raises(ValueError, match="2 keys but 1"):
        group_references([0, 1], [["x"]])

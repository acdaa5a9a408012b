"""Recall@K of retrieval, checked by hand on small similarity matrices."""

import pytest
import torch

from unix.metrics.retrieval import first_positive_rank, image_text_recall, parallel_recall, recall_at_k


def test_first_positive_rank_by_hand():
    sim = torch.tensor([[0.9, 0.1, 0.5],    # positives {1}: order 0, 2, 1 -> rank 2
                        [0.2, 0.3, 0.8],    # positives {0, 2}: 2 is first -> rank 0
                        [0.5, 0.5, 0.1]])   # tie 0/1, positive {1}: stable order puts 0 first -> rank 1
    assert first_positive_rank(sim, [[1], [0, 2], [1]]).tolist() == [2, 0, 1]
    r = recall_at_k(sim, [[1], [0, 2], [1]], ks=(1, 2, 3))
    assert r == pytest.approx({"r1": 100 / 3, "r2": 200 / 3, "r3": 100.0})


def test_image_text_recall_by_hand():
    # 2 images, 3 texts: texts 0 and 1 describe image 0, text 2 describes image 1
    sim = torch.tensor([[0.1, 0.7, 0.9],    # image 0: best text 2 (wrong), then 1 (right) -> rank 1
                        [0.0, 0.2, 0.6]])   # image 1: best text 2 (right) -> rank 0
    r = image_text_recall(sim, torch.tensor([0, 0, 1]), ks=(1, 2))
    assert r["i2t_r1"] == pytest.approx(50.0) and r["i2t_r2"] == pytest.approx(100.0)
    # text 0: column (0.1, 0.0) -> image 0 first, right; text 1: (0.7, 0.2) right; text 2: (0.9, 0.6) -> image 0, wrong
    assert r["t2i_r1"] == pytest.approx(200 / 3) and r["t2i_r2"] == pytest.approx(100.0)


def test_parallel_recall_by_hand_and_bad_shapes():
    sim = torch.tensor([[1.0, 0.0, 0.0],
                        [0.0, 0.1, 0.9],
                        [0.0, 0.8, 0.2]])   # a->b: 0 right, 1 wrong (rank 1), 2 wrong (rank 1); b->a: columns
    r = parallel_recall(sim, ks=(1, 2), names=("en2de", "de2en"))
    assert r["en2de_r1"] == pytest.approx(100 / 3) and r["en2de_r2"] == pytest.approx(100.0)
    # column 1 (0.0, 0.1, 0.8): row 2 first, positive row 1 at rank 1; column 2 (0.0, 0.9, 0.2): row 1 first -> rank 1
    assert r["de2en_r1"] == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="square"):
        parallel_recall(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="no positive"):
        recall_at_k(torch.zeros(1, 2), [[]])


def test_itm_head_is_optional_and_scores_fused_pairs():
    from unix import UnixConfig, UnixModel

    plain = UnixModel(UnixConfig.from_arch("unix_tiny", image_feature_dim=8), vocab_size=20, padding_idx=1)
    assert plain.itm_head is None and "itm_head.weight" not in plain.state_dict()
    with pytest.raises(RuntimeError, match="itm_head=True"):
        plain.match_logits(torch.tensor([[4, 5, 2]]), image_features=torch.randn(1, 3, 8))
    model = UnixModel(UnixConfig.from_arch("unix_tiny", image_feature_dim=8, itm_head=True), 20, 1).eval()
    toks = torch.tensor([[4, 5, 2], [4, 2, 1]])  # second row padded
    feats = torch.randn(2, 3, 8)
    logits = model.match_logits(toks, image_features=feats)
    assert logits.shape == (2, 2)
    # padding does not change a row's score
    alone = model.match_logits(toks[1:, :2], image_features=feats[1:])
    assert torch.allclose(logits[1], alone[0], atol=1e-5)

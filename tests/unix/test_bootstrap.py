"""Bootstrap intervals of caption metrics (unix.metrics.bootstrap)."""

import numpy as np
import pytest

from tests.unix.test_caption_metrics import needs_java, random_corpus
from unix.metrics.bootstrap import bootstrap_bleu, bootstrap_mean, interval, resample_indices
from unix.metrics.caption import bleu_statistics, corpus_bleu


def test_resample_indices_are_seeded_draws_with_replacement():
    idx = resample_indices(7, 500, seed=3)
    assert idx.shape == (500, 7) and idx.min() == 0 and idx.max() == 6
    np.testing.assert_array_equal(idx, resample_indices(7, 500, seed=3))
    assert not np.array_equal(idx, resample_indices(7, 500, seed=4))
    assert any(len(set(row)) < 7 for row in idx)  # with replacement
    with pytest.raises(ValueError, match="at least one image"):
        resample_indices(0, 5)


def test_bootstrap_bleu_is_seeded_centred_and_paired():
    hyps, refs = random_corpus(60, seed=4)
    st = bleu_statistics(hyps, refs)
    draws = bootstrap_bleu(st, resamples=300, seed=1)
    full = 100 * corpus_bleu(st.sum(0))[3]
    assert draws.shape == (300,) and np.percentile(draws, 2.5) < full < np.percentile(draws, 97.5)
    np.testing.assert_array_equal(draws, bootstrap_bleu(st, resamples=300, seed=1))
    assert not np.array_equal(draws, bootstrap_bleu(st, resamples=300, seed=2))
    # each draw is the corpus BLEU of the images resample_indices drew
    first = resample_indices(60, 300, seed=1)[0]
    assert draws[0] == pytest.approx(100 * corpus_bleu(st[first].sum(0))[3], rel=1e-12)
    np.testing.assert_array_equal(bootstrap_bleu(st, 20, baseline=st), np.zeros(20))
    with pytest.raises(ValueError, match="baseline statistics"):
        bootstrap_bleu(st, 5, baseline=st[:10])


def test_bootstrap_mean_hand_computed_paired_and_interval():
    scores = np.array([0.1, 0.5, 0.9])
    idx = resample_indices(3, 4, seed=0)
    np.testing.assert_allclose(bootstrap_mean(scores, 4, seed=0), 100 * scores[idx].mean(axis=1))
    # paired: a system 0.2 better on every image is 20 (x100) better on every resample
    np.testing.assert_allclose(bootstrap_mean(scores + 0.2, 50, baseline=scores), np.full(50, 20.0))
    with pytest.raises(ValueError, match="baseline scores"):
        bootstrap_mean(scores, 5, baseline=scores[:2])
    assert interval(np.arange(101.0)) == pytest.approx((2.5, 97.5))
    assert interval(np.arange(101.0), level=0.5) == pytest.approx((25.0, 75.0))


@needs_java
def test_meteor_statistics_aggregate_is_pycocoevalcap_corpus_meteor_and_bootstraps(monkeypatch):
    from pycocoevalcap.meteor.meteor import Meteor

    from unix.metrics.bootstrap import bootstrap_meteor
    from unix.metrics.meteor import MeteorStatistics

    hyps, refs = random_corpus(12, seed=5)
    gts = {i: r for i, r in enumerate(refs)}
    direct = Meteor().compute_score(gts, {i: [h] for i, h in enumerate(hyps)})[0]
    meteor = MeteorStatistics()
    stats = meteor.statistics(hyps, refs)
    assert stats.shape[0] == 12 and meteor.corpus(stats) == pytest.approx(direct, abs=1e-9)
    assert 0.05 < direct < 0.9  # not a degenerate corpus
    # one caption's statistics score as pycocoevalcap's sentence METEOR
    per_caption = Meteor().compute_score(gts, {i: [h] for i, h in enumerate(hyps)})[1]
    np.testing.assert_allclose(meteor.scores(stats), per_caption, atol=1e-9)
    # captions matched whole in one chunk (the references themselves) add no chunk to a sum
    whole = np.flatnonzero([h in r for h, r in zip(hyps, refs)])
    assert len(whole) >= 2 and np.all(stats[whole, -3] == 1)
    assert meteor.summed(stats)[-3] == stats[:, -3].sum() - len(whole)
    assert meteor.exact_corpus(stats) == pytest.approx(direct, abs=1e-9)
    for idx in resample_indices(12, 20, seed=9):  # sums of resamples score as the jar aggregates them
        assert meteor.corpus(stats[idx]) == pytest.approx(meteor.exact_corpus(stats[idx]), abs=1e-12)
    # a resample with repeats is the corpus METEOR of that multiset of images, as pycocoevalcap scores it
    pick = [3, 3, 0, 7, 7, 7]
    dup = Meteor().compute_score({k: refs[i] for k, i in enumerate(pick)}, {k: [hyps[i]] for k, i in enumerate(pick)})
    assert meteor.corpus(stats[pick]) == pytest.approx(dup[0], abs=1e-9)
    draws = bootstrap_meteor(meteor, stats, resamples=30, seed=2)
    first = resample_indices(12, 30, seed=2)[0]
    assert draws[0] == pytest.approx(100 * meteor.corpus(stats[first]), abs=1e-9)
    assert draws.shape == (30,) and draws.std() > 0
    np.testing.assert_array_equal(bootstrap_meteor(meteor, stats, 10, baseline=stats), np.zeros(10))
    with pytest.raises(ValueError, match="with N >= 1"):
        meteor.corpus(stats[:0])
    meteor.check_summed(stats)
    # a plain sum (without the one-chunk rule) must be caught (monkeypatch restores summed afterwards)
    monkeypatch.setattr(MeteorStatistics, "summed", staticmethod(lambda st, idx=None: np.asarray(st).sum(axis=0)))
    with pytest.raises(RuntimeError, match="aggregates differently"):
        meteor.check_summed(stats)
    meteor.close()
    with pytest.raises(RuntimeError, match="closed"):
        meteor.statistics(hyps, refs)

"""Bootstrap intervals: seeded, cluster-aware, and close to the textbook interval where one exists."""

import numpy as np
import pytest

from tada_core import TadaError
from tada_core.evaluation.stats import bootstrap_ci, bootstrap_intervals


def test_interval_of_a_proportion_is_near_the_normal_approximation():
    hits = np.r_[np.ones(80), np.zeros(20)]                 # p = 0.8, n = 100: +-1.96 * 0.04
    lo, hi = bootstrap_ci(hits)
    assert lo < 0.8 < hi
    assert lo == pytest.approx(0.8 - 0.0784, abs=0.01) and hi == pytest.approx(0.8 + 0.0784, abs=0.01)
    # the level is honoured: the 50% interval is +-0.674 * 0.04 (a 90% one would be +-0.066)
    lo50, hi50 = bootstrap_ci(hits, level=0.5)
    assert lo50 == pytest.approx(0.8 - 0.027, abs=0.01) and hi50 == pytest.approx(0.8 + 0.027, abs=0.01)
    assert bootstrap_ci(hits) == (lo, hi)                      # seeded
    assert bootstrap_ci(np.ones(10)) == (1.0, 1.0)


def test_clusters_widen_the_interval_when_clips_of_a_prompt_agree():
    """Four prompts, 12 clips each, every clip of a prompt the same: only 4 independent draws."""
    values = np.repeat([1.0, 1.0, 0.0, 1.0], 12)
    groups = np.repeat(np.arange(4), 12)
    lo_c, hi_c = bootstrap_ci(values, groups)
    lo_i, hi_i = bootstrap_ci(values)
    assert hi_c - lo_c > 2 * (hi_i - lo_i)
    # a draw of 4 prompts has mean k / 4, k ~ Binomial(4, 3/4): P(k = 0) = 1/256 < 2.5% < P(k <= 1) = 13/256,
    # so the 2.5% quantile is 1/4
    assert lo_c == 0.25 and hi_c == 1.0
    # a draw pools its clips: clusters of 1 and 3 clips (values 0 and 1), a draw of one of each has mean 3/4 (the
    # mean of the two clusters' means would be 1/2); such draws are half of all, holding the 40% and 60% quantiles
    assert bootstrap_ci([0.0, 1.0, 1.0, 1.0], [0, 1, 1, 1], level=0.2) == (0.75, 0.75)


def test_nan_values_are_dropped_and_bad_groups_are_an_error():
    assert bootstrap_ci([np.nan, 1.0, 1.0]) == (1.0, 1.0)
    assert all(np.isnan(bootstrap_ci([np.nan])))
    with pytest.raises(TadaError, match="3 groups for 2 values"):
        bootstrap_ci([1.0, 2.0], groups=[0, 1, 2])


def test_vector_statistic_intervals_per_component():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(60, 2)) + np.array([0.0, 5.0])
    iv = bootstrap_intervals(lambda idx: rows[idx].mean(0), groups=np.arange(60), n_boot=300)
    assert iv.shape == (2, 2)
    assert iv[0, 0] < 0.3 and iv[0, 1] > -0.3 and iv[1, 0] > 4.4 and iv[1, 1] < 5.6
    assert iv[1, 0] > iv[0, 1]                                  # the two means are told apart
    # whole clusters are resampled, and the level is honoured: the cases of the cluster test above
    v = np.repeat([1.0, 1.0, 0.0, 1.0], 12)
    iv = bootstrap_intervals(lambda idx: v[idx].mean(keepdims=True), groups=np.repeat(np.arange(4), 12))
    assert iv.tolist() == [[0.25, 1.0]]
    v = np.array([0.0, 1.0, 1.0, 1.0])
    iv = bootstrap_intervals(lambda idx: v[idx].mean(keepdims=True), groups=[0, 1, 1, 1], level=0.2)
    assert iv.tolist() == [[0.75, 0.75]]

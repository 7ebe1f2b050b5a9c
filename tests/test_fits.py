"""The fit family: every kind reads out through one code path, draw by draw.

Each draw of a draw-based fit must read out exactly what a one-draw (MAP) fit of
that draw's weights reads out, and the ``(chain, draw)`` grouping must keep
each value with its own draw.
"""

import numpy as np
import pytest
from scipy.stats import norm

import psyphy_numpyro as pn

MODEL = pn.WPPM(input_dim=2, basis_degree=1, num_samples=16, estimator="reparam")
TRUTH = MODEL.sample_prior(1)
DATA = pn.simulate_experiment(MODEL, TRUTH, 40, key=2)
X = np.array([[0.1, -0.3], [0.5, 0.6], [-0.7, 0.2]])
# 2 chains x 3 draws, every draw different (scaled copies of the truth, then a shift)
SCALES = np.array([[0.6, 0.8, 1.0], [1.2, 1.4, 1.6]])
DRAWS = (SCALES[..., None, None, None, None] * np.asarray(TRUTH["W"])).astype(np.float32)
POST = pn.PosteriorFit(MODEL, DATA, DRAWS)


def _point(c, d):
    return pn.MAPFit.from_params(MODEL, {"W": DRAWS[c, d]}, DATA)


def test_each_draw_reads_out_as_its_own_point_fit():
    cov = POST.covariance(X)
    ll = POST.log_likelihood(key=3)
    p = POST.p_correct(X, X + 0.05, key=4)
    assert cov.shape == (6, 3, 2, 2) and ll.shape == (2, 3, 40) and p.shape == (6, 3)
    for c in range(2):
        for d in range(3):
            one = _point(c, d)
            k = 3 * c + d  # chains concatenated, chain-major
            np.testing.assert_allclose(cov[k], one.covariance(X), rtol=1e-6)
            np.testing.assert_allclose(ll[c, d], one.log_likelihood(key=3), rtol=1e-5,
                                       atol=1e-6)
            np.testing.assert_allclose(p[k], one.p_correct(X, X + 0.05, key=4), rtol=1e-5)
    # Sigma scales with the square of W (diag_term aside): the draws are not mixed up
    s2 = (SCALES.ravel() ** 2)[:, None]
    off = cov[:, :, 0, 1] / cov[-1, :, 0, 1]
    np.testing.assert_allclose(off, np.broadcast_to(s2 / s2[-1], off.shape), rtol=1e-4)


def test_point_fit_log_likelihood_is_the_bernoulli_log_likelihood_of_its_p_correct():
    """Independent route: the same estimator noise through ``WPPM.p_correct`` and a
    hand-written Bernoulli log-likelihood."""
    fit = _point(1, 0)
    m = MODEL.replace(estimator="table")  # deterministic: no noise to line up
    tab = pn.MAPFit.from_params(m, fit.params, DATA)
    p = np.asarray(m.p_correct(fit.params, DATA.ref, DATA.comparison, key=0), np.float64)
    y = DATA.responses
    expect = y * np.log(p) + (1 - y) * np.log1p(-p)
    np.testing.assert_allclose(tab.log_likelihood(), expect, rtol=1e-5, atol=1e-6)
    assert tab.log_likelihood().shape == (40,)


def test_point_rule_drops_the_draw_axes_and_nothing_else():
    one = pn.PosteriorFit(MODEL, DATA, DRAWS[:1, :1])
    fit = _point(0, 0)
    np.testing.assert_array_equal(fit.covariance(X), one.covariance(X)[0])
    np.testing.assert_array_equal(fit.sqrt_covariance(X), one.sqrt_covariance(X)[0])
    np.testing.assert_array_equal(fit.log_likelihood(key=1), one.log_likelihood(key=1)[0, 0])
    np.testing.assert_array_equal(fit.posterior_predictive(key=1),
                                  one.posterior_predictive(key=1)[0, 0])
    for out in (fit.covariance(X), POST.covariance(X), fit.p_correct(X, X, key=0)):
        assert isinstance(out, np.ndarray)  # public read-outs are numpy
    th_one, th_fit = (pn.thresholds(f, X[:1], num_directions=4, num_samples=64)
                      for f in (one, fit))
    np.testing.assert_array_equal(th_fit.lengths, th_one.lengths[0])


def test_posterior_predictive_follows_each_draws_p_correct():
    """Replicated responses of a draw with p near 1 are mostly 1, near chance mostly 0.
    A grouped-by-chain mix-up would put the wrong draw's responses in a slot."""
    ref = np.zeros((400, 2))
    comp = np.tile([[0.6, 0.0]], (400, 1))
    data = pn.TrialData.from_arrays(ref, comp, np.ones(400))
    tiny = np.zeros(MODEL.weight_shape, np.float32)
    big = tiny.copy()
    tiny[0, 0, 0, 0] = tiny[0, 0, 1, 1] = 0.02   # threshold << 0.6: p ~ 1
    big[0, 0, 0, 0] = big[0, 0, 1, 1] = 3.0      # threshold >> 0.6: p ~ 1/3
    draws = np.stack([np.stack([tiny, big]), np.stack([big, tiny])])  # (2, 2, ...)
    fit = pn.PosteriorFit(MODEL.replace(estimator="table"), data, draws)
    rate = fit.posterior_predictive(key=0).mean(-1)
    assert rate.shape == (2, 2)
    assert rate[0, 0] > 0.95 and rate[1, 1] > 0.95
    assert abs(rate[0, 1] - 1 / 3) < 0.08 and abs(rate[1, 0] - 1 / 3) < 0.08


def test_log_likelihood_prior_part_is_not_in_the_read_out():
    """``log_likelihood`` is the likelihood only: for the table estimator it equals the
    NumPyro log joint minus an independent normal log prior."""
    from functools import partial

    import jax.numpy as jnp
    from numpyro.infer.util import log_density

    m = MODEL.replace(estimator="table")
    W = DRAWS[0, 2]
    fit = pn.MAPFit.from_params(m, {"W": W}, DATA)
    noise = np.zeros((40, 2, 2, 0), np.float32)
    joint = log_density(partial(pn.wppm_model, config=m, noise=noise),
                        (jnp.asarray(DATA.stimuli, jnp.float32), jnp.asarray(DATA.responses)),
                        {}, {"W": W})[0]
    prior = norm.logpdf(W, scale=m.prior_std()).sum()
    assert float(joint) - prior == pytest.approx(float(fit.log_likelihood().sum()), rel=1e-4)


def test_a_model_params_pair_is_read_as_a_point_fit():
    th_pair = pn.thresholds((MODEL, {"W": DRAWS[0, 0]}), X[:1], num_directions=4,
                            num_samples=64)
    th_fit = pn.thresholds(_point(0, 0), X[:1], num_directions=4, num_samples=64)
    np.testing.assert_array_equal(th_pair.lengths, th_fit.lengths)
    with pytest.raises(TypeError,
                       match="model must be a psyphy_numpyro.WPPM or a psyphy WPPM, got object"):
        pn.thresholds((object(), {"W": DRAWS[0, 0]}), X[:1])

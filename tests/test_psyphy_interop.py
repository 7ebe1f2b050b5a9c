"""psyphy in one call: ``WPPM.from_psyphy``, psyphy models and parameters in the fits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro import mcmc

psyphy = pytest.importorskip("psyphy")
from psyphy import WPPM, GaussianNoise, MAPPosterior, OddityTask, Prior, StudentTNoise  # noqa: E402
from psyphy.model.likelihood import OddityTaskConfig  # noqa: E402


def _theirs(d, degree=2, extra=1, scale=4e-3, decay=0.4, diag=1e-4, num_samples=16,
            bandwidth=1e-2, noise=None):
    prior = Prior(input_dim=d, basis_degree=degree, extra_embedding_dims=extra,
                  variance_scale=scale, decay_rate=decay)
    task = OddityTask(OddityTaskConfig(num_samples=num_samples, bandwidth=bandwidth))
    return WPPM(prior, task, GaussianNoise() if noise is None else noise, input_dim=d,
                extra_dims=extra, diag_term=diag)


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pn.TrialData(rng.uniform(-0.6, 0.6, (n, 2, 2)), rng.integers(0, 2, n))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_from_psyphy_takes_every_setting(d):
    theirs = _theirs(d, degree=3, extra=2, scale=1e-3, decay=0.3, diag=2e-5, num_samples=200,
                     bandwidth=5e-3)
    ours = pn.WPPM.from_psyphy(theirs)
    assert ours == pn.WPPM(input_dim=d, basis_degree=3, extra_dims=2, variance_scale=1e-3,
                           decay_rate=0.3, diag_term=2e-5, num_samples=200, bandwidth=5e-3)
    assert ours.weight_shape == theirs.init_params(jax.random.PRNGKey(0))["W"].shape
    assert ours.embedding_dim == theirs.embedding_dim
    # our own settings can be added or override psyphy's
    fast = pn.WPPM.from_psyphy(theirs, num_samples=64, estimator="reparam", lapse_rate="learn")
    assert (fast.num_samples, fast.estimator, fast.lapse_rate) == (64, "reparam", "learn")
    assert fast.basis_degree == 3
    # psyphy's own defaults (its prior and task) convert too
    plain = WPPM(Prior(input_dim=d), OddityTask(), GaussianNoise(), input_dim=d)
    assert pn.WPPM.from_psyphy(plain) == pn.WPPM(input_dim=d, diag_term=1e-6,
                                                 num_samples=1000)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_from_psyphy_matches_psyphys_covariance_field(d):
    """Same weights (a draw from psyphy's prior), same field: psyphy's ``local_covariance``
    and ours agree to 1e-6 (relative, float64 on both sides)."""
    theirs = _theirs(d, degree=3, extra=1, diag=3e-5)
    ours = pn.WPPM.from_psyphy(theirs)

    def their_field(params, x):
        return np.asarray(jax.jit(jax.vmap(lambda xi: theirs.local_covariance(params, xi)))(x))

    with jax.enable_x64(True):
        params = theirs.init_params(jax.random.PRNGKey(d))
        x = jax.random.uniform(jax.random.PRNGKey(10 + d), (25, d), minval=-1, maxval=1,
                               dtype=jnp.float64)
        assert np.abs(np.asarray(x)).max() <= 1  # psyphy checks eagerly only, so check here
        expect = their_field(params, x)
        got = np.asarray(ours.covariance(params, x))
        assert got.dtype == expect.dtype == np.float64
        np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-6 * np.abs(expect).max())
        # and a fit made of psyphy's parameters and model reads the same field
        fit = pn.MAPFit.from_params(theirs, params)
        np.testing.assert_allclose(np.asarray(fit.covariance(x)), expect, rtol=1e-6,
                                   atol=1e-6 * np.abs(expect).max())
    # in float32 to float32 rounding
    params32 = {"W": jnp.asarray(params["W"], jnp.float32)}
    x32 = jnp.asarray(x, jnp.float32)
    ref = their_field(params32, x32)
    np.testing.assert_allclose(np.asarray(ours.covariance(params32, x32)), ref, rtol=1e-5,
                               atol=1e-5 * np.abs(ref).max())


def test_fit_map_accepts_a_psyphy_model_and_psyphy_parameters():
    theirs = _theirs(2, degree=1)
    ours = pn.WPPM.from_psyphy(theirs)
    data = _data()
    start = theirs.init_params(jax.random.PRNGKey(3))  # psyphy's parameter dict
    posterior = MAPPosterior(start, theirs)             # psyphy's MAP result
    for init in (start, posterior):  # the second call reuses the first one's programs
        fit = pn.fit_map(data, theirs, steps=2, num_restarts=1, eval_samples=16,
                         init=init, progress=False)
        assert fit.model == ours
        np.testing.assert_array_equal(np.asarray(fit.init_params["W"]), np.asarray(start["W"]))


def test_many_observer_fit_accepts_a_psyphy_model():
    theirs = _theirs(2, degree=1)
    many = pn.fit_map([_data(), _data(seed=1)], theirs, steps=2, num_restarts=1,
                      eval_samples=16, progress=False, init=MAPPosterior(
                          theirs.init_params(jax.random.PRNGKey(3)), theirs))
    assert [f.model for f in many] == [pn.WPPM.from_psyphy(theirs)] * 2


def test_mcmc_start_and_map_problem_take_psyphy_objects():
    theirs = _theirs(2, degree=1)
    ours = pn.WPPM.from_psyphy(theirs)
    start = theirs.init_params(jax.random.PRNGKey(5))
    posterior = MAPPosterior(start, theirs)
    mcmc._check_init(posterior, ours)
    fit, params = mcmc._start(posterior, _data(), ours, theirs, 1, 0, False)
    assert fit is None
    np.testing.assert_array_equal(np.asarray(params["W"]), np.asarray(start["W"]))
    assert pn.MAP(theirs).model == ours


def test_what_cannot_be_converted_is_named():
    with pytest.raises(TypeError, match="from_psyphy needs a psyphy WPPM, got WPPM"):
        pn.WPPM.from_psyphy(pn.WPPM())
    with pytest.raises(ValueError, match="has StudentTNoise; psyphy_numpyro models Gaussian"):
        pn.WPPM.from_psyphy(_theirs(2, noise=StudentTNoise()))
    bad = _theirs(2)
    bad.extra_dims = 2
    with pytest.raises(ValueError, match="extra_dims=2 but its prior extra_embedding_dims=1"):
        pn.WPPM.from_psyphy(bad)
    with pytest.raises(TypeError, match="model must be a psyphy_numpyro.WPPM or a psyphy WPPM, "
                                        "got object"):
        pn.fit_map(_data(), object())
    # psyphy's WPPM(variance_scale=...) is not what its prior uses: said, the prior's is taken
    odd = WPPM(Prior(input_dim=2, variance_scale=1e-3), OddityTask(), GaussianNoise(),
               input_dim=2, variance_scale=5e-3)
    with pytest.warns(UserWarning, match="has variance_scale=0.005 but its Prior has 0.001"):
        assert pn.WPPM.from_psyphy(odd).variance_scale == 1e-3
    # a psyphy model of the wrong size is caught like ours
    with pytest.raises(ValueError, match="stimulus dimension 2 but the model has input_dim=3"):
        pn.fit_map(_data(), _theirs(3))
    with pytest.raises(ValueError, match=r"init\['W'\] has shape \(3, 3, 2, 3\), the "
                                         r"model expects \(2, 2, 2, 3\)"):
        pn.fit_map(_data(), _theirs(2, degree=1),
                   init=MAPPosterior(_theirs(2).init_params(jax.random.PRNGKey(0)),
                                            None))

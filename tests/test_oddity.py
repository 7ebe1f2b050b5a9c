"""p(correct) estimators: agreement with independent Monte Carlo, psyphy and theory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro import estimators, oddity
from psyphy_numpyro import noise as noise_mod

ESTIMATORS = ["cv", "reparam", "mc"]


def _trials(model, params, d, radii, seed=0):
    """References and comparisons at Mahalanobis radii (easy / threshold / hard trials)."""
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-0.6, 0.6, (len(radii), d))
    u = rng.standard_normal((len(radii), d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    L = np.linalg.cholesky(np.asarray(model.covariance(params, ref), dtype=np.float64))
    comp = np.clip(ref + np.asarray(radii)[:, None] * np.einsum("nij,nj->ni", L, u), -1, 1)
    return ref, comp


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_p_correct_agrees_with_independent_mc(d, estimator, ref_mc):
    model = pn.WPPM(input_dim=d, basis_degree=2, estimator=estimator, num_samples=20000)
    params = model.sample_prior(jax.random.PRNGKey(3 + d))
    radii = [0.0, 1.0, 2.5, 4.0, 7.0]  # chance, hard, threshold, easy, very easy
    ref, comp = _trials(model, params, d, radii)
    p = np.asarray(model.p_correct(params, ref, comp, key=jax.random.PRNGKey(1)))
    Sr = np.asarray(model.covariance(params, ref), dtype=np.float64)
    Sc = np.asarray(model.covariance(params, comp), dtype=np.float64)
    for i in range(len(radii)):
        expect, se = ref_mc(Sr[i], Sc[i], ref[i], comp[i], model.bandwidth, seed=i)
        # both sides have Monte Carlo error of about se; 5 combined sigmas + float32 slack
        tol = 5 * np.sqrt(2) * se + 2e-3
        assert abs(p[i] - expect) < tol, (d, estimator, radii[i], p[i], expect, tol)
    assert np.all((p > 0) & (p < 1))


def test_p_correct_agrees_with_psyphy_simulation():
    from psyphy import WPPM, GaussianNoise, OddityTask, Prior
    from psyphy.model.likelihood import OddityTaskConfig

    model = pn.WPPM(input_dim=2, num_samples=20000)
    params = model.sample_prior(jax.random.PRNGKey(0))
    theirs = WPPM(Prior(input_dim=2), OddityTask(OddityTaskConfig(num_samples=20000,
                                                                  bandwidth=1e-2)),
                  GaussianNoise(), input_dim=2, diag_term=model.diag_term)
    ref, comp = _trials(model, params, 2, [0.0, 1.5, 2.8, 5.0])
    ours = np.asarray(model.p_correct(params, ref, comp, key=0))
    for i in range(len(ref)):
        p_theirs = float(theirs.predict_prob(params, (jnp.asarray(ref[i]), jnp.asarray(comp[i]))))
        assert abs(ours[i] - p_theirs) < 0.012, (i, ours[i], p_theirs)


def test_one_dimensional_triangle_values():
    """Equal-covariance 1-D oddity reproduces the classical triangle-test values."""
    q, f = oddity.equal_cov_table(1, 1e-4)
    dprime = np.sqrt(q)
    for dp, expected in [(1.0, 0.4180), (2.0, 0.6048), (3.0, 0.7814)]:
        assert abs(np.interp(dp, dprime, f) - expected) < 3e-3
    q2, f2 = oddity.equal_cov_table(2, 1e-4)
    assert abs(f2[0] - 1 / 3) < 2e-3
    for dp, expected in [(1.0, 0.402), (2.0, 0.566), (3.0, 0.743), (4.0, 0.874)]:
        assert abs(np.interp(dp**2, q2, f2) - expected) < 4e-3


@pytest.mark.parametrize("d", [1, 2, pytest.param(3, marks=pytest.mark.slow)])
def test_cv_rms_error_is_at_most_a_third_of_plain_mc_at_equal_samples(d):
    """SPEC target (at most half), with margin, in every dimension. The
    reference is the independent "reparam" estimator with 2**18 samples."""
    model = pn.WPPM(input_dim=d, basis_degree=3)
    params = model.sample_prior(jax.random.PRNGKey(7))
    rng = np.random.default_rng(1)
    radii = rng.uniform(0.0, 5.0, 40)
    ref, comp = _trials(model, params, d, radii, seed=2)
    exact = np.mean([
        np.asarray(model.replace(estimator="reparam", num_samples=2**15).p_correct(
            params, ref, comp, key=1000 + k), dtype=np.float64)
        for k in range(8)
    ], 0)
    errs = {}
    for est in ["mc", "cv"]:
        m = model.replace(estimator=est, num_samples=128)
        reps = np.stack([np.asarray(m.p_correct(params, ref, comp, key=k)) for k in range(20)])
        errs[est] = float(np.sqrt(np.mean((reps - exact) ** 2)))
    assert errs["cv"] <= errs["mc"] / 3, errs


@pytest.mark.parametrize("d", [1, 2, 3])
def test_radial_integration_identity(d):
    """E_T[F_chi(rho*(h T))] = E_rho[sigmoid((B - k rho - m rho^2) / h)], both by quadrature:
    the closed-form radial step of "cv" integrates the smoothed decision exactly."""
    import scipy.special as sp
    from scipy import integrate, stats

    h = 0.05
    for B, k, m in [(1.3, 0.4, 0.9), (0.2, 1.5, 0.3), (-0.1, 0.2, 1.0), (3.0, 0.0, 0.5)]:
        def smoothed(rho, B=B, k=k, m=m):
            return sp.expit((B - k * rho - m * rho**2) / h) * stats.chi.pdf(rho, d)

        def radial(t, B=B, k=k, m=m):
            p = oddity._radial_p(np.array(B), np.array(k), m, np.array(h * t), d, np, sp)
            return float(p) * stats.logistic.pdf(t)

        lhs = integrate.quad(radial, -40, 40, limit=200)[0]
        rhs = integrate.quad(smoothed, 0, 20, limit=200)[0]
        assert abs(lhs - rhs) < 1e-7, (d, B, k, m, lhs, rhs)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_radial_step_derivative_is_correct_and_finite(d):
    """The closed-form JVP of the root-and-CDF step against finite differences
    (forward and reverse mode, float64), with a scalar m and shared y as the fast
    path passes them; degenerate k = m = 0 stays finite."""
    from jax.test_util import check_grads

    with jax.enable_x64(True):
        rng = np.random.default_rng(d)
        B = jnp.asarray(rng.uniform(0.3, 3.0, (4, 6)))
        k = jnp.asarray(rng.uniform(0.1, 2.0, (4, 6)))
        m = jnp.asarray(rng.uniform(0.2, 2.0, (4, 6)))
        y = jnp.asarray(0.01 * rng.logistic(size=6))

        def fn(B, k, m):
            return oddity._radial_p_jax(B, k, m, y, d)

        check_grads(fn, (B, k, m), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)
        g = jax.grad(lambda m: jnp.sum(oddity._radial_p_jax(B, k, m, y, d)))(jnp.asarray(1.5))
        assert np.isfinite(float(g))
        zero = jnp.zeros((4, 6))
        grads = jax.grad(lambda B, k, m: jnp.sum(oddity._radial_p_jax(B, k, m, y, d)),
                         (0, 1, 2))(B, zero, zero)
        assert all(np.all(np.isfinite(np.asarray(x))) for x in grads)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_radius_gives_a_logistic_variate_independent_of_direction(d):
    from scipy import stats

    z = np.random.default_rng(d).standard_normal((d, 20000))
    v, t = oddity._radial_split(jnp.asarray(z), jnp, jax.scipy.special)
    t = np.asarray(t, dtype=np.float64)
    assert stats.kstest(t, "logistic").pvalue > 1e-3
    np.testing.assert_allclose(np.linalg.norm(np.asarray(v), axis=0), 1.0, atol=1e-5)
    # independence: uncorrelated with the sign (1-D) or the squared first coordinate of v
    v1 = np.asarray(v, dtype=np.float64)[0]
    assert abs(np.corrcoef(t, v1 if d == 1 else v1**2)[0, 1]) < 0.03


@pytest.mark.parametrize("d", [1, 2, 3])
def test_rotated_noise_is_standard_normal_per_trial(d):
    noise = estimators.get("cv").draw_noise(jax.random.PRNGKey(0), (3,), 4096, d, 1)
    assert noise.shape == (3, 2, d, 4096)
    for t in range(3):
        for k in range(2):
            z = np.asarray(noise[t, k].T, dtype=np.float64)
            np.testing.assert_allclose(z.mean(0), 0, atol=0.08)
            np.testing.assert_allclose(np.cov(z.T).reshape(d, d), np.eye(d), atol=0.08)
    Q = np.asarray(noise_mod.random_orthogonal(jax.random.PRNGKey(1), (50,), d), dtype=np.float64)
    np.testing.assert_allclose(Q @ np.swapaxes(Q, -1, -2), np.broadcast_to(np.eye(d), Q.shape),
                               atol=1e-5)


@pytest.mark.parametrize("d", [pytest.param(1, marks=pytest.mark.slow), 2,
                               pytest.param(3, marks=pytest.mark.slow)])
@pytest.mark.parametrize(
    "control_variate", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_factored_noise_equals_materialized_noise(d, control_variate):
    """The fast path (per-trial maps folded into the coefficients) computes the
    same estimate as pushing the materialised per-trial normals through."""
    model = pn.WPPM(input_dim=d, basis_degree=2)
    params = model.sample_prior(d)
    ref, comp = _trials(model, params, d, [0.0, 0.5, 1.5, 2.5, 4.0, 8.0] * 2, seed=d)
    ref, comp = ref.reshape(2, 6, d), comp.reshape(2, 6, d)  # a 2-D batch of trials
    Sr = model.covariance(params, ref)
    Sc = model.covariance(params, comp)
    shared = noise_mod.draw_shared_noise(jax.random.PRNGKey(2), (2, 6), 256, d)
    dense = estimators.get("cv").draw_noise(jax.random.PRNGKey(2), (2, 6), 256, d, 1)
    np.testing.assert_array_equal(shared.materialize(), dense)
    kw = dict(control_variate=control_variate)
    fast = oddity.p_correct_from_cov(Sr, Sc, ref, comp, shared, model.bandwidth, **kw)
    slow = oddity.p_correct_from_cov(Sr, Sc, ref, comp, dense, model.bandwidth, **kw)
    assert fast.shape == (2, 6)
    np.testing.assert_allclose(fast, slow, atol=2e-5)
    # the validated entry point draws the factored form from the same key
    via_key = model.p_correct(params, ref, comp, key=3)
    via_noise = model.p_correct(params, ref, comp, noise=model.draw_noise(3, 12).reshape(
        (2, 6) + model.noise_shape()))
    np.testing.assert_allclose(via_key, via_noise, atol=2e-5)


def test_p_correct_needs_key_or_noise_and_is_deterministic_with_noise():
    model = pn.WPPM(input_dim=2)
    params = model.sample_prior(0)
    ref = jnp.zeros((4, 2))
    comp = jnp.full((4, 2), 0.1)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        model.p_correct(params, ref, comp)
    noise = model.draw_noise(5, 4)
    a = model.p_correct(params, ref, comp, noise=noise)
    b = model.p_correct(params, ref, comp, noise=noise)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, model.p_correct(params, ref, comp, key=6))

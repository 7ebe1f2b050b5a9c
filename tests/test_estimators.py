"""Estimators as objects: what each one knows, and that the string names route to them."""

import jax
import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro import estimators
from psyphy_numpyro.estimators import surrogate_model, surrogate_noise
from psyphy_numpyro.noise import SharedNoise

M = pn.WPPM(input_dim=2, basis_degree=1, num_samples=32)
W = np.asarray(M.sample_prior(0)["W"])
REF = np.array([[0.1, -0.2], [0.4, 0.3], [-0.5, 0.0]])
COMP = REF + np.array([[0.05, 0.0], [0.0, 0.08], [0.06, 0.06]])


def test_names_route_to_objects_with_the_documented_properties():
    assert estimators.NAMES == ("cv", "reparam", "mc", "table")
    table = {e: (estimators.get(e).has_fixed_form, estimators.get(e).smooth_when_fixed)
             for e in estimators.NAMES}
    assert table == {"cv": (True, True), "reparam": (True, False), "mc": (False, False),
                     "table": (True, True)}
    for name in estimators.NAMES:
        est = M.replace(estimator=name).estimator_object
        assert est.name == name and est is estimators.get(name)
        assert hash(est) == hash(estimators.get(name))  # a static argument of compiled code
    with pytest.raises(ValueError, match=r"estimator must be one of \('cv', 'reparam', 'mc', "
                                         r"'table'\), got 'qmc'"):
        estimators.get("qmc")


@pytest.mark.parametrize("name", ["cv", "reparam", "mc", "table"])
def test_noise_shapes_and_forms(name):
    est = estimators.get(name)
    shape = est.noise_shape(32, 2, 1)
    assert shape == {"mc": (3, 5, 32), "table": (2, 2, 0)}.get(name, (2, 2, 32))
    dense = est.draw_noise(jax.random.PRNGKey(1), (4,), 32, 2, 1)
    assert dense.shape == (4,) + shape
    fresh = est.fresh_noise(jax.random.PRNGKey(1), (4,), 32, 2, 1)
    if name in ("cv", "reparam"):
        assert isinstance(fresh, SharedNoise)
        np.testing.assert_array_equal(fresh.materialize(), dense)
    else:
        np.testing.assert_array_equal(fresh, dense)
    if name in ("cv", "reparam", "mc"):  # standard normal, and a new key gives new noise
        big = np.asarray(est.draw_noise(jax.random.PRNGKey(2), (64,), 256, 2, 1), np.float64)
        # (the 4-normal noise shares one rotated block across trials: loose bounds)
        assert abs(big.mean()) < 0.08 and abs(big.std() - 1) < 0.08
        other = est.draw_noise(jax.random.PRNGKey(3), (4,), 32, 2, 1)
        assert not np.allclose(other, dense)
    if est.has_fixed_form:
        fixed = est.fixed_noise(3, 5, 32, 2, 1)
        assert fixed.shape == (5,) + shape
        if name != "table":
            assert not np.allclose(fixed, est.fixed_noise(4, 5, 32, 2, 1))
    else:
        with pytest.raises(ValueError, match='estimator "mc" has no fixed-noise likelihood'):
            est.fixed_noise(3, 5, 32, 2, 1)


def test_table_is_the_equal_covariance_surrogate_and_exact_for_equal_covariances():
    """The table estimator ignores noise and equals the zero-sample path of the 4-normal
    estimators; for Sigma_r == Sigma_c it agrees with a 2**14-sample "cv" estimate."""
    table = M.replace(estimator="table")
    p = np.asarray(table.p_correct({"W": W}, REF, COMP, key=0))
    p_other_key = np.asarray(table.p_correct({"W": W}, REF, COMP, key=9))
    np.testing.assert_array_equal(p, p_other_key)
    # 1-D, constant field: the classical triangle-test values at d' = 1, 2, 3
    m1 = pn.WPPM(input_dim=1, basis_degree=0, extra_dims=0, diag_term=0.0, bandwidth=1e-4,
                 estimator="table")
    sd = 0.1
    ref = np.zeros((3, 1))
    comp = ref + sd * np.array([[1.0], [2.0], [3.0]])
    p1 = np.asarray(m1.p_correct({"W": np.full((1, 1, 1), sd)}, ref, comp, key=0))
    np.testing.assert_allclose(p1, [0.418, 0.605, 0.781], atol=4e-3)
    # equal covariances: a field constant in x (degree-0 weights only)
    W0 = np.zeros_like(W)
    W0[0, 0] = W[0, 0] * 5
    p_tab = np.asarray(table.p_correct({"W": W0}, REF, COMP, key=0))
    p_cv = np.asarray(M.p_correct({"W": W0}, REF, COMP, key=0, num_samples=2**14))
    np.testing.assert_allclose(p_tab, p_cv, atol=4e-3)
    assert np.all((p_tab > 1 / 3) & (p_tab < 1))


def test_surrogate_model_and_noise():
    assert surrogate_model(M, 0).estimator == "table"
    assert surrogate_model(M, 16) is M
    assert surrogate_model(M, 16, 0.1) == M.replace(bandwidth=0.1)
    assert surrogate_noise(M, 7, 0, 0).shape == (7, 2, 2, 0)
    z = np.asarray(surrogate_noise(M, 7, 64, 0))
    assert z.shape == (7, 2, 2, 64)
    # quasi-random normals: each trial's sample mean is far closer to 0 than iid noise's
    assert np.abs(z.mean(-1)).max() < 0.1  # iid: sd 0.125 per mean, max of 28 ~ 0.3
    with pytest.raises(ValueError, match='estimator "mc" has no fixed-noise likelihood'):
        surrogate_noise(M.replace(estimator="mc"), 7, 16, 0)

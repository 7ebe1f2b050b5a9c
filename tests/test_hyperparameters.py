"""Hyperparameters from the data: the isotropic pre-fit, WPPM.for_data, fit_map's default."""

import warnings

import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro.hyperparameters import (
    choose_hyperparameters,
    isotropic_scales,
    threshold_constant,
    threshold_floor,
)


def isotropic_data(s, n=3000, seed=0, d=2):
    """An isotropic observer Sigma = s^2 I, comparisons at Mahalanobis radii 0.5-4."""
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-0.7, 0.7, (n, d))
    u = rng.standard_normal((n, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    comp = np.clip(ref + (s * rng.uniform(0.5, 4.0, n))[:, None] * u, -1, 1)
    return pn.simulate_observer(lambda x: np.broadcast_to(s**2 * np.eye(d), x.shape[:-1] + (d, d)),
                                ref, comp, key=seed)


@pytest.mark.parametrize("s", [0.002, 0.02, 0.12])
def test_isotropic_prefit_recovers_the_scale(s):
    _, scales, counts = isotropic_scales(isotropic_data(s))
    assert counts.sum() == 3000 and len(counts) == 16
    np.testing.assert_allclose(np.median(scales), s, rtol=0.12)


def test_threshold_constant_and_floor():
    k = threshold_constant(2)
    assert 2.3 < k < 2.8  # the 2.55 sqrt(diag_term) of the issue
    model = pn.WPPM(diag_term=1e-4)
    assert threshold_floor(model) == pytest.approx(k * 1e-2)


@pytest.mark.parametrize("s", [0.002, 0.05])
def test_choice_scales_the_prior_to_the_observer(s):
    data = isotropic_data(s)
    choice = choose_hyperparameters(data, pn.WPPM())
    k = threshold_constant(2)
    assert choice.typical_threshold == pytest.approx(k * s, rel=0.15)
    assert choice.threshold_floor == pytest.approx(0.25 * choice.smallest_threshold, rel=1e-6)
    # the prior's typical Sigma_ii over the domain is s^2 (checked by prior draws)
    m = choice.model
    grid = np.random.default_rng(1).uniform(-1, 1, (200, 2))
    draws = [np.asarray(m.covariance(m.sample_prior(i), grid)) for i in range(200)]
    typical = np.mean([np.mean(np.diagonal(S, axis1=-2, axis2=-1)) for S in draws])
    assert typical == pytest.approx(s**2, rel=0.2)
    text = "\n".join(choice.describe())
    assert "variance_scale=" in text and "threshold floor" in text


def test_for_data_keeps_what_the_user_sets():
    data = isotropic_data(0.01)
    m = pn.WPPM.for_data(data, diag_term=3e-5, lapse_rate="learn", basis_degree=3)
    assert m.diag_term == 3e-5 and m.learns_lapse and m.basis_degree == 3
    # the prior scale depends on the basis (its mean variance over the domain)
    assert m.variance_scale == choose_hyperparameters(
        data, pn.WPPM(basis_degree=3)).model.variance_scale
    with pytest.raises(ValueError, match="fixed names unknown hyperparameters"):
        choose_hyperparameters(data, pn.WPPM(), fixed=("decay_rate",))


@pytest.mark.slow
def test_a_given_model_is_kept_with_a_warning_about_its_floor():
    data = isotropic_data(0.002, n=600)
    model = pn.WPPM(basis_degree=1, num_samples=8)
    with pytest.warns(RuntimeWarning, match=r"model.diag_term=0.0001 puts a floor of 0.02"):
        fit = pn.fit_map(data, model, steps=5, num_restarts=1)
    assert fit.model is model and fit.hyperparameters is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a floor below the data's thresholds: silent
        pn.fit_map(data, model.replace(diag_term=1e-8), steps=5, num_restarts=1)


@pytest.mark.slow
def test_fit_map_without_a_model_reports_its_choice(tmp_path):
    data = isotropic_data(0.01, n=600)
    fit = pn.fit_map(data, steps=5, num_restarts=1)
    expect = choose_hyperparameters(data, pn.WPPM())
    assert fit.model == expect.model
    h = fit.hyperparameters
    assert h["variance_scale"] == expect.model.variance_scale
    assert len(h["cell_thresholds"]) == len(expect.thresholds)
    assert any("hyperparameters from the data" in line for line in fit.describe())
    fit.save(tmp_path / "f.nc")
    assert pn.load_fit(tmp_path / "f.nc").hyperparameters == h


# -- observers of three scales that are not WPPMs ----------------------------
def _observer(scale):
    k = threshold_constant(2)

    def cov(x):
        x = np.asarray(x, np.float64)
        s = np.exp(0.7 * np.sin(1.3 * x[..., 0] + 0.4) * np.cos(1.1 * x[..., 1] - 0.3))
        rho = 0.45 + 0.35 * (x[..., 1] + 1) / 2
        th = 0.9 * x[..., 0] + 0.6 * x[..., 1]
        c, sn = np.cos(th), np.sin(th)
        R = np.stack([np.stack([c, -sn], -1), np.stack([sn, c], -1)], -2)
        D = np.stack([np.ones_like(rho), rho**2], -1)
        return np.einsum("...ij,...j,...kj->...ik", R, D, R) * (
            s[..., None, None] * scale / (k * 0.75)) ** 2

    return cov


def _design(cov, n, seed):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-0.8, 0.8, (n, 2))
    ang = rng.uniform(0, 2 * np.pi, n)
    u = np.stack([np.cos(ang), np.sin(ang)], -1)
    m = np.sqrt(np.einsum("ni,nij,nj->n", u, np.linalg.inv(cov(ref)), u))
    comp = np.clip(ref + (rng.uniform(1, 4, n) / m)[:, None] * u, -1, 1)
    return pn.simulate_observer(cov, ref, comp, key=seed)


def _true_thresholds(cov, refs, dirs):
    k = threshold_constant(2)
    r = np.repeat(refs, len(dirs), 0)
    u = np.tile(dirs, (len(refs), 1))
    t = k / np.sqrt(np.einsum("ni,nij,nj->n", u, np.linalg.inv(cov(r)), u))
    for _ in range(8):
        S = (2 / 3) * cov(r) + (1 / 3) * cov(np.clip(r + t[:, None] * u, -1, 1))
        t = k / np.sqrt(np.einsum("ni,nij,nj->n", u, np.linalg.inv(S), u))
    return t.reshape(len(refs), len(dirs))


@pytest.mark.slow
@pytest.mark.parametrize("scale", [0.005, 0.05, 0.3])
def test_default_route_fits_observers_of_every_scale(scale):
    """fit_map(data) with no hand-tuning reads back thresholds of non-WPPM observers whose
    thresholds are ~0.005, ~0.05 or ~0.3: median error under 20%, r(log) > 0.85."""
    cov = _observer(scale)
    data = _design(cov, 3000, int(scale * 1000))
    fit = pn.fit_map(data, steps=1500)
    g = np.linspace(-0.6, 0.6, 4)
    refs = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    dirs = pn.readout.unit_directions(2, 8)
    truth = _true_thresholds(cov, refs, dirs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        est = pn.thresholds(fit, refs, directions=dirs).lengths
    ok = np.isfinite(est)
    assert ok.mean() > 0.9
    ratio = np.log(est[ok] / truth[ok])
    assert np.exp(np.median(np.abs(ratio))) - 1 < 0.2, np.median(np.abs(ratio))
    assert np.corrcoef(np.log(est[ok]), np.log(truth[ok]))[0, 1] > 0.85


def test_prefit_in_blocks_equals_one_pass(monkeypatch):
    """The pre-fit's likelihood grid is built in blocks of trials (bounded memory); the
    scales equal those of one pass over all trials."""
    import psyphy_numpyro.hyperparameters as hp

    data = isotropic_data(0.03, n=9000, seed=4)
    blocks = hp.isotropic_scales(data)
    monkeypatch.setattr(hp, "_BLOCK", 10**6)
    np.testing.assert_array_equal(blocks[1], hp.isotropic_scales(data)[1])

"""ArviZ 0.x and >= 1.0: ``fit.to_arviz()`` works with the installed ArviZ's functions.

The same file runs in the main environment (ArviZ 0.x, ``InferenceData``) and in CI's
second environment on Python 3.12 with ArviZ >= 1.0 (``xarray.DataTree``; ``make
test-arviz1``). Fits are cheap: posterior draws scattered around a known field
(:class:`~psyphy_numpyro.PosteriorFit`), no sampler.
"""

import os
import warnings

import arviz as az
import matplotlib
import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro import arviz_io
from psyphy_numpyro.arviz_io import default_grid, expand_sigma, sigma_entries

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MODEL = pn.WPPM(input_dim=2, basis_degree=1, num_samples=32)
ARVIZ_1 = int(az.__version__.split(".")[0]) >= 1
DATA_DIR = os.path.join(os.path.dirname(__file__), "data")


def _draws(W, scale, shape, seed):
    rng = np.random.default_rng(seed)
    W = np.asarray(W)
    return (W + scale * rng.standard_normal(shape + W.shape)).astype(W.dtype)


@pytest.fixture(scope="module")
def setup():
    truth = MODEL.sample_prior(2)
    rng = np.random.default_rng(0)
    ref = rng.uniform(-0.9, 0.9, (150, 2))
    comp = pn.comparisons_at_radius(MODEL, truth, ref, rng.uniform(0.5, 2.5, 150), key=0)
    data = pn.simulate_trials(MODEL, truth, ref, comp, key=1)
    # draws near the generating field (1/8 of the spread of W), and near twice that field
    near = pn.PosteriorFit(MODEL, data, _draws(truth["W"], 0.005, (2, 40), 3))
    far = pn.PosteriorFit(MODEL, data, _draws(2.0 * np.asarray(truth["W"]), 0.005, (2, 40), 4))
    return data, near, far


def _elpd(loo):
    """(elpd, effective number of parameters) of ``az.loo`` on either ArviZ."""
    if hasattr(loo, "elpd_loo"):
        return float(loo.elpd_loo), float(loo.p_loo)
    return float(loo.elpd), float(loo.p)


def test_container_and_layout(setup):
    data, fit, _ = setup
    idata = fit.to_arviz()
    if ARVIZ_1:
        import xarray as xr

        assert isinstance(idata, xr.DataTree)
    else:
        assert isinstance(idata, az.InferenceData)
    groups = set(arviz_io.group_names(idata))
    assert {"posterior", "unconstrained_posterior", "log_likelihood", "observed_data",
            "constant_data"} <= groups
    post = arviz_io.group(idata, "posterior")
    assert set(post.data_vars) == {"Sigma"}  # identified quantities only
    W = arviz_io.group(idata, "unconstrained_posterior")["W"]
    assert W.dims == ("chain", "draw", "basis_0", "basis_1", "stimulus_dim", "embedding_dim")
    np.testing.assert_array_equal(W.values, fit.draws)
    # Sigma: the unique entries (no duplicate off-diagonal), equal to the fit's covariance
    S = post["Sigma"]
    assert S.dims == ("chain", "draw", "grid_point", "sigma_entry")
    assert list(S["sigma_entry"].values) == ["xx", "xy", "yy"]
    grid = arviz_io.group(idata, "constant_data")["grid"].values
    np.testing.assert_allclose(grid, default_grid(2))
    full = expand_sigma(S.values).reshape((-1,) + grid.shape[:1] + (2, 2))
    np.testing.assert_allclose(full, fit.covariance(grid), rtol=1e-5, atol=1e-9)
    assert arviz_io.group(idata, "log_likelihood")["y"].shape == (2, 40, len(data))


def test_sigma_entries_and_expand():
    assert sigma_entries(1) == ["xx"]
    assert sigma_entries(3) == ["xx", "xy", "xz", "yy", "yz", "zz"]
    A = np.array([[2.0, 0.5, 0.1], [0.5, 3.0, -0.2], [0.1, -0.2, 4.0]])
    iu = np.triu_indices(3)
    np.testing.assert_array_equal(expand_sigma(A[iu][None]), A[None])
    with pytest.raises(ValueError, match="unique covariance entries"):
        expand_sigma(np.zeros(4))


@pytest.mark.parametrize("d", [1, 3])
def test_sigma_entries_and_lapse_rate_in_1d_and_3d(d):
    """d (d + 1) / 2 entries per grid point, and a learned lapse rate, in the default summary."""
    model = pn.WPPM(input_dim=d, basis_degree=1, lapse_rate="learn")
    rng = np.random.default_rng(d)
    data = pn.TrialData(rng.uniform(-0.5, 0.5, (10, 2, d)), rng.integers(0, 2, 10))
    lapse = rng.uniform(0.01, 0.05, (2, 30))
    fit = pn.PosteriorFit(model, data, _draws(model.sample_prior(d)["W"], 0.005, (2, 30), d),
                          lapse=lapse)
    grid = default_grid(d, 3)
    idata = fit.to_arviz(log_likelihood=False, grid=grid)
    post = arviz_io.group(idata, "posterior")
    assert set(post.data_vars) == {"Sigma", "lapse_rate"}
    assert list(post["Sigma"]["sigma_entry"].values) == sigma_entries(d)
    np.testing.assert_allclose(expand_sigma(post["Sigma"].values).reshape((60, len(grid), d, d)),
                               fit.covariance(grid), rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(post["lapse_rate"].values, lapse)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.summary(idata)
    assert len(table) == len(grid) * d * (d + 1) // 2 + 1
    assert "lapse_rate" in table.index and not any(str(i).startswith("W") for i in table.index)
    assert abs(float(table.loc["lapse_rate", "mean"]) - lapse.mean()) < 1e-3


def test_default_summary_has_no_W_rows(setup):
    _, fit, _ = setup
    idata = fit.to_arviz(log_likelihood=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.summary(idata)
    labels = [str(i) for i in table.index]
    assert not any(label.startswith("W") for label in labels)
    G = len(default_grid(2))
    assert len(labels) == 3 * G  # xx, xy, yy per grid point
    assert "Sigma[12, xy]" in labels and "Sigma[12, yx]" not in labels
    # sensible values: the means are those of the draws, independent draws mix well
    S = fit.covariance(default_grid(2))[:, 12]
    assert abs(float(table.loc["Sigma[12, xy]", "mean"]) - S[:, 0, 1].mean()) < 1e-3 + 0.01 * abs(
        S[:, 0, 1].mean())
    rhat = table["r_hat"].astype(float)
    assert rhat.max() < 1.1
    # fit.summary() gives the same rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert list(fit.summary().index) == list(table.index)


def test_loo_and_compare_rank_the_generating_field_first(setup):
    _, near, far = setup
    ia, ib = near.to_arviz(), far.to_arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        elpd_a, p_a = _elpd(az.loo(ia))
        elpd_b, _ = _elpd(az.loo(ib))
        table = az.compare({"near": ia, "far": ib})
    ll = near.log_likelihood()
    lppd = float(np.sum(np.log(np.mean(np.exp(ll), axis=(0, 1)))))
    assert np.isfinite(elpd_a) and elpd_a <= lppd + 1e-6 and 0.0 <= p_a < 10.0
    assert elpd_a > elpd_b
    assert list(table.index) == ["near", "far"]


def test_plot_trace_draws_sigma(setup):
    _, fit, _ = setup
    idata = fit.to_arviz(log_likelihood=False)
    plt.close("all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = az.plot_trace(idata, var_names=["Sigma"], coords={"grid_point": [12]})
    if ARVIZ_1:
        fig = out.viz["figure"].item()  # a PlotCollection
    else:
        fig = np.asarray(out).ravel()[0].figure  # a grid of matplotlib axes
    lines = sum(len(ax.get_lines()) for ax in fig.axes)
    assert len(fig.axes) >= 2 and lines >= 2 * 3  # 3 entries, 2 chains at least
    plt.close("all")


def test_save_load_round_trip(setup, tmp_path):
    _, fit, _ = setup
    path = tmp_path / "fit.nc"
    fit.save(path)
    raw = arviz_io.read_netcdf(str(path))  # an ordinary ArviZ file of this ArviZ
    assert "W" not in arviz_io.group(raw, "posterior").data_vars
    back = pn.load_fit(path)
    assert type(back) is pn.PosteriorFit
    np.testing.assert_array_equal(back.draws, fit.draws)
    a, b = fit.to_arviz(), back.to_arviz()
    assert set(arviz_io.group_names(a)) == set(arviz_io.group_names(b))
    for g in arviz_io.group_names(a):
        ga, gb = arviz_io.group(a, g), arviz_io.group(b, g)
        for name, var in ga.data_vars.items():
            np.testing.assert_array_equal(gb[name].values, var.values)


def test_format1_files_load_with_the_same_readouts():
    """Files written with W in ``posterior`` (format 1) load under either ArviZ."""
    exp = np.load(os.path.join(DATA_DIR, "format1_expected.npz"))
    fit = pn.load_fit(os.path.join(DATA_DIR, "format1_map.nc"))
    mc = pn.load_fit(os.path.join(DATA_DIR, "format1_mcmc.nc"))
    np.testing.assert_allclose(fit.covariance(exp["grid"]), exp["map_cov"], rtol=1e-6,
                               atol=1e-9)
    np.testing.assert_allclose(mc.covariance(exp["grid"]), exp["mc_cov"], rtol=1e-6, atol=1e-9)
    assert mc.divergences == int(exp["div"])
    idata = mc.to_arviz(log_likelihood=False)
    assert "W" not in arviz_io.group(idata, "posterior").data_vars


def test_binned_ppc_reads_either_container(setup):
    """The plotting module's psychometric check takes ``to_arviz()`` output of either ArviZ."""
    from psyphy_numpyro.plotting import binned_ppc

    data, fit, _ = setup
    idata = fit.to_arviz(log_likelihood=False, posterior_predictive=True)
    ppc = binned_ppc(idata, by="distance")
    direct = binned_ppc(fit, by="distance")  # the same bins: observed proportions agree
    assert int(np.sum(ppc.counts)) == len(data) == int(np.sum(direct.counts))
    np.testing.assert_allclose(ppc.observed, direct.observed)


def test_summary_reads_at_a_glance(setup, recwarn, caplog):
    """Sigma to 3 significant figures (ArviZ's 2 decimals show 1e-4 as 0.0), grid points as
    coordinates, and a one-chain fit summarised without warnings or r_hat NaN."""
    data, near, _ = setup
    idata = near.to_arviz(log_likelihood=False)
    S = arviz_io.group(idata, "posterior")["Sigma"]
    grid = default_grid(2)
    if not arviz_io.uses_datatree():  # ArviZ 1.x: the positions are in constant_data only
        np.testing.assert_array_equal(S["grid_x"].values, grid[:, 0])
        np.testing.assert_array_equal(S["grid_y"].values, grid[:, 1])
    const = arviz_io.group(idata, "constant_data")["grid"].values
    np.testing.assert_array_equal(const, grid)
    one = pn.PosteriorFit(MODEL, data, near.draws[:1])  # one chain, as Laplace and bootstrap
    table = one.summary()
    assert len(recwarn) == 0, [str(w.message) for w in recwarn]
    assert not [r for r in caplog.records if "hape" in r.getMessage()]
    assert not {"r_hat", "ess_bulk", "ess_tail"} & set(table.columns)
    assert list(table.columns[:2]) == ["grid_x", "grid_y"]
    assert table.loc["Sigma[12, xy]", "grid_x"] == 0.0 == table.loc["Sigma[12, xy]", "grid_y"]
    assert table.loc["Sigma[0, yy]", "grid_x"] == -0.8
    means = arviz_io.group(one.to_arviz(log_likelihood=False), "posterior")["Sigma"].mean(
        ("chain", "draw")).values.ravel()
    shown = table["mean"].to_numpy()
    np.testing.assert_allclose(shown, means, rtol=5e-3)  # 3 significant figures ...
    np.testing.assert_array_equal(shown, arviz_io.significant(shown))  # ... and no more
    assert np.min(np.abs(shown)) < 1e-3  # entries that ArviZ's default shows as 0.0 or 0.001
    # a point fit: its value only; several chains: ArviZ's diagnostics stay
    point = pn.MAPFit.from_params(MODEL, {"W": near.draws[0, 0]}, data)
    assert list(point.summary().columns) == ["grid_x", "grid_y", "mean"]
    assert len(recwarn) == 0, [str(w.message) for w in recwarn]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert "r_hat" in near.summary().columns
        assert near.summary(round_to=2)["mean"].equals(az.summary(idata, round_to=2)["mean"])


def test_significant_figures():
    x = np.array([0.000123456, -0.0456789, 12345.6, 0.0, np.nan, 1.0])
    np.testing.assert_array_equal(arviz_io.significant(x),
                                  [0.000123, -0.0457, 12300.0, 0.0, np.nan, 1.0])

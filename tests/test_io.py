"""fit.save / pn.load_fit: exact read-outs after a round trip, atomic writes, clear errors."""

import dataclasses
import json
import os
import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr

import psyphy_numpyro as pn
from psyphy_numpyro import fitfile, persist
from psyphy_numpyro.arviz_io import default_grid
from psyphy_numpyro.plotting import grid_points

# "reparam" compiles several times faster than the default "cv" estimator; the
# persistence layer does not depend on the estimator.
MODEL = pn.WPPM(input_dim=2, basis_degree=1, num_samples=16, estimator="reparam")
GRID = grid_points(3)
REFS = default_grid(2, 2)  # the CLI test's references: compiled read-outs are shared


@pytest.fixture(scope="module")
def fits():
    truth = MODEL.sample_prior(2)
    rng = np.random.default_rng(0)
    ref = rng.uniform(-0.9, 0.9, (200, 2))
    comp = pn.comparisons_at_radius(MODEL, truth, ref, rng.uniform(1.0, 4.0, 200), key=0)
    data = pn.simulate_trials(MODEL, truth, ref, comp, key=1)
    fit = pn.fit_map(data, MODEL, steps=100, num_restarts=1, progress=False, eval_samples=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        laplace = pn.fit_laplace(data, MODEL, init=fit, num_draws=20, hessian_samples=8)
        mcmc = pn.fit_mcmc(data, MODEL, init=fit, num_warmup=10, num_draws=20, num_chains=1,
                           surrogate_samples=8, surrogate_bandwidth=0.2, max_tree_depth=3,
                           seed=1, progress=False)
    # equal draw counts (1 chain x 20) share the compiled draw-based read-outs
    return {"map": fit, "laplace": laplace, "mcmc": mcmc}


def _same_map(a, b):
    assert type(a) is type(b) is pn.MAPFit
    for f in dataclasses.fields(pn.MAPFit):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name in ("params", "init_params"):
            assert np.asarray(y["W"]).dtype == np.asarray(x["W"]).dtype
            np.testing.assert_array_equal(np.asarray(y["W"]), np.asarray(x["W"]))
        elif f.name in ("loss_history", "restart_histories", "restart_losses"):
            assert y.dtype == x.dtype
            np.testing.assert_array_equal(y, x)
        elif f.name in ("model", "data", "best_restart", "seed", "timings", "hyperparameters",
                        "final_nll"):
            assert y == x, f.name
        else:  # a new field must be handled by persist.py and checked here
            pytest.fail(f"MAPFit.{f.name} is not covered by the persistence test")


def _same_fields(fit, back):
    """Every dataclass field of the fit is restored (or documented as not saved)."""
    assert type(back) is type(fit)
    if isinstance(fit, pn.MAPFit):
        _same_map(fit, back)
        return
    for f in dataclasses.fields(type(fit)):
        x, y = getattr(fit, f.name), getattr(back, f.name)
        if f.name in ("model", "data", "num_floored", "curvature", "surrogate"):
            assert y == x, f.name
        elif f.name in ("draws", "mean", "cov"):
            assert y.dtype == x.dtype and y.shape == x.shape, f.name
            np.testing.assert_array_equal(y, x)
        elif f.name == "lapse":  # draws of a learned lapse rate (tests/test_lapse.py)
            assert x is None and y is None
        elif f.name in ("map_fit", "init_fit"):
            _same_map(x, y)
        elif f.name == "mcmc":
            assert x is not None and y is None  # the NumPyro object cannot be saved
        elif f.name == "sample_stats":
            stats = fit._sample_stats()
            assert set(y) == set(stats)
            for k, v in stats.items():
                np.testing.assert_array_equal(y[k], v)
        else:
            pytest.fail(f"{type(fit).__name__}.{f.name} is not covered by the persistence test")


@pytest.mark.parametrize("kind", ["map", "laplace", "mcmc"])
def test_round_trip_reproduces_every_readout(fits, kind, tmp_path):
    fit = fits[kind]
    path = tmp_path / f"{kind}.nc"
    fit.save(path)
    back = pn.load_fit(path)
    _same_fields(fit, back)

    eq = np.testing.assert_array_equal
    eq(np.asarray(back.covariance(GRID)), np.asarray(fit.covariance(GRID)))
    comp = np.clip(GRID + 0.1, -1, 1)
    eq(np.asarray(back.p_correct(GRID, comp, key=3)), np.asarray(fit.p_correct(GRID, comp, key=3)))
    eq(np.asarray(back.log_likelihood(key=5)), np.asarray(fit.log_likelihood(key=5)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rays without a crossing
        a = pn.thresholds(fit, REFS, target=0.6, num_directions=8)
        b = pn.thresholds(back, REFS, target=0.6, num_directions=8)
    for name in ("lengths", "points", "ellipses", "median", "interval"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None)
        if x is not None:
            eq(y, x)
    t = np.linspace(0.0, 0.3, 4)
    eq(pn.psychometric(back, [0.1, 0.2], [1.0, 0.0], t, num_samples=64),
       pn.psychometric(fit, [0.1, 0.2], [1.0, 0.0], t, num_samples=64))

    ia, ib = fit.to_arviz(), back.to_arviz()
    assert set(ia.groups()) == set(ib.groups())
    for group in ia.groups():
        for name, var in getattr(ia, group).data_vars.items():
            eq(getattr(ib, group)[name].values, var.values)
    if kind != "map":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert back.summary().equals(fit.summary())
    if kind == "mcmc":
        assert back.divergences == fit.divergences


def test_file_is_plain_arviz_with_version_and_config(fits, tmp_path):
    fit = fits["map"]
    path = tmp_path / "fit.nc"
    fit.save(str(path))
    idata = az.from_netcdf(str(path))
    for group in ("posterior", "unconstrained_posterior", "log_likelihood", "observed_data",
                  "constant_data", "sample_stats"):
        assert group in idata.groups()
    np.testing.assert_array_equal(idata.unconstrained_posterior["W"].values[0, 0],
                                  np.asarray(fit.params["W"]))
    attrs = idata["psyphy_numpyro"].attrs
    assert attrs["psyphy_numpyro_format"] == persist.FORMAT_VERSION
    assert attrs["psyphy_numpyro_version"] == pn.__version__
    assert attrs["fit_kind"] == "map"
    cfg = json.loads(attrs["model_config"])
    assert cfg == {f.name: list(v) if isinstance(v := getattr(MODEL, f.name), tuple) else v
                   for f in dataclasses.fields(pn.WPPM)}
    # a bare PosteriorFit with two chains round-trips in chain layout, and saving over an
    # existing file replaces it
    draws = fits["laplace"].draws.reshape((2, 10) + MODEL.weight_shape)
    post = pn.PosteriorFit(model=MODEL, data=fit.data, draws=draws)
    post.save(path, log_likelihood=False)
    back = pn.load_fit(path)
    assert type(back) is pn.PosteriorFit
    assert back.draws.shape == (2, 10) + MODEL.weight_shape
    np.testing.assert_array_equal(back.draws, post.draws)
    np.testing.assert_array_equal(back.covariance(GRID), post.covariance(GRID))
    assert back.data == fit.data and back.model == MODEL


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_save_keeps_previous_file(fits, tmp_path, monkeypatch, error):
    fit = fits["map"]
    path = tmp_path / "fit.nc"
    fit.save(path)
    before = path.read_bytes()
    mode = os.stat(path).st_mode

    def broken_write(self, filename, *args, **kwargs):
        with open(filename, "wb") as fh:
            fh.write(b"\x89HDF\r\n\x1a\n half a file")
        raise error

    monkeypatch.setattr(az.InferenceData, "to_netcdf", broken_write)
    with pytest.raises(type(error)):
        dataclasses.replace(fit, seed=99).save(path)
    assert path.read_bytes() == before
    assert os.stat(path).st_mode == mode
    assert os.listdir(tmp_path) == ["fit.nc"]  # no temporary file left behind
    # a first save that fails leaves nothing at all
    with pytest.raises(type(error)):
        fit.save(tmp_path / "new.nc")
    assert os.listdir(tmp_path) == ["fit.nc"]
    monkeypatch.undo()
    assert pn.load_fit(path).seed == fit.seed


def test_load_errors_name_the_file(fits, tmp_path):
    missing = tmp_path / "missing_fit.nc"
    with pytest.raises(FileNotFoundError, match="missing_fit.nc"):
        pn.load_fit(missing)
    text = tmp_path / "trials.csv"
    fits["map"].data.to_csv(text)
    with pytest.raises(ValueError, match="trials.csv: not a NetCDF fit file"):
        pn.load_fit(text)
    plain = tmp_path / "plain_idata.nc"
    fits["map"].to_arviz().to_netcdf(str(plain))
    with pytest.raises(ValueError, match="plain_idata.nc: not a psyphy_numpyro fit file"):
        pn.load_fit(plain)
    # a file from a future format version is refused with both versions named
    future = tmp_path / "future.nc"
    fits["map"].save(tmp_path / "current.nc")
    idata = az.from_netcdf(str(tmp_path / "current.nc"))
    idata["psyphy_numpyro"].attrs["psyphy_numpyro_format"] = persist.FORMAT_VERSION + 1
    idata.to_netcdf(str(future))
    v = persist.FORMAT_VERSION
    with pytest.raises(ValueError, match=rf"future.nc: fit-file format {v + 1} .* format <= {v}"):
        pn.load_fit(future)
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        fits["map"].save(tmp_path / "no_such_dir" / "fit.nc")
    with pytest.raises(TypeError, match="save_fit needs a MAPFit"):
        persist.save_fit(object(), tmp_path / "x.nc")


DATA_DIR = os.path.join(os.path.dirname(__file__), "data")


def test_files_written_by_the_previous_layout_still_load():
    """Fit files written by psyphy_numpyro before the one-family redesign (format 1,
    ``tests/data/format1_*.nc``) load into the same classes with the same read-outs."""
    exp = np.load(os.path.join(DATA_DIR, "format1_expected.npz"))
    grid = exp["grid"]
    fit = pn.load_fit(os.path.join(DATA_DIR, "format1_map.nc"))
    lap = pn.load_fit(os.path.join(DATA_DIR, "format1_laplace.nc"))
    mc = pn.load_fit(os.path.join(DATA_DIR, "format1_mcmc.nc"))
    assert (type(fit), type(lap), type(mc)) == (pn.MAPFit, pn.LaplaceFit, pn.MCMCFit)
    np.testing.assert_allclose(fit.covariance(grid), exp["map_cov"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(lap.covariance(grid), exp["lap_cov"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(mc.covariance(grid), exp["mc_cov"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fit.log_likelihood(), exp["map_ll"], rtol=1e-5, atol=1e-6)
    assert fit.seed == int(exp["seed"]) and fit.best_restart == int(exp["best"])
    assert fit.restart_histories.shape == (2, 30) and len(fit.restart_losses) == 2
    assert lap.num_floored == int(exp["floored"]) and lap.map_fit.seed == fit.seed
    np.testing.assert_array_equal(np.asarray(lap.map_fit.params["W"]),
                                  np.asarray(fit.params["W"]))
    assert mc.divergences == int(exp["div"]) and mc.init_fit is not None


def test_format2_files_from_before_the_svi_map_load_with_identical_read_outs():
    """Fit files (format 2) written by main before MAP moved onto NumPyro's SVI (commit
    c92beab; ``tests/data/format2_*.nc``, made by a MAP, a bootstrap and a Laplace fit of
    120 trials) load with the read-outs that code computed."""
    exp = np.load(os.path.join(DATA_DIR, "format2_expected.npz"))
    grid = exp["grid"]
    fit = pn.load_fit(os.path.join(DATA_DIR, "format2_map.nc"))
    boot = pn.load_fit(os.path.join(DATA_DIR, "format2_bootstrap.nc"))
    lap = pn.load_fit(os.path.join(DATA_DIR, "format2_laplace.nc"))
    assert (type(fit), type(boot), type(lap)) == (pn.MAPFit, pn.BootstrapFit, pn.LaplaceFit)
    np.testing.assert_allclose(fit.covariance(grid), exp["map_cov"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(boot.covariance(grid), exp["boot_cov"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(lap.covariance(grid), exp["lap_cov"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fit.log_likelihood(), exp["map_ll"], rtol=1e-5, atol=1e-6)
    with pytest.warns(RuntimeWarning, match="never reach"):
        th = pn.thresholds(fit, grid[:3], num_directions=8)
    np.testing.assert_allclose(np.asarray(th.lengths), exp["th"], rtol=1e-5, equal_nan=True)
    assert fit.seed == int(exp["seed"]) and fit.best_restart == int(exp["best"])


def test_data_metadata_is_saved_and_restored(tmp_path):
    """Per-trial metadata (text, numbers with NaN, integers, booleans) goes into the fit file
    and comes back, in the main data and in a nested MAP fit's own data; files without
    metadata load with none (tests/data/format1_*.nc above)."""
    rng = np.random.default_rng(1)
    n = 12
    meta = {"subject": np.array(["s01", "s02"] * (n // 2)), "session": np.arange(n) // 4,
            "rt": np.where(np.arange(n) % 5, rng.uniform(0.3, 1.0, n), np.nan),
            "catch": np.arange(n) % 3 == 0, "odd name / with: [chars]": np.full(n, "x")}
    data = pn.TrialData(rng.uniform(-0.5, 0.5, (n, 2, 2)), rng.integers(0, 2, n), metadata=meta)
    fit = pn.fit_map(data, MODEL, steps=2, num_restarts=1, eval_samples=16, progress=False)
    path = tmp_path / "meta.nc"
    fit.save(path, log_likelihood=False)
    back = pn.load_fit(path)
    assert back.data == data and list(back.data.metadata) == list(meta)
    for name, column in meta.items():
        assert back.data.metadata[name].dtype.kind == column.dtype.kind, name
    # a fit whose nested MAP fit has other data (same trials, other metadata) keeps both
    other = pn.TrialData(data.stimuli, data.responses, metadata={"block": np.arange(n)})
    post = pn.PosteriorFit(model=MODEL, data=data, draws=np.asarray(fit.params["W"])[None, None])
    out, attrs = {}, {}
    dataclasses.replace(fit, data=other).save_nested("map_", post, out, attrs)
    assert "map_metadata_0" in out and json.loads(attrs["map_metadata_columns"]) == ["block"]
    group = xr.Dataset({k: xr.Variable(*v) for k, v in out.items()}, attrs=attrs)
    src = fitfile.FitSource(None, group, MODEL, data, None, str(path))
    assert pn.MAPFit.restore_nested(src, "map_").data == other
    plain = pn.fit_map(pn.TrialData(data.stimuli, data.responses), MODEL, steps=2,
                       num_restarts=1, eval_samples=16, progress=False)
    plain.save(path, log_likelihood=False)
    assert pn.load_fit(path).data.metadata == {}

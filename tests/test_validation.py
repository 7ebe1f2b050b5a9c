"""Bad input at every public boundary: a ValueError/TypeError naming the problem, raised
before anything is compiled; failing fits raise FitDivergedError with advice, never NaN."""

import warnings
from types import SimpleNamespace

import matplotlib
import numpy as np
import optax
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro import (
    field,
    fitbase,
    laplace,
    mcmc,
    plotting,
    psychometric_curve,
    readout,
    wppm,
)
from psyphy_numpyro.inference import engine
from psyphy_numpyro.validation import as_key, check_array, check_real

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

M2 = pn.WPPM(input_dim=2, basis_degree=1, num_samples=8)
M1 = pn.WPPM(input_dim=1, basis_degree=1, num_samples=8)
NAN, INF = float("nan"), float("inf")


def _data(n=12, d=2, seed=0):
    rng = np.random.default_rng(seed)
    return pn.TrialData(rng.uniform(-0.8, 0.8, (n, 2, d)), rng.integers(0, 2, n))


DATA = _data()
PARAMS = {"W": np.asarray(M2.sample_prior(0)["W"])}


def _mapfit(params=None, model_=M2, data=DATA):
    """A hand-made MAPFit (no optimisation)."""
    return pn.MAPFit(
        params=params if params is not None else PARAMS,
        model=model_,
        data=data,
        loss_history=np.zeros(1),
        restart_histories=np.zeros((1, 1)),
        restart_losses=np.zeros(1),
        best_restart=0,
    )


def _posterior(draws=None):
    W = np.asarray(PARAMS["W"])
    return pn.PosteriorFit(M2, DATA, W[None, None].repeat(3, 1) if draws is None else draws)


@pytest.fixture
def no_compile(monkeypatch):
    """Every compiled entry point fails if reached: checks must come first."""

    def reached(*args, **kwargs):
        raise AssertionError("input checks let bad input through to compiled code")

    targets = [
        (engine, "_compiled"),
        (mcmc, "MCMC"),
        (mcmc, "NUTS"),
        (mcmc, "fit_map"),
        (mcmc, "surrogate_noise"),
        (laplace, "fit_map"),
        (laplace, "surrogate_noise"),
        (laplace, "_curvature"),
        (wppm, "_p_correct_jit"),
        (wppm, "pointwise_log_likelihood"),
        (field, "covariance_field"),
        (field, "sqrt_field"),
        (psychometric_curve, "_curves"),
        (psychometric_curve, "fixed_noise"),
        (readout, "_lengths_draws"),
        (readout, "fixed_noise"),
        (fitbase, "_cov_draws"),
        (fitbase, "_sqrt_draws"),
        (fitbase, "_p_correct_draws"),
        (fitbase, "_loglik_draws"),
    ]
    for mod, name in targets:
        assert hasattr(mod, name), f"{mod.__name__}.{name} was renamed: update this guard"
        monkeypatch.setattr(mod, name, reached)


def _raises(exc, match, fn, *args, **kwargs):
    with pytest.raises(exc, match=match) as info:
        fn(*args, **kwargs)
    assert not isinstance(info.value, AssertionError)
    return info.value


# --- TrialData ------------------------------------------------------------------------------
def _bad_stimuli(where, value):
    s = np.array(DATA.stimuli)
    s[where] = value
    return s


@pytest.mark.parametrize(
    "stimuli, responses, exc, match",
    [
        # out of range: names the trial, the role, the coordinate, the range; suggests rescaling
        (_bad_stimuli((5, 1, 0), 1.5), DATA.responses, ValueError,
         r"outside the domain \[-1, 1\]: first at trial 5 \(comparison, coordinate 0\) = 1\.5 "
         r"\(1 of 24 points outside; observed range \[-?[\d.]+, 1\.5\]\); rescale"),
        (_bad_stimuli((3, 0, 1), -7.0), DATA.responses, ValueError,
         r"trial 3 \(reference, coordinate 1\) = -7.*rescale the stimuli into \[-1, 1\]"),
        (_bad_stimuli((4, 0, 1), NAN), DATA.responses, ValueError,
         r"stimuli contains NaN or Inf \(1 of 48 values; first at trial 4 \(reference, "
         r"coordinate 1\): nan\)"),
        (_bad_stimuli((2, 1, 1), -INF), DATA.responses, ValueError,
         r"NaN or Inf .*trial 2 \(comparison, coordinate 1\): -inf"),
        (DATA.stimuli + 0j, DATA.responses, TypeError, "stimuli must be real, got complex"),
        ([[[0.0, 0.0], [0.1]]], [1], ValueError, r"stimuli must be a rectangular numeric array"),
        (DATA.stimuli.astype(bool), DATA.responses, TypeError, "stimuli must be a numeric array"),
        (DATA.stimuli, DATA.responses + 0.5, ValueError,
         r"responses must be 0 or 1; entry 0 is 0\.5 \(12 of 12 entries are not 0/1; "
         r"1 = correct"),
        (DATA.stimuli, np.where(DATA.responses, NAN, 0.0), ValueError,
         r"responses must be 0 or 1; entry \d+ is nan"),
        (DATA.stimuli, -DATA.responses, ValueError, r"must be 0 or 1; entry \d+ is -1"),
        (DATA.stimuli, 1, ValueError, r"responses must have shape \(N,\) or \(N, 1\), got \(\)"),
        (DATA.stimuli, [[0, 1]] * 12, ValueError, r"shape \(N,\) or \(N, 1\), got \(12, 2\)"),
        (DATA.stimuli, np.array(["1"] * 12), TypeError, "responses must be numeric 0/1"),
        (DATA.stimuli[:, :, :1].repeat(4, 2), DATA.responses, ValueError,
         r"shape \(N, 2, d\) with d in \{1, 2, 3\}.*got \(12, 2, 4\)"),
    ],
)
def test_trial_data_rejects(stimuli, responses, exc, match):
    _raises(exc, match, pn.TrialData, stimuli, responses)


def test_trial_data_needs_responses_and_named_psyphy_errors():
    _raises(TypeError, "TrialData needs stimuli and responses", pn.TrialData, DATA.stimuli)
    psy_like = SimpleNamespace(stimuli=_bad_stimuli((1, 0, 0), 2.0), responses=DATA.responses)
    _raises(ValueError, r"trial 1 \(reference, coordinate 0\)", pn.TrialData, psy_like)
    _raises(TypeError, "data must be a TrialData", pn.as_trial_data, DATA.stimuli)
    # bool responses are fine
    assert pn.TrialData(DATA.stimuli, DATA.responses.astype(bool)) == DATA


# --- CSV ---------------------------------------------------------------------------------------
HEAD = "ref_x,ref_y,comparison_x,comparison_y,response\n"


@pytest.mark.parametrize(
    "body, match",
    [
        ("ref_x,ref_y,comparison_x,response\n0.1,0.2,0.3,1\n",
         r"header \(file line 1\).*missing columns \['comparison_y'\] for the 2-D layout"),
        ("ref_x,comparison_x,comparison_y,response,extra\n0,0,0,1,5\n",
         r"missing columns \['ref_y'\] for the 2-D layout; the other columns \['extra'\]"),
        ("ref_x,ref_x,comparison_x,response\n0,0,0,1\n", r"repeats column\(s\) \['ref_x'\]"),
        (HEAD + "0.1,0.2,0.3,0.4,1\n0.1,0.2,0.3,0.4\n",
         r"row 2 has 4 fields, expected 5 \(ref_x,.*,response\) \(file line 3\)"),
        (HEAD + "0.1,0.2,0.3,0.4,1,9\n", r"row 1 has 6 fields, expected 5"),
        (HEAD + "0.1,0.2,0.3,0.4,1\n\n0.1,0.2,x,0.4,1\n",
         r"row 3, column 'comparison_x': 'x' is not a number \(file line 4\)"),
        (HEAD + "0.1,0.2,0.3,,1\n", r"row 1, column 'comparison_y': '' is not a number"),
        (HEAD + "0.1,0.2,0.3,0.4,2\n", r"row 1, column 'response' must be 0 or 1 .*got '2'"),
        (HEAD + "0.1,0.2,0.3,0.4,0.5\n", r"row 1, column 'response' must be 0 or 1 .*'0.5'"),
        (HEAD + "0.1,0.2,0.3,0.4,yes\n", r"row 1, column 'response': 'yes' is not a response; "
         r"accepted are 0/1 and true/false .*response_values=\{'yes': 1, 'no': 0\}"),
        (HEAD + "0.1,inf,0.3,0.4,1\n", r"row 1, column 'ref_y' is 'inf'; NaN and Inf are not"),
        (HEAD + "0.1,0.2,0.3,-2.5,1\n",
         r"row 1, column 'comparison_y' = -2\.5 is outside \[-1, 1\] \(file line 2\); rescale"),
    ],
)
def test_csv_errors_name_file_row_and_column(tmp_path, body, match):
    path = tmp_path / "trials.csv"
    path.write_text(body)
    err = _raises(ValueError, match, pn.TrialData.from_csv, path)
    assert str(err).startswith(f"{path}: ")


def test_csv_with_byte_order_mark_and_blank_lines_reads(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_text("\ufeff" + HEAD + "0.1,0.2,0.3,0.4,1\n\n0,0,0,0,0\n", encoding="utf-8")
    data = pn.TrialData.from_csv(path)
    np.testing.assert_array_equal(data.responses, [1, 0])


def test_missing_csv_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        pn.TrialData.from_csv(tmp_path / "nope.csv")


# --- WPPM -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"variance_scale": INF}, ValueError, "variance_scale must be finite and > 0, got inf"),
        ({"variance_scale": -1e-3}, ValueError, "variance_scale must be finite and > 0"),
        ({"variance_scale": "4e-3"}, TypeError, "variance_scale must be a real number, got str"),
        ({"variance_scale": np.array(1e-3)}, TypeError, "variance_scale must be a real number"),
        ({"decay_rate": 0.0}, ValueError, r"decay_rate must be in \(0, 1\], got 0"),
        ({"decay_rate": NAN}, ValueError, r"decay_rate must be in \(0, 1\], got nan"),
        ({"decay_rate": True}, TypeError, "decay_rate must be a real number, got bool"),
        ({"diag_term": NAN}, ValueError, "diag_term must be finite and >= 0"),
        ({"bandwidth": -0.01}, ValueError, "bandwidth must be finite and > 0, got -0.01"),
        ({"bandwidth": INF}, ValueError, "bandwidth must be finite and > 0, got inf"),
        ({"num_samples": True}, TypeError, "num_samples must be an integer, got bool"),
        ({"num_samples": 8.0}, TypeError, "num_samples must be an integer, got float"),
        ({"basis_degree": "4"}, TypeError, "basis_degree must be an integer, got str"),
        ({"extra_dims": 1.5}, TypeError, "extra_dims must be an integer"),
        ({"input_dim": 0}, ValueError, r"input_dim must be in \[1, 3\], got 0"),
        ({"estimator": None}, ValueError, "estimator must be one of"),
        ({"estimator": "CV"}, ValueError,
         r"estimator must be one of \('cv', 'reparam', 'mc', 'table'\), got 'CV'"),
        ({"num_sample": 8}, TypeError, "unexpected keyword argument 'num_sample'"),
    ],
)
def test_bad_model_configuration(kwargs, exc, match):
    _raises(exc, match, pn.WPPM, **kwargs)


def test_numpy_scalars_are_accepted_as_settings():
    m = pn.WPPM(input_dim=np.int64(2), variance_scale=np.float32(1e-3), num_samples=np.int32(4))
    assert m.num_samples == 4
    assert hash(m) == hash(pn.WPPM(input_dim=2, variance_scale=np.float32(1e-3), num_samples=4))


# --- fit functions ------------------------------------------------------------------------------
DATA1 = _data(d=1)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"learning_rate": 0.0}, ValueError, "learning_rate must be finite and > 0, got 0.0"),
        ({"learning_rate": -0.1}, ValueError, "learning_rate must be finite and > 0"),
        ({"learning_rate": NAN}, ValueError, "learning_rate must be finite and > 0, got nan"),
        ({"learning_rate": INF}, ValueError, "learning_rate must be finite and > 0, got inf"),
        ({"learning_rate": "0.05"}, TypeError, "learning_rate must be a real number"),
        ({"steps": 0}, ValueError, "steps must be >= 1, got 0"),
        ({"steps": 10.0}, TypeError, "steps must be an integer, got float"),
        ({"steps": True}, TypeError, "steps must be an integer, got bool"),
        ({"num_restarts": 0}, ValueError, "num_restarts must be >= 1"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"seed": 1.5}, TypeError, "seed must be an integer"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"eval_samples": 0}, ValueError, "eval_samples must be >= 1, got 0"),
        ({"init_scale": 0.0}, ValueError, "init_scale must be > 0"),
        ({"init_scale": INF}, ValueError, "init_scale must be finite"),
        ({"init_scale": "big"}, TypeError, "init_scale must be a real number"),
        ({"optimizer": 3}, TypeError, "optimizer must be an optax.GradientTransformation"),
        ({"optimizer": "sgd"}, ValueError, 'optimizer must be "lbfgs", "adam"'),
        ({"init": PARAMS["W"]}, TypeError, 'init must be a dict with key "W"'),
        ({"init": {"W": np.zeros((3, 3, 2, 3))}}, ValueError,
         r"init\['W'\] has shape \(3, 3, 2, 3\), the model expects \(2, 2, 2, 3\)"),
        ({"init": {"W": np.full(M2.weight_shape, NAN)}}, ValueError,
         r"init\['W'\] contains NaN or Inf \(24 of 24 values"),
        ({"stepz": 5}, TypeError, "unexpected keyword argument 'stepz'"),
        ({"model": "WPPM"}, TypeError, "model must be a psyphy_numpyro.WPPM"),
        ({"model": M1}, ValueError, "data has stimulus dimension 2 but the model has input_dim=1"),
    ],
)
def test_fit_map_rejects_before_compiling(no_compile, kwargs, exc, match):
    kwargs = {"model": M2, **kwargs}
    _raises(exc, match, pn.fit_map, DATA, **kwargs)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"num_draws": 0}, ValueError, "num_draws must be >= 1"),
        ({"seed": -2}, ValueError, "seed must be >= 0"),
        ({"hessian_samples": -1}, ValueError, "hessian_samples must be >= 0"),
        ({"hessian_samples": 1.0}, TypeError, "hessian_samples must be an integer"),
        ({"curvature": "exact"}, ValueError, 'curvature must be "fisher" or "hessian"'),
        ({"steps": 0}, ValueError, "steps must be >= 1, got 0"),
        ({"hessian_bandwidth": 0.0}, ValueError, "hessian_bandwidth must be finite and > 0"),
        ({"hessian_bandwidth": NAN}, ValueError, "hessian_bandwidth must be finite and > 0"),
        ({"model": M2.replace(estimator="mc")}, ValueError,
         r'fit_laplace needs estimator "cv" or "reparam".*model\.replace\(estimator="cv"\)'),
        ({"init": PARAMS}, TypeError, "init must be a MAPFit or None, got dict"),
        ({"init": _mapfit({"W": np.zeros((3, 3, 2, 3))})}, ValueError,
         r"init\.params\['W'\] has shape \(3, 3, 2, 3\)"),
        ({"init": _mapfit({"W": np.full(M2.weight_shape, INF)})}, ValueError,
         r"init\.params\['W'\] contains NaN or Inf"),
        ({"num_samples": 10}, TypeError, "unexpected keyword argument 'num_samples'"),
        ({"model": M1}, ValueError, "stimulus dimension 2 but the model has input_dim=1"),
    ],
)
def test_fit_laplace_rejects_before_compiling(no_compile, kwargs, exc, match):
    kwargs = {"model": M2, **kwargs}
    _raises(exc, match, pn.fit_laplace, DATA, **kwargs)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"num_warmup": 0}, ValueError, "num_warmup must be >= 1"),
        ({"num_draws": 0}, ValueError, "num_draws must be >= 1, got 0"),
        ({"num_chains": 0}, ValueError, "num_chains must be >= 1"),
        ({"num_chains": 2.0}, TypeError, "num_chains must be an integer"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"surrogate_samples": -4}, ValueError, "surrogate_samples must be >= 0"),
        ({"chain_method": "threads"}, ValueError, "chain_method must be one of"),
        ({"target_accept_prob": 1.0}, ValueError, r"target_accept_prob must be in \(0, 1\)"),
        ({"target_accept_prob": NAN}, ValueError, r"target_accept_prob must be in \(0, 1\)"),
        ({"target_accept_prob": "high"}, TypeError, "target_accept_prob must be a real number"),
        ({"surrogate_bandwidth": 0.0}, ValueError, "surrogate_bandwidth must be finite and > 0"),
        ({"surrogate_bandwidth": INF}, ValueError, "surrogate_bandwidth must be finite and > 0"),
        ({"init_jitter": -0.1}, ValueError, "init_jitter must be finite and >= 0"),
        ({"init_jitter": NAN}, ValueError, "init_jitter must be finite and >= 0"),
        ({"max_tree_depth": 0}, ValueError, "max_tree_depth must be >= 1"),
        ({"steps": -5}, ValueError, "steps must be >= 1"),
        ({"model": M2.replace(estimator="mc"), "surrogate_samples": 16}, ValueError,
         r'fit_mcmc needs estimator "cv" or "reparam".*model\.replace\(estimator="cv"\)'),
        ({"init": "map"}, TypeError,
         r"init must be a MAPFit, a dict \{'W': \.\.\.\}, a psyphy MAPPosterior or None"),
        ({"init": {"W": np.zeros(5)}}, ValueError, r"init\['W'\] has shape \(5,\)"),
        ({"init": {"W": np.full(M2.weight_shape, NAN)}}, ValueError,
         r"init\['W'\] contains NaN or Inf"),
        ({"init": _mapfit({"W": np.zeros((2, 2, 2, 2))})}, ValueError,
         r"init\.params\['W'\] has shape"),
        ({"warmup": 10}, TypeError, "unexpected keyword argument 'warmup'"),
    ],
)
def test_fit_mcmc_rejects_before_compiling(no_compile, kwargs, exc, match):
    kwargs = {"model": M2, **kwargs}
    _raises(exc, match, pn.fit_mcmc, DATA, **kwargs)


@pytest.mark.parametrize("fit", [pn.fit_map, pn.fit_laplace, pn.fit_mcmc])
def test_fits_reject_bad_data_before_compiling(no_compile, fit):
    _raises(TypeError, "data must be a TrialData", fit, DATA.stimuli)
    bad = SimpleNamespace(stimuli=_bad_stimuli((7, 1, 1), 3.0), responses=DATA.responses)
    _raises(ValueError, r"trial 7 \(comparison, coordinate 1\) = 3", fit, bad)
    bad = SimpleNamespace(stimuli=DATA.stimuli, responses=DATA.responses * 2)
    _raises(ValueError, r"responses must be 0 or 1; entry \d+ is 2", fit, bad)
    _raises(ValueError, "data has stimulus dimension 1 but the model has input_dim=2", fit,
            DATA1, M2)


# --- read-outs ----------------------------------------------------------------------------------
X_OUT = np.array([[0.0, 0.0], [0.5, 1.25]])


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: M2.covariance(PARAMS, X_OUT), ValueError,
         r"x has coordinates outside the domain \[-1, 1\]: first at index \(1, 1\) = 1\.25 "
         r"\(1 of 2 points outside; observed range \[0, 1\.25\]\); rescale"),
        (lambda: M2.sqrt_covariance(PARAMS, [np.nan, 0.0]), ValueError,
         r"x contains NaN or Inf \(1 of 2 values; first at index 0: nan\)"),
        (lambda: M2.covariance(PARAMS, np.zeros((4, 3))), ValueError,
         r"x must have shape \(\.\.\., 2\) for input_dim=2, got shape \(4, 3\)"),
        (lambda: M2.covariance(PARAMS, 0.5), ValueError, r"x must have shape \(\.\.\., 2\)"),
        (lambda: M2.covariance(PARAMS, np.zeros(2) + 0j), TypeError, "x must be real"),
        (lambda: M2.covariance(PARAMS, ["a", "b"]), TypeError, "x must be a real numeric array"),
        (lambda: M2.covariance({"W": np.zeros(3)}, np.zeros(2)), ValueError,
         r"params\['W'\] has shape \(3,\), the model expects \(2, 2, 2, 3\)"),
        (lambda: M2.covariance({"w": PARAMS["W"]}, np.zeros(2)), TypeError,
         'params must be a dict with key "W"'),
        (lambda: M2.covariance({"W": np.full(M2.weight_shape, INF)}, np.zeros(2)), ValueError,
         r"params\['W'\] contains NaN or Inf"),
        (lambda: M2.p_correct(PARAMS, [0.0, 0.0], [0.0, 1.5], key=0), ValueError,
         r"comparison has coordinates outside the domain.*rescale"),
        (lambda: M2.p_correct(PARAMS, [-3.0, 0.0], [0.0, 0.5], key=0), ValueError,
         r"ref has coordinates outside the domain \[-1, 1\]: first at index 0 = -3"),
        (lambda: M2.p_correct(PARAMS, [0.0, 0.0], [0.1, 0.0]), ValueError,
         r"needs a PRNG key \(key=\.\.\.\) or fixed noise"),
        (lambda: M2.p_correct(PARAMS, [0.0, 0.0], [0.1, 0.0], key=np.zeros(3)), TypeError,
         r"key must be a jax\.random key .* got an array of shape \(3,\) and dtype float64"),
        (lambda: M2.p_correct(PARAMS, [0.0, 0.0], [0.1, 0.0], key=0.5), TypeError,
         "expected a jax.random key or an integer seed, got float"),
        (lambda: M2.p_correct(PARAMS, [0.0, 0.0], [0.1, 0.0], key=0, seed=1), TypeError,
         "unexpected keyword argument 'seed'"),
        (lambda: M2.log_likelihood(PARAMS, DATA1), ValueError,
         "data has stimulus dimension 1, the model has input_dim=2"),
        (lambda: _mapfit().covariance([[0.0, 2.0]]), ValueError,
         r"x has coordinates outside the domain .*observed range \[0, 2\]"),
        (lambda: _mapfit().p_correct([0.0, 0.0], [0.0, NAN]), ValueError,
         "comparison contains NaN or Inf"),
        (lambda: _posterior().covariance([[1.0, 1.01]]), ValueError,
         r"x has coordinates outside the domain \[-1, 1\]: first at index \(0, 1\) = 1\.01"),
        (lambda: _posterior().p_correct([0.0, 0.0], [0.1, 0.0], num_samples=0), ValueError,
         "num_samples must be >= 1, got 0"),
        (lambda: _posterior().p_correct([0.0, 0.0], [0.1, 0.0], num_samples=2.5), TypeError,
         "num_samples must be an integer"),
        (lambda: _posterior().p_correct([0.0, 0.0, 0.0], [0.1, 0.0]), ValueError,
         r"ref must have shape \(\.\.\., 2\)"),
    ],
)
def test_model_and_fit_readouts_reject(no_compile, call, exc, match):
    _raises(exc, match, call)


FIT = _mapfit()


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: pn.thresholds(FIT, [[0.0, 1.5]]), ValueError,
         r"refs has coordinates outside the domain \[-1, 1\].*observed range"),
        (lambda: pn.thresholds(FIT, np.zeros((0, 2))), ValueError, "refs is empty"),
        (lambda: pn.thresholds(FIT, [0.0, 0.0], num_samples=0), ValueError,
         "num_samples must be >= 1, got 0"),
        (lambda: pn.thresholds(FIT, [0.0, 0.0], tol=0.0), ValueError,
         "tol must be finite and > 0"),
        (lambda: pn.thresholds(FIT, [0.0, 0.0], tol="small"), TypeError,
         "tol must be a real number"),
        (lambda: pn.thresholds(FIT, [0.0, 0.0], level=1.0), ValueError,
         r"level must be in \(0, 1\), got 1\.0"),
        (lambda: pn.thresholds(FIT, [0.0, 0.0], target=1 / 3), ValueError,
         r"target must be in \(0\.3333, 1\)"),
        (lambda: pn.thresholds(FIT, [0.0, 0.0], max_distance=INF), ValueError,
         "max_distance must be finite and > 0, got inf"),
        (lambda: pn.thresholds(FIT, [0.0, 0.0], num_draws=0), ValueError,
         "num_draws must be >= 1, got 0"),
        (lambda: pn.thresholds(FIT, [0.0, 0.0], num_directions=8.0), TypeError,
         "num_directions must be an integer"),
        (lambda: pn.thresholds(FIT, [0.0, 0.0], directions=[[1.0, NAN], [0.0, 1.0]]),
         ValueError, r"directions contains NaN or Inf \(1 of 4 values; first at index \(0, 1\)"),
        (lambda: pn.thresholds(FIT, [0.0, 0.0], directions=[[1.0, 0.0], [0.0, 0.0]]),
         ValueError, "directions must be non-zero; row 1 is zero"),
        (lambda: pn.thresholds(FIT, [0.0, 0.0], key="a"), TypeError,
         "expected a jax.random key or an integer seed, got str"),
        (lambda: pn.thresholds(FIT, [0.0, 0.0], num_direction=8), TypeError,
         "unexpected keyword argument 'num_direction'"),
        (lambda: pn.thresholds((M2, {"W": np.full(M2.weight_shape, NAN)}), [0.0, 0.0]),
         ValueError, r"params\['W'\] contains NaN or Inf"),
        (lambda: pn.thresholds(_posterior(np.full((1, 2) + M2.weight_shape, NAN)), [0.0, 0.0]),
         ValueError, "posterior draws of W contains NaN or Inf"),
        (lambda: pn.thresholds(_posterior(np.zeros((1, 0) + M2.weight_shape)), [0.0, 0.0]),
         ValueError, "no posterior draws"),
        (lambda: pn.psychometric(FIT, [0.0, 0.0], [1.0, 0.0], [0.1, NAN]), ValueError,
         r"distances contains NaN or Inf \(1 of 2 values; first at index 1: nan\)"),
        (lambda: pn.psychometric(FIT, [0.0, 0.0], [1.0, 0.0], ["near"]), TypeError,
         "distances must be a real numeric array"),
        (lambda: pn.psychometric(FIT, [0.0, 0.0], [INF, 0.0], [0.1]), ValueError,
         "direction contains NaN or Inf"),
        (lambda: pn.psychometric(FIT, [0.0, 0.0], [1.0, 0.0], [0.1, 1.5]), ValueError,
         r"distances\[1\] = 1\.5 puts the point outside the domain"),
        (lambda: pn.psychometric(FIT, [0.0, 0.0], [1.0, 0.0], [0.1], num_samples=-1),
         ValueError, "num_samples must be >= 1, got -1"),
        (lambda: pn.psychometric(FIT, [0.0, 0.0], [1.0, 0.0], [0.1], key=[1, 2]), TypeError,
         "expected a jax.random key or an integer seed, got list"),
        (lambda: pn.psychometric(object(), [0.0, 0.0], [1.0, 0.0], [0.1]), TypeError,
         r"fit must be a fit \(MAPFit, MCMCFit, LaplaceFit, PosteriorFit\) or a "
         r"\(WPPM, params\) pair, got object"),
    ],
)
def test_threshold_and_psychometric_readouts_reject(no_compile, call, exc, match):
    _raises(exc, match, call)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: pn.comparisons_at_radius(M2, PARAMS, np.zeros((3, 2)), NAN, key=0), ValueError,
         "radius must be finite, got nan"),
        (lambda: pn.comparisons_at_radius(M2, PARAMS, np.zeros((3, 2)), -1.0, key=0),
         ValueError, "radius must be >= 0"),
        (lambda: pn.comparisons_at_radius(M2, PARAMS, np.zeros((3, 2)), [1.0, 2.0], key=0),
         ValueError, r"radius must be a number or have shape \(3,\), got shape \(2,\)"),
        (lambda: pn.comparisons_at_radius(M2, PARAMS, np.full((3, 2), 1.1), 1.0, key=0),
         ValueError, "ref has coordinates outside the domain"),
        (lambda: pn.simulate_trials(M2, PARAMS, np.zeros((3, 2)), np.zeros((4, 2)), key=0),
         ValueError, r"ref \(3, 2\) and comparison \(4, 2\) do not broadcast"),
        (lambda: pn.simulate_trials(M2, PARAMS, np.zeros((3, 2)), np.full((3, 2), -1.2), key=0),
         ValueError, "comparison has coordinates outside the domain"),
    ],
)
def test_simulation_helpers_reject(no_compile, call, exc, match):
    _raises(exc, match, call)


def test_as_key_and_scalar_checkers():
    assert as_key(np.int64(3)).shape == (2,)
    assert as_key(np.array(3)).shape == (2,)
    assert as_key(as_key(1)) is not None
    _raises(TypeError, "got a bool", as_key, True)
    _raises(TypeError, r"shape \(2,\) and dtype int32", as_key, np.array([1, 2], np.int32))
    _raises(ValueError, r"p must be in \[0, 1\), got 1", check_real, "p", 1, 0, 1,
            lo_closed=True)
    _raises(ValueError, "t must be finite and <= 2, got 3", check_real, "t", 3, None, 2,
            hi_closed=True)
    _raises(ValueError, "v must be finite, got nan", check_real, "v", NAN)
    _raises(ValueError, "a must be a rectangular numeric array", check_array, "a", [[1], [1, 2]])
    assert check_array("a", [1, 2]).dtype == np.float64


# --- plotting -----------------------------------------------------------------------------------
COVS = np.stack([np.eye(2) * 0.01, np.diag([0.02, 0.01])])
CENTERS = np.array([[0.0, 0.0], [0.5, 0.5]])


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda ax: plotting.plot_field(COVS, CENTERS, ax=ax, colour="r"), TypeError,
         r"plot_field\(\) got unexpected keyword argument\(s\) \['colour'\].*Line2D"),
        (lambda ax: plotting.plot_field_band(COVS[None], CENTERS, ax=ax, linestyle_="-"),
         TypeError, r"plot_field_band\(\) got unexpected keyword.*Polygon"),
        (lambda ax: plotting.plot_psychometric([0.0, 0.1], [0.4, 0.6], ax=ax, lwidth=2),
         TypeError, r"plot_psychometric\(\) got unexpected keyword argument\(s\) \['lwidth'\]"),
        (lambda ax: plotting.plot_field(COVS, CENTERS, ax=ax, scale=0.0), ValueError,
         "scale must be finite and > 0, got 0.0"),
        (lambda ax: plotting.plot_field(COVS[:, ::-1], CENTERS, ax=ax), ValueError,
         r"covs\[0\] = \[\[0\.0, 0\.01\], \[0\.01, 0\.0\]\] is not a symmetric positive "
         r"definite covariance"),
        (lambda ax: plotting.plot_field(COVS * NAN, CENTERS, ax=ax), ValueError,
         "covs contains NaN or Inf"),
        (lambda ax: plotting.plot_field(COVS, CENTERS[:1], ax=ax), ValueError,
         r"centers \(G, 2\) and covs \(G, 2, 2\)"),
        (lambda ax: plotting.plot_field_band(COVS[None], CENTERS, ax=ax, level=1.5), ValueError,
         r"level must be in \(0, 1\), got 1\.5"),
        (lambda ax: plotting.plot_field_band(-COVS[None], CENTERS, ax=ax), ValueError,
         r"cov_draws\[0, 0\] = .* is not a symmetric positive definite"),
        (lambda ax: plotting.plot_psychometric([0.0, NAN], [0.4, 0.6], ax=ax), ValueError,
         "distances contains NaN or Inf"),
        (lambda ax: plotting.plot_psychometric([0.0, 0.1], [0.4, 1.6], ax=ax), ValueError,
         r"p must be probabilities in \[0, 1\]"),
        (lambda ax: plotting.plot_psychometric([0.0, 0.1], [0.4, 0.6], ax=ax, bins=0),
         ValueError, "bins must be >= 1"),
        (lambda ax: plotting.plot_psychometric([0.0, 0.1], [0.4, 0.6], ax=ax,
                                               data=([0.1, 0.2], [1, 3])),
         ValueError, r"data responses must be 0 or 1; entry 1 is 3"),
        (lambda ax: plotting.plot_psychometric([0.0, 0.1], [0.4, 0.6], ax=ax, data=[0.1]),
         TypeError, r"data must be a TrialData or a \(distances, responses\) pair"),
        (lambda ax: plotting.plot_trials(DATA, ax=ax, max_trials=0), ValueError,
         "max_trials must be >= 1, got 0"),
        (lambda ax: plotting.plot_trials(DATA.stimuli, ax=ax), TypeError,
         "data must be a TrialData"),
        (lambda ax: plotting.plot_thresholds(FIT, ax=ax), TypeError,
         "plot_thresholds needs a Thresholds result"),
        (lambda ax: plotting.plot_learning_curve(_posterior(), ax=ax), TypeError,
         r"plot_learning_curve needs a MAPFit .* without \['restart_histories'"),
        (lambda ax: plotting.ellipse_points([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]]), ValueError,
         "cov = .* is not a symmetric positive definite covariance"),
        (lambda ax: plotting.ellipse_points([0.0, 0.0], np.eye(3)), ValueError,
         r"cov must have shape \(2, 2\)"),
        (lambda ax: plotting.auto_scale(CENTERS, COVS, fill=-1), ValueError,
         "fill must be finite and > 0"),
        (lambda ax: plotting.grid_points(0), ValueError, "points_per_axis must be >= 1"),
        (lambda ax: plotting.grid_points(3, 0.5, -0.5), ValueError, "lo must be <= hi"),
    ],
)
def test_plotting_rejects_before_drawing(call, exc, match):
    fig, ax = plt.subplots()
    try:
        _raises(exc, match, call, ax)
        assert not ax.lines and not ax.patches and not ax.collections  # nothing drawn
    finally:
        plt.close(fig)


# --- failing fits ---------------------------------------------------------------------------
TINY = pn.WPPM(input_dim=1, basis_degree=1, num_samples=8, estimator="reparam")  # no table
TINY_DATA = _data(n=20, d=1, seed=3)
FAST = {"steps": 4, "num_restarts": 1, "eval_samples": 16, "progress": False}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        # Adam steps of 1e6 prior standard deviations: the loss stays finite but explodes
        ({"learning_rate": 1e6, "optimizer": "adam"},
         r"restart 0 ended at loss [\d.e+]+, above its starting loss .*"
         r"Try a smaller learning_rate \(now 1e\+06\)"),
        # an optax optimizer producing NaN updates
        ({"optimizer": optax.scale(NAN)}, r"restart 0 diverged at step 1\)\. Try a smaller step "
                                          r"size in the optax optimizer you passed"),
    ],
)
def test_exploding_optimiser_raises_fit_diverged(kwargs, match):
    err = _raises(pn.FitDivergedError, match, pn.fit_map, TINY_DATA, TINY, **FAST, **kwargs)
    assert "fit_map diverged" in str(err) and "model.diag_term" in str(err)


def test_nan_final_loss_is_never_returned_as_success(monkeypatch):
    """The first low-noise evaluation (the screened restarts) says NaN for restart 0."""
    real, calls = engine.evaluate_batch, []

    def nan_first(*args):
        out = np.array(real(*args))
        if not calls:
            out[0] = np.nan
        calls.append(1)
        return out

    monkeypatch.setattr(engine, "evaluate_batch", nan_first)
    with pytest.warns(RuntimeWarning, match=r"restart 0 ended at loss nan.*best finite restart"):
        fit = pn.fit_map(TINY_DATA, TINY, **{**FAST, "num_restarts": 2, "optimizer": "adam"})
    assert fit.best_restart == 1
    assert fit.restart_losses[0] == np.inf and np.isfinite(fit.restart_losses[1])
    assert np.all(np.isfinite(fit.params["W"]))


def test_degenerate_curvature_raises_with_advice():
    huge = _mapfit({"W": np.full(TINY.weight_shape, 1e30)}, TINY, TINY_DATA)  # Sigma overflows
    _raises(FloatingPointError, r"curvature at the MAP is not finite .*converged fit_map",
            pn.fit_laplace, TINY_DATA, TINY, init=huge, hessian_samples=4, num_draws=2)


def _fake_mcmc_fit(divergences, chain_means):
    """Just what ``_warn_diagnostics`` reads: no NUTS run."""
    chains, draws = len(chain_means), 50
    rng = np.random.default_rng(0)
    vals = np.asarray(chain_means)[:, None] + 0.1 * rng.standard_normal((chains, draws))

    def covariance(grid):
        g = len(grid)
        return np.broadcast_to(vals.reshape(-1, 1, 1, 1), (chains * draws, g, 2, 2))

    return SimpleNamespace(divergences=divergences, num_draws=chains * draws,
                           model=pn.WPPM(input_dim=2), draws=np.zeros((chains, draws, 1)),
                           covariance=covariance, surrogate={})


def test_mcmc_diagnostic_warnings_say_what_to_try():
    fit = _fake_mcmc_fit(divergences=10, chain_means=[1.0, 2.0])
    with pytest.warns(RuntimeWarning) as record:
        mcmc._warn_diagnostics(fit, 2)
    text = " | ".join(str(w.message) for w in record)
    assert "10 of 100 transitions diverged (10.0%); raise target_accept_prob" in text
    assert "have not mixed: run more warm-up and samples" in text
    assert fit.surrogate["max_rhat_sigma"] > 1.05
    healthy = _fake_mcmc_fit(divergences=1, chain_means=[1.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mcmc._warn_diagnostics(healthy, 2)
    assert healthy.surrogate["max_rhat_sigma"] < 1.05

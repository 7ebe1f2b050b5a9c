"""The compile-once engine: compile reuse, batched == sequential, sharding, the objective."""

import contextlib
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import monitoring
from numpyro.infer import MCMC, NUTS
from numpyro.infer.util import log_density

import psyphy_numpyro as pn
from psyphy_numpyro.inference import engine
from psyphy_numpyro.inference.svi import bucket_size, negative_log_posterior, pad_trials
from psyphy_numpyro.noise import SharedNoise

MODEL = pn.WPPM(input_dim=2, basis_degree=2, num_samples=16)
# "reparam" compiles several times faster than "cv", and counting compilations does not
# depend on the estimator (its noisy losses do not suit exact trajectory comparisons)
QUICK = MODEL.replace(estimator="reparam")
TRUTH = MODEL.sample_prior(3)
FAST = {"steps": 60, "num_restarts": 2, "eval_samples": 64, "progress": False}


def _data(n, key):
    return pn.simulate_experiment(MODEL, TRUTH, n, key=key)


@contextlib.contextmanager
def count_compiles():
    """Every XLA backend compilation (jitted programs and eager ops alike) in the block."""
    events = []

    def listener(name, seconds, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            events.append(kwargs.get("fun_name", "?"))

    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        from jax._src import monitoring as _monitoring

        _monitoring.unregister_event_duration_listener(listener)


def test_bucket_sizes_share_programs_and_waste_little():
    assert bucket_size(2000) == bucket_size(2013) == 2048
    sizes = [bucket_size(n) for n in range(1, 5000)]
    assert all(s >= n for n, s in zip(range(1, 5000), sizes, strict=True))
    assert all(s <= max(n * 1.125, n) for n, s in zip(range(1, 5000), sizes, strict=True))
    assert sizes == sorted(sizes)
    trials = pad_trials(_data(300, 0))
    assert trials.stimuli.shape[0] == bucket_size(300) > 300
    assert float(trials.weights.sum()) == 300 and int(trials.num_trials) == 300


def test_repeat_and_nearby_sized_fits_compile_nothing():
    first, new, near = _data(200, 1), _data(200, 2), _data(205, 3)
    pn.fit_map(first, QUICK, **FAST)  # warm: compiles this configuration
    with count_compiles() as events:
        again = pn.fit_map(new, QUICK, **FAST)  # new data, same shape
        nearby = pn.fit_map(near, QUICK, **FAST)  # same bucket (208)
    assert len(events) == 0, f"{len(events)} compilations on repeat fits"
    assert again.timings["compile"] == 0 and nearby.timings["compile"] == 0
    # a different configuration does compile, and the engine counts it
    before = engine.compile_stats()["compiles"]
    pn.fit_map(_data(200, 2), QUICK.replace(num_samples=8), **FAST)
    assert engine.compile_stats()["compiles"] > before


@pytest.mark.slow  # compile-heavy: runs in the slow tier (CI runs both)
def test_laplace_and_mcmc_start_reuse_their_programs():
    kw = {"steps": 40, "hessian_samples": 8, "num_draws": 20, "progress": False}
    pn.fit_laplace(_data(200, 4), QUICK, **kw)
    mk = {"num_warmup": 5, "num_draws": 5, "num_chains": 1, "steps": 40,
          "progress": False}
    pn.fit_mcmc(_data(200, 4), QUICK, **mk)
    near, other = _data(203, 5), _data(203, 6)
    with count_compiles() as events:
        lap = pn.fit_laplace(near, QUICK, **kw)
    assert len(events) == 0, f"{len(events)} compilations on a repeat Laplace fit"
    with count_compiles() as events:
        post = pn.fit_mcmc(near, QUICK, **mk)
    # NumPyro's MCMC re-jits its draw-collecting loop on every run (its collect
    # transform is a new closure each time); everything of ours is reused
    assert len(events) <= 1, f"{len(events)} compilations on a repeat NUTS fit"
    assert post.init_fit.timings["compile"] == 0
    assert lap.draws.shape == (1, 20) + QUICK.weight_shape
    assert post.draws.shape == (1, 5) + QUICK.weight_shape
    # the padded sampler kept this run's own draws after a later run
    first = np.array(post.draws)
    pn.fit_mcmc(other, QUICK, **mk)
    np.testing.assert_array_equal(post.mcmc.get_samples(group_by_chain=True)["W"], first)


@pytest.mark.slow  # moved to the slow tier to keep `make test` short; CI runs both
def test_repeat_bootstrap_and_cross_validation_compile_nothing():
    """Bootstrap refits and CV folds are trial weights: new data of a nearby size reuse
    the programs (the refits on both routes, the Newton route's Hessian, the held-out
    scoring) of the first call."""
    first, near = _data(200, 7), _data(204, 8)
    fit_a, fit_b = pn.fit_map(first, QUICK, **FAST), pn.fit_map(near, QUICK, **FAST)
    bk = {"num_fits": 4, "steps": 20, "progress": False}
    ck = {"num_folds": 3, "steps": 20, "eval_samples": 64, "progress": False}
    nk = {"num_fits": 4, "optimizer": "newton", "steps": 3, "progress": False}
    pn.fit_bootstrap(first, QUICK, init=fit_a, **bk)
    pn.fit_bootstrap(first, QUICK, init=fit_a, **nk)
    pn.cross_validate(first, [QUICK], **ck)
    with count_compiles() as events:
        boot = pn.fit_bootstrap(near, QUICK, init=fit_b, seed=1, **bk)
        newton = pn.fit_bootstrap(near, QUICK, init=fit_b, seed=1, **nk)
        cv = pn.cross_validate(near, [QUICK], seed=1, **ck)
    # the only programs built are jax.numpy's one-op staging of new input-array shapes
    # (the held-out folds' TrialData, 68 trials here and 66/67 before), never a fit's or
    # the held-out scoring's program
    ours = [name for name in events if name != "jit(stage)"]
    assert ours == [], f"compilations on a repeat bootstrap / CV: {ours}"
    assert boot.num_draws == 4 and newton.num_draws == 4 and cv.scores.shape == (1, 3)
    assert np.isfinite(cv.scores).all()


@pytest.mark.slow  # moved to the slow tier to keep `make test` short; CI runs both
def test_batched_restarts_equal_the_same_restarts_run_one_by_one():
    data = _data(150, 7)
    fit = pn.fit_map(data, MODEL, steps=80, num_restarts=3, screen_steps=80, seed=11,
                     optimizer="adam", progress=False)
    problem = pn.MAP(MODEL)
    root = jax.random.PRNGKey(11)
    for r in range(3):
        params, _, losses = problem.run(jax.random.fold_in(root, r), data, 80,
                                        init_scale=0.3)
        # float32 sums in a different order (vmapped or not), carried along 80 Adam steps:
        # relative to the loss scale (it crosses 0)
        np.testing.assert_allclose(losses, fit.restart_histories[r], rtol=1e-4,
                                   atol=1e-4 * np.abs(losses).max())
        if r == fit.best_restart:  # Adam's normalised steps amplify those differences where
            # a gradient is near 0; another restart's weights differ by O(1), not 1e-3
            W = np.asarray(fit.params["W"])
            np.testing.assert_allclose(params["W"], W, rtol=1e-2, atol=2e-3 * np.abs(W).max())


def test_screened_restarts_keep_the_best_and_finish_it():
    data = _data(150, 8)
    fit = pn.fit_map(data, MODEL, steps=80, num_restarts=3, screen_steps=20, seed=2,
                     optimizer="adam", progress=False)
    done = np.isfinite(fit.restart_histories).sum(1)
    assert done[fit.best_restart] == 80
    assert sorted(done) == [20, 20, 80]
    assert np.isfinite(fit.loss_history).all()


_SHARD_SCRIPT = """
import json, sys, jax, numpy as np
import psyphy_numpyro as pn
model = pn.WPPM(input_dim=2, basis_degree=2, num_samples=16)
data = pn.simulate_experiment(model, model.sample_prior(3), 150, key=9)
fit = pn.fit_map(data, model, steps=40, num_restarts=3, screen_steps=40, seed=5,
                 progress=False)
json.dump({"devices": jax.device_count(), "W": np.asarray(fit.params["W"]).tolist(),
           "hist": fit.restart_histories.tolist()}, sys.stdout)
"""


@pytest.mark.slow  # moved to the slow tier to keep `make test` short; CI runs both
def test_sharded_batch_equals_unsharded_on_two_cpu_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", _SHARD_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600, cwd=Path(__file__).parent)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["devices"] == 2
    data = pn.simulate_experiment(MODEL, MODEL.sample_prior(3), 150, key=9)
    fit = pn.fit_map(data, MODEL, steps=40, num_restarts=3, screen_steps=40, seed=5,
                     progress=False)
    # float32 sums run in another order on two devices: equal to rounding, which
    # 40 optimiser steps amplify a little (measured: at most 8e-4 relative)
    hist = np.asarray(res["hist"])
    np.testing.assert_allclose(hist, fit.restart_histories, rtol=0,
                               atol=2e-3 * np.abs(hist).max())
    W = np.asarray(fit.params["W"])
    np.testing.assert_allclose(res["W"], W, rtol=0, atol=1e-2 * np.abs(W).max())


def test_objective_is_the_numpyro_log_joint_in_whitened_coordinates():
    """The SVI loss (Trace_ELBO of the AutoDelta guide) is -log p(W, y) of wppm_model itself,
    its prior measured in the decentred coordinates z = W / prior_std (LocScaleReparam):
    the two differ by the constant sum(log prior_std), nothing else."""
    data = _data(100, 10)
    trials = pad_trials(data)
    z = jnp.asarray(np.random.default_rng(0).standard_normal(MODEL.weight_shape), jnp.float32)
    noise = MODEL.fresh_noise(jax.random.PRNGKey(4), (trials.stimuli.shape[0],))
    value = negative_log_posterior(MODEL, z, trials, jax.random.PRNGKey(0), noise=noise)
    W = jnp.asarray(MODEL.prior_std(), jnp.float32) * z
    fn = partial(pn.wppm_model, config=MODEL, noise=noise, weights=trials.weights)
    reference = -log_density(fn, (trials.stimuli, trials.responses), {}, {"W": W})[0]
    jacobian = float(np.sum(np.log(MODEL.prior_std())))
    np.testing.assert_allclose(value, reference - jacobian, rtol=1e-5)
    # a different key changes nothing when the noise is fixed: a deterministic loss
    again = negative_log_posterior(MODEL, z, trials, jax.random.PRNGKey(9), noise=noise)
    assert float(again) == float(value)
    value = reference  # below: the model on unpadded trials
    # padding carries no weight: the unpadded model gives the same log joint
    plain = partial(pn.wppm_model, config=MODEL, noise=SharedNoise(noise.z, noise.Q[:100]))
    ref2 = -log_density(plain, (trials.stimuli[:100], trials.responses[:100]), {}, {"W": W})[0]
    np.testing.assert_allclose(value, ref2, rtol=1e-5)


def test_numpyro_mcmc_without_fixed_noise_raises_instead_of_running_on_one_draw():
    data = _data(30, 11)
    mcmc = MCMC(NUTS(partial(pn.wppm_model, config=MODEL)), num_warmup=2, num_samples=2,
                progress_bar=False)
    with pytest.raises(ValueError, match=r"outside a numpyro.handlers.seed context .* pass "
                                         r"noise=\.\.\."):
        mcmc.run(jax.random.PRNGKey(0), jnp.asarray(data.stimuli), jnp.asarray(data.responses))


@pytest.mark.slow
def test_shared_noise_can_be_subsampled():
    data = _data(40, 12)
    noise = MODEL.fresh_noise(jax.random.PRNGKey(1), (40,))
    from numpyro.handlers import seed, substitute, trace

    fn = partial(pn.wppm_model, config=MODEL, noise=noise, subsample_size=10)
    tr = trace(seed(substitute(fn, {"W": TRUTH["W"]}), 0)).get_trace(
        jnp.asarray(data.stimuli), jnp.asarray(data.responses))
    idx = tr["trials"]["value"]
    p = tr["y"]["fn"].probs
    full = MODEL.p_correct_from_weights(TRUTH["W"], jnp.asarray(data.ref),
                                        jnp.asarray(data.comparison), noise)
    np.testing.assert_allclose(p, full[idx], rtol=1e-5)


def test_rng_key_is_accepted_beside_seed():
    data = _data(80, 13)
    by_seed = pn.fit_map(data, MODEL, steps=20, num_restarts=1, seed=7, progress=False)
    by_key = pn.fit_map(data, MODEL, steps=20, num_restarts=1, rng_key=jax.random.PRNGKey(7),
                        progress=False)
    np.testing.assert_array_equal(by_key.params["W"], by_seed.params["W"])
    assert by_seed.seed == 7 and by_key.seed == -1
    from psyphy_numpyro.validation import seed_from

    k = jax.random.PRNGKey(3)
    assert seed_from(0, k) == seed_from(5, k) != seed_from(0, jax.random.PRNGKey(4))
    assert seed_from(9) == 9


def test_numpyro_svi_with_autodelta_from_init_to_value():
    """The documented textbook route: AutoDelta started by init_to_value at W0 starts at
    exactly W0, and its loss is our negative log joint on the same noise (a table-estimator
    model, so no noise to line up); SVI steps lower it."""
    import optax
    from numpyro.infer import SVI, Trace_ELBO, init_to_value
    from numpyro.infer.autoguide import AutoDelta
    from numpyro.optim import optax_to_numpyro

    model = QUICK.replace(estimator="table")
    data = _data(120, 13)
    stimuli, responses = jnp.asarray(data.stimuli), jnp.asarray(data.responses)
    W0 = jnp.asarray(model.sample_prior(7)["W"])
    model_fn = partial(pn.wppm_model, config=model)
    guide = AutoDelta(model_fn, init_loc_fn=init_to_value(values={"W": W0}))
    svi = SVI(model_fn, guide, optax_to_numpyro(optax.adam(1e-3)), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(0), stimuli, responses)
    np.testing.assert_array_equal(svi.get_params(state)["W_auto_loc"], W0)
    z0 = W0 / jnp.asarray(model.prior_std(), W0.dtype)
    ours = negative_log_posterior(model, z0, pad_trials(data), jax.random.PRNGKey(1))
    first = float(svi.evaluate(state, stimuli, responses))
    # ours is the same log joint with the prior in decentred coordinates
    jacobian = float(np.sum(np.log(model.prior_std())))
    assert first == pytest.approx(float(ours) + jacobian, rel=1e-5)
    result = svi.run(jax.random.PRNGKey(0), 200, stimuli, responses, progress_bar=False)
    assert result.losses[-1] < first - 1.0

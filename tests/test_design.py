"""Adaptive design: proposals, information gain, and the crash-safe Experiment session."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro.design import refit
from psyphy_numpyro.design.acquisition import candidate_trials, score_trials

# a small, quickly compiled model for the sessions (reparam compiles several times faster)
SMALL = pn.WPPM(input_dim=2, basis_degree=1, num_samples=16, estimator="reparam")
QUICK_FITS = {"map_steps": 40, "warm_steps": 20, "num_draws": 16}


def _posterior(model, key=0, spread=0.15, num_draws=40, lapse=None):
    """A draw-based fit without fitting: draws scattered around one prior draw."""
    truth = model.sample_prior(key)
    W = np.asarray(truth["W"])
    rng = np.random.default_rng(key)
    draws = W * (1 + spread * rng.standard_normal((1, num_draws) + W.shape))
    data = pn.simulate_experiment(model, truth, 20, key=key)
    fit = pn.PosteriorFit(model=model, data=data, draws=draws.astype(np.float32),
                          lapse=lapse)
    return fit, truth


@pytest.mark.parametrize("d", [1, 2, pytest.param(3, marks=pytest.mark.slow)])
@pytest.mark.parametrize("lapse", [False, True])
def test_proposals_lie_in_the_domain_and_spread_out(d, lapse):
    model = pn.WPPM(input_dim=d, basis_degree=2, num_samples=16,
                    lapse_rate="learn" if lapse else 0.0)
    lam = np.full((1, 40), 0.04) if lapse else None
    fit, _ = _posterior(model, key=d, lapse=lam)
    ref, comp = pn.propose_trials(fit, 30, key=1, num_refs=64, per_ref=8)
    assert ref.shape == comp.shape == (30, d)
    assert np.all(np.abs(ref) <= 1) and np.all(np.abs(comp) <= 1)
    assert np.all(np.linalg.norm(comp - ref, axis=1) > 0)
    # diverse: the penalised batch uses many references; the pure top-30 piles onto few
    spread = len(np.unique(ref, axis=0))
    top_ref, _ = pn.propose_trials(fit, 30, key=1, num_refs=64, per_ref=8, diversity=0.0)
    assert spread >= 20 and spread > len(np.unique(top_ref, axis=0))


def test_a_repeated_proposal_reuses_its_compiled_programs():
    from jax import monitoring
    from jax._src import monitoring as _monitoring

    fit, _ = _posterior(SMALL, key=6)
    pn.propose_trials(fit, 10, key=0, num_refs=32, per_ref=4)
    names = []

    def listener(name, seconds, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            names.append(kwargs.get("fun_name", "?"))

    monitoring.register_event_duration_secs_listener(listener)
    try:
        ref, _ = pn.propose_trials(fit, 10, key=1, num_refs=32, per_ref=4)
    finally:
        _monitoring.unregister_event_duration_listener(listener)
    assert names == [] and ref.shape == (10, 2)


def test_information_gain_is_the_mutual_information_and_peaks_near_threshold():
    fit, _ = _posterior(SMALL.replace(estimator="cv", num_samples=64), key=3, spread=0.3)
    ref = np.zeros((3, 2))
    mean_cov = np.asarray(fit.covariance(ref[:1])).mean(0)[0]
    u = np.array([1.0, 0.0])
    t = 2.55 * np.sqrt(u @ mean_cov @ u)  # about the 66.7% threshold
    comp = ref + np.array([[0.0, 0.0], [t, 0.0], [min(40 * t, 1.0), 0.0]])
    ig = score_trials(fit, ref, comp, seed=2)
    # an independent computation from the per-draw response probabilities
    p = np.asarray(fit.p_correct(ref, comp, key=2, include_lapse=True), np.float64)

    def h(q):
        return -(q * np.log(q) + (1 - q) * np.log(1 - q))

    np.testing.assert_allclose(ig, h(p.mean(0)) - h(p).mean(0), rtol=1e-6, atol=1e-9)
    # at chance (no difference) and at ceiling the draws agree: little information
    assert ig[1] > 5 * ig[0] and ig[1] > 5 * ig[2]
    # a tighter posterior carries less information everywhere it was informative
    tight, _ = _posterior(SMALL.replace(estimator="cv", num_samples=64), key=3, spread=0.03)
    assert score_trials(tight, ref, comp, seed=2)[1] < ig[1]


def test_candidates_span_the_psychometric_range():
    fit, _ = _posterior(SMALL.replace(estimator="cv", num_samples=64), key=4, spread=0.05)
    ref, comp = candidate_trials(fit, seed=0, num_refs=32, per_ref=16)
    p = np.asarray(fit.p_correct(ref, comp, key=0)).mean(0)
    assert p.min() < 0.45 and p.max() > 0.9  # from near chance to near ceiling
    assert 0.25 < np.mean(p < 2 / 3) < 0.75


def test_proposals_need_posterior_draws_and_good_candidates():
    fit, truth = _posterior(SMALL, key=5)
    point = pn.MAPFit.from_params(SMALL, truth)
    with pytest.raises(ValueError, match="propose_trials needs posterior draws"):
        pn.propose_trials(point, 5)
    with pytest.raises(ValueError, match="criterion must be one of"):
        pn.propose_trials(fit, 5, criterion="entropy")
    cand = (np.zeros((3, 2)), np.full((3, 2), 0.1))
    with pytest.raises(ValueError, match="3 candidates are fewer than num_trials=5"):
        pn.propose_trials(fit, 5, candidates=cand)
    with pytest.raises(ValueError, match="outside"):
        pn.propose_trials(fit, 2, candidates=(np.zeros((3, 2)), np.full((3, 2), 1.5)))
    ref, comp = pn.propose_trials(fit, 2, candidates=cand, criterion="random")
    np.testing.assert_array_equal(comp - ref, np.full((2, 2), 0.1))


def test_space_filling_sequence_continues_index_by_index():
    ref, comp = pn.space_filling_trials(50, 2, seed=3)
    r2, c2 = pn.space_filling_trials(20, 2, seed=3, start=30)
    np.testing.assert_array_equal(ref[30:], r2)
    np.testing.assert_array_equal(comp[30:], c2)
    dist = np.linalg.norm(comp - ref, axis=1)
    assert np.all(np.abs(comp) <= 1) and dist.min() >= 0.005 - 1e-12 and dist.max() <= 0.4
    # space-filling: every quarter of the square gets its share
    counts = np.histogram2d(ref[:, 0], ref[:, 1], bins=2, range=[[-1, 1], [-1, 1]])[0]
    assert counts.min() >= 10


@pytest.mark.parametrize("d", [1, 2, 3])
def test_random_trials_are_the_plain_baseline_inside_the_domain(d):
    ref, comp = pn.random_trials(4000, d, seed=1, distances=(0.01, 0.2))
    assert ref.shape == comp.shape == (4000, d) and np.all(np.abs(comp) <= 1)
    dist = np.linalg.norm(comp - ref, axis=1)
    assert dist.min() >= 0.01 - 1e-12 and dist.max() <= 0.2 + 1e-12
    # log-uniform distances: the median is the geometric mean of the range
    assert abs(np.log(np.median(dist)) - 0.5 * np.log(0.01 * 0.2)) < 0.1
    # uniform references and directions: means near 0
    assert np.abs(ref.mean(0)).max() < 0.05
    u = (comp - ref) / dist[:, None]
    assert np.abs(u.mean(0)).max() < 0.1
    np.testing.assert_array_equal(pn.random_trials(10, d, seed=1)[0],
                                  pn.random_trials(10, d, seed=1)[0])
    with pytest.raises(ValueError, match="input_dim"):
        pn.random_trials(10, 4)


# -- the session ------------------------------------------------------------
def _respond(stimuli, seed):
    """A deterministic simulated observer: correct when the comparison is far enough."""
    d = np.linalg.norm(stimuli[:, 1] - stimuli[:, 0], axis=1)
    p = 1 / 3 + (2 / 3) * (1 - np.exp(-((d / 0.08) ** 2)))
    return (np.random.default_rng(seed).uniform(size=len(d)) < p).astype(int)


def test_ask_tell_round_trip_and_errors_change_nothing(tmp_path):
    exp = pn.Experiment(tmp_path / "s.sqlite", SMALL, live=False, num_initial=50)
    ids, st = exp.ask(6)
    assert ids.dtype == np.int64 and ids.shape == (6,) and st.shape == (6, 2, 2)
    np.testing.assert_array_equal(exp.pending, ids)
    y = np.array([1, 0, 1, 1, 0, 1])
    exp.tell(ids[[4, 0, 2]], y[[4, 0, 2]])
    np.testing.assert_array_equal(exp.trial_ids, ids[[4, 0, 2]])
    np.testing.assert_array_equal(exp.pending, ids[[1, 3, 5]])
    before = (exp.data, exp.pending.copy())
    bad = [
        ((ids[[1]], [2]), "responses must be 0 or 1, got 2 at position 0; nothing was recorded"),
        ((ids[[1, 1]], [1, 0]), f"trial id {ids[1]} appears twice; nothing was recorded"),
        (([ids[1], 999], [1, 1]), "unknown trial id 999; nothing was recorded"),
        (([ids[1], ids[0]], [1, 1]), f"trial {ids[0]} was already told; nothing was recorded"),
        ((ids[[1, 3]], [1]), "responses must have one entry per id (2), got shape (1,)"),
        ((ids[[1]], ["yes"]), "responses must be 0/1 numbers or booleans"),
    ]
    for (i, r), message in bad:
        with pytest.raises((ValueError, TypeError)) as err:
            exp.tell(i, r)
        assert message in str(err.value), str(err.value)
        assert exp.data == before[0]
        np.testing.assert_array_equal(exp.pending, before[1])
    exp.tell(ids[[1, 3, 5]], np.array([True, False, True]))
    data = exp.data
    np.testing.assert_array_equal(data.stimuli, st[[4, 0, 2, 1, 3, 5]])  # exact, in told order
    np.testing.assert_array_equal(data.responses, [0, 1, 1, 1, 0, 1])
    assert exp.sources(ids) == ["space"] * 6 and exp.pending.size == 0
    exp.close()


def test_reopening_reissues_pending_trials_and_expire_drops_them(tmp_path):
    path = tmp_path / "s.sqlite"
    exp = pn.Experiment(path, SMALL, live=False, num_initial=50, seed=4)
    ids, st = exp.ask(5)
    exp.tell(ids[:2], [1, 0])
    exp.close()
    with pytest.raises(ValueError, match="the session was created with seed=4"):
        pn.Experiment(path, SMALL, seed=5)
    # settings left out are the stored ones: a bare reopening works for any session
    bare = pn.Experiment(path, live=False)
    assert (bare.seed, bare.model, bare.settings["num_initial"]) == (4, SMALL, 50)
    bare.close()
    again = pn.Experiment(path, SMALL, live=False, num_initial=50, seed=4)
    ids2, st2 = again.ask(4)
    np.testing.assert_array_equal(ids2[:3], ids[2:])  # the pending ones first, same ids
    np.testing.assert_array_equal(st2[:3], st[2:])
    assert ids2[3] == ids.max() + 1
    np.testing.assert_array_equal(again.expire([ids2[0]]), [ids2[0]])
    with pytest.raises(ValueError, match=f"trial {ids2[0]} was already expired"):
        again.tell([ids2[0]], [1])
    again.tell(ids2[1:], [1, 1, 0])
    assert again.num_told == 5 and again.status()["expired"] == 1
    again.close()


def test_read_settings_and_latest_fit_info_read_the_file_without_changing_it(tmp_path,
                                                                           monkeypatch):
    import sqlite3
    import types

    (tmp_path / "trials.csv").write_text("ref_x,ref_y\n0,0\n")
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x INTEGER)")
    con.commit()
    con.close()
    other_bytes = other.read_bytes()
    for bad, message in [(tmp_path / "nope.sqlite", "nope.sqlite: no such session file"),
                         (tmp_path, "is a folder, not a session file"),
                         (tmp_path / "trials.csv", "trials.csv: not a psyphy_numpyro session"),
                         (other, "other.sqlite: not a psyphy_numpyro session file")]:
        with pytest.raises(ValueError, match=message):
            pn.Experiment.read_settings(bad)
    assert not (tmp_path / "nope.sqlite").exists() and other.read_bytes() == other_bytes

    monkeypatch.chdir(tmp_path)  # a relative session path: the fit's path is absolute
    exp = pn.Experiment("s.sqlite", SMALL, seed=3, live=False, num_initial=5)
    assert pn.Experiment.read_settings("s.sqlite") == exp.settings
    assert exp.settings["seed"] == 3 and exp.settings["num_initial"] == 5
    assert exp.latest_fit_info() is None

    def fake_refit(job):  # records a fit without fitting (nothing is written)
        fit = types.SimpleNamespace(model=SMALL, data=job["data"])
        proposals = (np.zeros((2, 2)), np.full((2, 2), 0.1))
        return {"fit": fit, "seq": job["seq"], "path": job["path"], "proposals": proposals}

    monkeypatch.setattr(refit, "refit_job", fake_refit)
    ids, _ = exp.ask(5)
    exp.tell(ids, [1, 0, 1, 1, 0])
    exp.refit()
    assert exp.latest_fit_info() == {"seq": 0, "num_trials": 5,
                                     "path": tmp_path / "s.sqlite.fits" / "fit_0000.nc"}
    assert exp.status()["latest_fit_trials"] == 5
    exp.close()


def _session(path, seed, n=140):
    exp = pn.Experiment(path, SMALL, seed=seed, live=False, num_initial=60, refit_every=40,
                        fit_options=QUICK_FITS)
    b = 0
    while exp.num_told < n:
        ids, st = exp.ask(20)
        exp.tell(ids, _respond(st, 100 + b))
        b += 1
    return exp


def test_offline_sessions_are_bit_identical_per_seed_and_resume_after_reopening(tmp_path):
    a = _session(tmp_path / "a.sqlite", seed=7)
    b = _session(tmp_path / "b.sqlite", seed=7)
    c = _session(tmp_path / "c.sqlite", seed=8, n=60)
    assert a.status()["fits"] == 2  # refits at 60 and 100 responses
    np.testing.assert_array_equal(a.data.stimuli, b.data.stimuli)
    np.testing.assert_array_equal(a.data.responses, b.data.responses)
    np.testing.assert_array_equal(a.fit.draws, b.fit.draws)
    assert not np.array_equal(a.data.stimuli[:60], c.data.stimuli)
    # after the first fit, trials are the fit's proposals, saved beside the session
    src = a.sources(a.trial_ids)
    assert src[:60] == ["space"] * 60 and src[60:100] == ["fit0"] * 40
    assert src[100:] == ["fit1"] * 40
    assert sorted(p.name for p in (tmp_path / "a.sqlite.fits").iterdir()) == [
        "fit_0000.nc", "fit_0001.nc"]
    # reopening resumes the policy where it stood: the same next trials as without a break
    ids_a, st_a = a.ask(20)
    a.close()
    b.close()
    reopened = pn.Experiment(tmp_path / "b.sqlite", SMALL, seed=7, live=False, num_initial=60,
                             refit_every=40, fit_options=QUICK_FITS)
    ids_b, st_b = reopened.ask(20)
    np.testing.assert_array_equal(ids_a, ids_b)
    np.testing.assert_array_equal(st_a, st_b)
    np.testing.assert_array_equal(reopened.fit.draws, a.fit.draws)
    reopened.close()
    c.close()


def test_live_ask_does_not_wait_for_a_running_refit(tmp_path, monkeypatch):
    release = threading.Event()
    started = threading.Event()
    real = refit.refit_job

    def slow_refit(job):
        started.set()
        release.wait(120)  # a refit that runs until the test lets it finish
        return real(job)

    monkeypatch.setattr(refit, "refit_job", slow_refit)
    exp = pn.Experiment(tmp_path / "live.sqlite", SMALL, live=True, num_initial=30,
                        refit_every=30, fit_options=QUICK_FITS)
    ids, st = exp.ask(30)
    exp.tell(ids, _respond(st, 1))  # 30 responses: the refit starts in the background
    assert started.wait(60) and exp.refitting
    out = {}
    asker = threading.Thread(target=lambda: out.update(zip(("ids", "st"), exp.ask(10),
                                                           strict=True)))
    asker.start()
    asker.join(60)
    assert not asker.is_alive(), "ask() waited for the refit"
    assert exp.refitting and exp.fit is None  # the refit is still running
    assert exp.sources(out["ids"]) == ["space"] * 10  # the space-filling sequence goes on
    exp.tell(out["ids"], _respond(out["st"], 2))
    release.set()
    assert exp.wait(300) and exp.fit is not None and len(exp.fit.data) == 30
    ids3, _ = exp.ask(5)
    assert exp.sources(ids3) == ["fit0"] * 5
    exp.close()


_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import psyphy_numpyro as pn
    exp = pn.Experiment(sys.argv[1], pn.WPPM(input_dim=2, basis_degree=1), live=False,
                        num_initial=10**6)
    rng = np.random.default_rng(int(sys.argv[2]))
    while True:
        ids, st = exp.ask(int(rng.integers(1, 6)))
        y = rng.integers(0, 2, len(ids))
        exp.tell(ids, y)
        print(json.dumps({"ids": ids.tolist(), "y": y.tolist()}), flush=True)
""")


def test_sigkill_mid_session_loses_no_acknowledged_response(tmp_path):
    path = tmp_path / "killed.sqlite"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    acknowledged = {}
    for round_, lines in enumerate((40, 25)):  # killed twice, the second time after a reopen
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(round_)],
                                stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(lines):
            rec = json.loads(proc.stdout.readline())
            acknowledged.update(zip(rec["ids"], rec["y"], strict=True))
        time.sleep(0.01 * round_)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    exp = pn.Experiment(path, pn.WPPM(input_dim=2, basis_degree=1), live=False,
                        num_initial=10**6)
    told = dict(zip(exp.trial_ids.tolist(), exp.data.responses.tolist(), strict=True))
    assert len(told) == len(exp.trial_ids)  # every told trial exactly once
    for i, y in acknowledged.items():
        assert told.get(i) == y, f"acknowledged response of trial {i} lost or changed"
    assert len(told) >= len(acknowledged) > 50
    exp.close()


def test_a_session_chooses_its_hyperparameters_again_when_the_floor_is_too_high(monkeypatch,
                                                                                 tmp_path):
    """A session that chose its model itself re-chooses it when its data imply thresholds
    near the diag_term floor; a model the user gave is never changed (fits stubbed)."""
    from psyphy_numpyro import laplace, map_fit
    from psyphy_numpyro.hyperparameters import floor_is_high

    rng = np.random.default_rng(0)
    ref = rng.uniform(-0.8, 0.8, (600, 2))
    comp = ref + rng.normal(0, 0.01, ref.shape)  # an observer with thresholds ~0.005
    data = pn.simulate_observer(lambda x: np.broadcast_to(2e-6 * np.eye(2), (len(x), 2, 2)),
                                ref, comp, key=1)
    coarse = pn.WPPM(input_dim=2, diag_term=1e-3)  # floor ~0.08
    assert floor_is_high(data, coarse)[0]
    used = []

    class Fit:
        def __init__(self, model):
            self.model, self.map_fit = model, None

        def save(self, path, **kw):
            pass

    monkeypatch.setattr(map_fit, "fit_map", lambda d, m, **kw: used.append(m) or Fit(m))
    monkeypatch.setattr(laplace, "fit_laplace", lambda d, m, **kw: Fit(m))
    monkeypatch.setattr(refit, "propose_trials", lambda *a, **k: (np.zeros((0, 2)),) * 2)
    job = {"data": data, "model": coarse, "seq": 1, "seed": 0, "previous": None,
           "options": {**QUICK_FITS, "criterion": "info_gain"}, "num_proposals": 4,
           "path": tmp_path / "f" / "fit.nc"}
    chosen = refit.refit_job({**job, "chosen": True})["fit"].model
    assert chosen == pn.WPPM.for_data(data) and chosen.diag_term < coarse.diag_term
    assert not floor_is_high(data, chosen)[0]
    assert refit.refit_job({**job, "chosen": False})["fit"].model == coarse
    assert used == [chosen, coarse]


def test_space_filling_trial_depends_on_its_index_only():
    """Trial i is the same whether asked alone, in a block, or after others (sessions hand
    the sequence out in blocks of any size)."""
    from psyphy_numpyro.design import space_filling_trials

    ref, comp = space_filling_trials(300, 2, seed=4)
    for start, n in [(0, 1), (0, 7), (5, 3), (130, 40), (299, 1)]:
        r, c = space_filling_trials(n, 2, seed=4, start=start)
        np.testing.assert_array_equal(r, ref[start:start + n])
        np.testing.assert_array_equal(c, comp[start:start + n])


def test_global_criterion_is_a_variance_reduction():
    """The look-ahead score equals a brute-force reweighting of the draws, is >= 0, and is 0
    for a trial every draw answers alike."""
    from psyphy_numpyro.design.acquisition import _variance_reduction

    rng = np.random.default_rng(0)
    p = rng.uniform(0.35, 0.95, (40, 6))
    p[:, 5] = 0.7  # every draw agrees: nothing to learn
    q = rng.normal(size=(40, 9))
    got = _variance_reduction(p, q)
    for n in range(6):
        expect = q.var(0).sum()
        for like in (p[:, n], 1 - p[:, n]):
            w = like / like.sum()
            m = w @ q
            expect -= like.mean() * (w @ (q * q) - m * m).sum()
        assert got[n] == pytest.approx(expect, abs=1e-12)
    assert np.all(got[:5] > 0) and got[5] == pytest.approx(0.0, abs=1e-12)


def test_region_points_and_a_region_restricts_proposals():
    from psyphy_numpyro.design.acquisition import region_points

    assert region_points(None, 2).shape == (25, 2)
    box = region_points(([-0.5, 0.0], [0.0, 0.5]), 2)
    assert box.min(0).tolist() == [-0.5, 0.0] and box.max(0).tolist() == [0.0, 0.5]
    pts = [[0.1, 0.2], [0.3, -0.4], [0.0, 0.0]]
    np.testing.assert_allclose(region_points(pts, 2), pts, atol=1e-6)
    with pytest.raises(ValueError, match="hi must exceed lo"):
        region_points(([0.0, 0.0], [0.0, 1.0]), 2)
    model = pn.WPPM(input_dim=2, basis_degree=2, num_samples=8)
    draws = np.stack([np.asarray(model.sample_prior(i)["W"]) for i in range(8)])[None]
    data = pn.TrialData(np.zeros((1, 2, 2)), np.ones(1, np.int32))
    fit = pn.PosteriorFit(model=model, data=data, draws=draws)
    ref, comp = pn.propose_trials(fit, 10, key=1, criterion="global",
                                  region=([0.2, 0.2], [0.8, 0.8]))
    assert ref.shape == (10, 2) and np.all(ref >= 0.2 - 1e-12) and np.all(ref <= 0.8 + 1e-12)
    assert np.all(np.abs(comp) <= 1.0)


def test_refit_pid_names_the_process_that_fits(tmp_path):
    """Refits in a thread run in this process; a worker process's pid is unknown until the
    first refit starts it (the server's status then reports the worker, not itself)."""
    exp = pn.Experiment(tmp_path / "t.sqlite", seed=0, live=False)
    assert exp.refit_pid == os.getpid()
    worker = pn.Experiment(tmp_path / "p.sqlite", seed=0, live=False, refit_in="process")
    assert worker.refit_pid != os.getpid()  # None, or a worker another session started


def test_a_refit_proposes_at_most_max_proposals_trials(tmp_path):
    """Picking proposals is quadratic in their number: a session that refits rarely
    proposes MAX_PROPOSALS trials, not twice its refit interval."""
    from psyphy_numpyro.design.store import SessionStore

    for every, want in ((100, 200), (10**5, refit.MAX_PROPOSALS)):
        path = tmp_path / f"s{every}.sqlite"
        pn.Experiment(path, live=False, refit_every=every, num_initial=10).close()
        store = SessionStore(path, read_only=True)
        try:
            settings = pn.Experiment.read_settings(path)
            assert refit.make_job(store, settings)["num_proposals"] == want
        finally:
            store.close()

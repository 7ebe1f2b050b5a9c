"""Stopping and progress a person can see (issue 22): ``Experiment(stop=...)`` with a trial
count, a time budget and a target precision (the median width of the 90% threshold
intervals over the region, in % of the threshold); ``exp.progress()``, ``exp.done``,
``experiment status`` and the server's status report them in plain units."""

import json
import math
import warnings

import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro import cli
from psyphy_numpyro.design import refit, stopping
from psyphy_numpyro.design.store import SessionStore
from psyphy_numpyro.rays import unit_directions

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

SMALL = pn.WPPM(input_dim=2, basis_degree=1, num_samples=16, estimator="reparam")
NO_REFIT = {"num_initial": 10_000, "refit_every": 10_000}
POINTS = np.array([[0.1, 0.2], [0.3, -0.4], [-0.5, 0.5]])


def _run(exp, n, batch=10):
    while n > 0:
        ids, _ = exp.ask(min(batch, n))
        exp.tell(ids, np.ones(len(ids), int))
        n -= len(ids)


def test_the_trial_count_rule_stops_and_is_kept_on_reopening(tmp_path):
    path = tmp_path / "s.sqlite"
    with pn.Experiment(path, SMALL, live=False, stop={"trials": 30}, **NO_REFIT) as exp:
        p = exp.progress()
        assert (p["told"], p["refits"], p["precision"], p["stop"], p["reason"]) == (
            0, 0, None, False, None)
        assert p["max_trials"] == 30 and p["trials_left_estimate"] == 30
        assert p["target"] is None and p["elapsed_s"] is None  # no ask yet
        _run(exp, 20)
        p = exp.progress()
        assert (p["told"], p["trials_left_estimate"], p["stop"]) == (20, 10, False)
        assert not exp.done
        _run(exp, 10)
        assert exp.done
        p = exp.progress()
        assert p["stop"] and p["reason"] == "30 trials told (limit 30)"
        assert p["trials_left_estimate"] == 0
        ids, _ = exp.ask(2)  # still hands out trials; the status says stopped
        assert len(ids) == 2
        st = exp.status()
        assert st["stop"] == {"trials": 30} and st["progress"]["stop"]
        json.dumps(st)
    with pn.Experiment(path, live=False) as again:  # the rule is stored with the session
        assert again.settings["stop"] == {"trials": 30} and again.done
    assert pn.Experiment.read_settings(path)["stop"] == {"trials": 30}
    with pytest.raises(ValueError, match="created with stop="):
        pn.Experiment(path, stop={"trials": 40})


def test_the_time_rule_counts_from_the_first_ask(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(stopping, "_now", lambda: clock[0])
    path = tmp_path / "t.sqlite"
    exp = pn.Experiment(path, SMALL, live=False, stop={"seconds": 60}, **NO_REFIT)
    clock[0] = 1500.0  # time before the first ask does not count
    assert exp.progress()["elapsed_s"] is None and not exp.done
    _run(exp, 5)  # first ask at 1500
    clock[0] = 1530.0
    p = exp.progress()
    assert p["elapsed_s"] == 30.0 and not p["stop"] and p["max_seconds"] == 60.0
    _run(exp, 5)  # a later ask leaves the start as it is
    exp.close()
    clock[0] = 1560.0
    with pn.Experiment(path, live=False) as exp:  # reopened: it keeps counting
        p = exp.progress()
        assert p["elapsed_s"] == 60.0 and p["stop"] and exp.done
        assert p["reason"] == "60 s since the first trial (limit 60 s)"


def _fake_refit(fit_of):
    """A refit job that records the fit ``fit_of(data)`` (not saved to a file)."""
    def job(job):
        fit = fit_of(job["data"])
        proposals = (np.zeros((2, 2)), np.full((2, 2), 0.1))
        return {"fit": fit, "seq": job["seq"], "path": job["path"], "proposals": proposals}
    return job


def _posterior(data, spread=0.2, num_draws=32):
    W = np.asarray(SMALL.sample_prior(0)["W"])
    rng = np.random.default_rng(0)
    draws = W * (1 + spread * rng.standard_normal((1, num_draws) + W.shape))
    return pn.PosteriorFit(model=SMALL, data=data, draws=draws.astype(np.float32))


def _direct(fit, refs):
    """The precision computed directly from pn.thresholds: the median over the rays of
    100 * (hi - lo) / median of the 90% intervals."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rays without a crossing
        th = pn.thresholds(fit, refs, directions=unit_directions(2, 8), level=0.9)
    width = 100 * (th.interval[1] - th.interval[0]) / th.median
    return float(np.median(width[np.isfinite(width)]))


def test_precision_rule_and_progress_match_a_direct_computation(tmp_path, monkeypatch):
    monkeypatch.setattr(refit, "refit_job", _fake_refit(_posterior))
    fits = {}
    for name, target in (("loose", 1e6), ("tight", 1.0)):
        exp = pn.Experiment(tmp_path / f"{name}.sqlite", SMALL, live=False, region=POINTS,
                            stop={"precision": target, "trials": 10_000}, **NO_REFIT)
        _run(exp, 40)
        assert exp.progress()["precision"] is None  # no fit yet
        exp.refit()
        _run(exp, 10)
        fits[name] = exp
    fit = fits["loose"].fit
    direct = _direct(fit, POINTS)  # the region's points x 8 directions
    assert stopping.fit_precision(fit, POINTS, unit_directions(2, 8)) == pytest.approx(direct)

    p = fits["loose"].progress()
    assert p["precision"] == pytest.approx(direct, abs=1e-3)
    assert (p["told"], p["refits"], p["precision_fit_trials"]) == (50, 1, 40)
    assert p["stop"] and p["trials_left_estimate"] == 0
    assert p["reason"].startswith(f"median 90% threshold interval {direct:.3g}% ")
    assert "24 threshold rays" in p["precision_means"]  # 3 points x 8 directions

    tight = fits["tight"]
    p = tight.progress()
    assert not p["stop"] and p["target"] == 1.0
    # widths shrink as 1/sqrt(n): 40 * (precision / target)^2 trials in all
    want = math.ceil(40 * (p["precision"] / 1.0) ** 2) - 50
    assert p["trials_left_estimate"] == min(want, 10_000 - 50)

    # computed once per fit: cached in memory and in the fits folder (status reads that)
    monkeypatch.setattr(stopping, "fit_precision", lambda *a, **k: pytest.fail("recomputed"))
    assert tight.progress()["precision"] == p["precision"]
    status, direct = tight.status()["progress"], tight.progress()
    # the wall clock moves between the two calls (elapsed_s is rounded to milliseconds)
    a, b = status.pop("elapsed_s"), direct.pop("elapsed_s")
    assert a is not None and b is not None and 0.0 <= b - a < 1.0
    assert status == direct
    store = SessionStore(tight.path, read_only=True)
    try:
        assert stopping.cached_progress(store)["precision"] == p["precision"]
    finally:
        store.close()
    tight.close()
    with pn.Experiment(tmp_path / "tight.sqlite", live=False) as again:  # from the file
        assert again.progress()["precision"] == p["precision"]
    fits["loose"].close()


@pytest.mark.parametrize("stop, error, match", [
    ({"trials": 0}, ValueError, r"stop\['trials'\]"),
    ({"trials": 2.5}, TypeError, "must be an integer"),
    ({"seconds": -1}, ValueError, r"stop\['seconds'\]"),
    ({"precision": "10"}, TypeError, "must be a real number"),
    ({"precision": float("nan")}, ValueError, "precision"),
    ({"trails": 10}, ValueError, "unknown stop rule"),
    (3000, TypeError, "stop must be a dict"),
])
def test_bad_stop_rules_raise_before_anything_is_made(tmp_path, stop, error, match):
    path = tmp_path / "bad.sqlite"
    with pytest.raises(error, match=match):
        pn.Experiment(path, SMALL, stop=stop)
    assert not path.exists()


def _call(capsys, *args):
    code = cli.main(["experiment", *map(str, args)])
    out, err = capsys.readouterr()
    return code, json.loads(out.splitlines()[-1]), err


def test_cli_stop_options_and_status_progress(tmp_path, capsys):
    path = tmp_path / "c.sqlite"
    code, obj, err = _call(capsys, "new", path, "--num-initial", 10_000, "--max-trials", 8,
                           "--max-seconds", 3600, "--target-precision", 12.5)
    assert code == 0, err
    assert obj["stop"] == {"trials": 8, "seconds": 3600.0, "precision": 12.5}
    code, obj, err = _call(capsys, "status", path)
    assert code == 0, err
    p = obj["progress"]
    assert (p["told"], p["refits"], p["precision"], p["stop"]) == (0, 0, None, False)
    assert p["target"] == 12.5 and p["trials_left_estimate"] == 8
    code, obj, err = _call(capsys, "ask", path, "--n", 8, "--refit", "off")
    assert code == 0, err
    code, _, err = _call(capsys, "tell", path, "--ids", ",".join(map(str, obj["ids"])),
                         "--responses", ",".join("1" * 8), "--refit", "off")
    assert code == 0, err
    code, obj, err = _call(capsys, "status", path)
    p = obj["progress"]
    assert p["stop"] and p["reason"] == "8 trials told (limit 8)" and p["told"] == 8
    assert p["elapsed_s"] is not None and p["elapsed_s"] < 3600
    for bad, match in (("--max-trials=0", "trials"), ("--target-precision=-1", "precision")):
        code, obj, _ = _call(capsys, "new", tmp_path / "bad.sqlite", bad)
        assert code == 2 and match in obj["error"], obj
    assert not (tmp_path / "bad.sqlite").exists()


def test_server_status_reports_progress(tmp_path):
    from fastapi.testclient import TestClient

    from psyphy_numpyro.server import create_app

    with TestClient(create_app(tmp_path)) as tc:
        r = tc.post("/sessions", json={"name": "s.sqlite", "stop": {"trials": 5},
                                       **NO_REFIT})
        assert r.status_code == 200, r.text
        assert r.json()["stop"] == {"trials": 5} and r.json()["progress"]["stop"] is False
        ids = tc.post("/sessions/s.sqlite/ask", json={"n": 5}).json()["ids"]
        tc.post("/sessions/s.sqlite/tell", json={"ids": ids, "responses": [1] * 5})
        p = tc.get("/sessions/s.sqlite/status").json()["progress"]
        assert p["stop"] and p["reason"] == "5 trials told (limit 5)" and p["told"] == 5
        r = tc.post("/sessions", json={"name": "s.sqlite", "stop": {"trials": 6}})
        assert r.status_code == 400 and "stop" in r.json()["error"]


@pytest.mark.slow
def test_a_cli_refit_caches_the_precision_that_status_prints(tmp_path, capsys):
    path = tmp_path / "r.sqlite"
    code, _, err = _call(capsys, "new", path, "--num-initial", 20, "--basis-degree", 1,
                         "--num-samples", 16, "--estimator", "reparam", "--map-steps", 40,
                         "--warm-steps", 20, "--num-draws", 16, "--target-precision", 1e6)
    assert code == 0, err
    _, a, _ = _call(capsys, "ask", path, "--n", 20, "--refit", "off")
    resp = (np.linalg.norm(np.diff(np.asarray(a["stimuli"]), axis=1)[:, 0], axis=1) > 0.1)
    code, _, err = _call(capsys, "tell", path, "--ids", ",".join(map(str, a["ids"])),
                         "--responses", ",".join(map(str, resp.astype(int))),
                         "--refit", "wait")
    assert code == 0, err
    _, s, _ = _call(capsys, "status", path)  # no JAX: the refit process cached it
    p = s["progress"]
    assert s["fits"] == 1 and p["refits"] == 1 and p["precision_fit_trials"] == 20
    fit = pn.load_fit(s["latest_fit"]["file"])
    refs, _ = stopping.precision_rays(None, 2)  # the whole domain: a 5 x 5 grid
    assert p["precision"] == pytest.approx(_direct(fit, refs), abs=1e-3)
    assert p["stop"] and p["reason"].startswith("median 90% threshold interval")

"""``psyphy-numpyro experiment``: the JSON command line over the Experiment session file."""

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro import cli
from psyphy_numpyro.cli import experiment as cx
from psyphy_numpyro.cli import experiment_refit
from psyphy_numpyro.design.store import FileLock

PREFIX = "psyphy-numpyro: error:"
# a small, quickly compiled model and quick refits (as in test_design)
MODEL_ARGS = ("--basis-degree", "1", "--num-samples", "16", "--estimator", "reparam")
QUICK_ARGS = ("--map-steps", "40", "--warm-steps", "20", "--num-draws", "16")
SMALL = pn.WPPM(input_dim=2, basis_degree=1, num_samples=16, estimator="reparam")
QUICK_FITS = {"map_steps": 40, "warm_steps": 20, "num_draws": 16}


def _call(capsys, *args):
    """``experiment ARGS`` in this process: (exit status, the JSON object, stderr)."""
    code = cli.main(["experiment", *map(str, args)])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1, out  # exactly one JSON object, on one line
    obj = json.loads(lines[0])
    assert obj["ok"] is (code == 0)
    return code, obj, err


def _snapshot(path):
    """Everything a call could change: the trials table, the fits and the settings."""
    con = sqlite3.connect(path)
    try:
        return (con.execute("SELECT * FROM trials ORDER BY id").fetchall(),
                con.execute("SELECT * FROM fits ORDER BY seq").fetchall(),
                con.execute("SELECT * FROM meta ORDER BY key").fetchall())
    finally:
        con.close()


def _respond(stimuli, seed):
    """A deterministic simulated observer: correct when the comparison is far enough."""
    st = np.asarray(stimuli)
    d = np.linalg.norm(st[:, 1] - st[:, 0], axis=1)
    p = 1 / 3 + (2 / 3) * (1 - np.exp(-((d / 0.08) ** 2)))
    return (np.random.default_rng(seed).uniform(size=len(d)) < p).astype(int).tolist()


def _new(capsys, path, *extra, num_initial=40, refit_every=20, seed=5):
    code, obj, err = _call(capsys, "new", path, "--dim", 2, "--seed", seed, "--num-initial",
                           num_initial, "--refit-every", refit_every, *MODEL_ARGS,
                           *QUICK_ARGS, *extra)
    assert code == 0, err
    return obj


def test_new_ask_tell_status_round_trip(tmp_path, capsys, monkeypatch):
    path = tmp_path / "s.sqlite"
    obj = _new(capsys, path)
    assert obj["created"] is True and obj["input_dim"] == 2 and obj["seed"] == 5
    assert obj["num_initial"] == 40 and obj["refit_every"] == 20
    assert obj["fit_options"] == {**QUICK_FITS, "criterion": "info_gain"}
    assert pn.WPPM(**{**obj["model"], "lapse_prior": tuple(obj["model"]["lapse_prior"])}) == SMALL

    code, a, err = _call(capsys, "ask", path, "--n", 4)
    assert code == 0, err
    assert a["ids"] == [1, 2, 3, 4] and a["sources"] == ["space"] * 4 and a["reissued"] == 0
    st = np.array(a["stimuli"])
    assert st.shape == (4, 2, 2)
    np.testing.assert_array_equal(a["ref"], st[:, 0])
    np.testing.assert_array_equal(a["comparison"], st[:, 1])
    # exactly the session's space-filling start, through JSON without loss
    ref, comp = pn.space_filling_trials(4, 2, seed=5)
    np.testing.assert_array_equal(st[:, 0], ref)
    np.testing.assert_array_equal(st[:, 1], comp)
    assert a["refit"] == {"state": "not_due", "next_refit_at": 40}

    # three ways to tell: --ids/--responses, --json (MATLAB's scalar form), stdin
    code, t, err = _call(capsys, "tell", path, "--ids", "2,1", "--responses", "1,0")
    assert code == 0, err
    assert t["told"] == 2 and t["ids"] == [2, 1] and t["total_told"] == 2 and t["pending"] == 2
    code, t, err = _call(capsys, "tell", path, "--json", '{"ids": 4, "responses": true}')
    assert code == 0, err
    assert t["ids"] == [4] and t["total_told"] == 3
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"ids": [3], "responses": [0]}'))
    code, t, err = _call(capsys, "tell", path)
    assert code == 0, err
    assert t["total_told"] == 4 and t["pending"] == 0

    with pn.Experiment(path, SMALL, seed=5, num_initial=40, refit_every=20,
                       fit_options=QUICK_FITS, auto_refit=False) as exp:
        np.testing.assert_array_equal(exp.trial_ids, [2, 1, 4, 3])  # in told order
        np.testing.assert_array_equal(exp.data.responses, [1, 0, 1, 0])
        np.testing.assert_array_equal(exp.data.stimuli, st[[1, 0, 3, 2]])

    code, s, err = _call(capsys, "status", path)
    assert code == 0, err
    assert (s["told"], s["pending"], s["expired"], s["fits"]) == (4, 0, 0, 0)
    assert s["latest_fit"] is None and s["last_refit"] is None and s["refitting"] is False
    assert s["next_refit_at"] == 40 and s["refit_due"] is False and s["pending_ids"] == []


def test_pending_trials_are_reissued_to_the_next_ask_and_expire_drops_them(tmp_path, capsys):
    path = tmp_path / "s.sqlite"
    _new(capsys, path)
    _, a, _ = _call(capsys, "ask", path, "--n", 3)
    _, b, _ = _call(capsys, "ask", path, "--n", 4)  # a fresh process: pending ones first
    assert b["ids"] == a["ids"] + [4] and b["reissued"] == 3
    assert b["stimuli"][:3] == a["stimuli"]
    _, c, _ = _call(capsys, "ask", path, "--n", 2, "--no-reissue")
    assert c["ids"] == [5, 6] and c["reissued"] == 0 and c["pending"] == 6
    code, e, err = _call(capsys, "expire", path, "--ids", "1,5")
    assert code == 0, err
    assert e["expired"] == [1, 5] and e["pending"] == 4
    code, e, err = _call(capsys, "expire", path, "--ids", "1")
    assert code == 2 and "trial 1 is not pending; nothing was expired" in e["error"]
    _, s, _ = _call(capsys, "status", path)
    assert s["pending_ids"] == [2, 3, 4, 6] and s["expired"] == 2
    code, e, _ = _call(capsys, "expire", path)
    assert e["expired"] == [2, 3, 4, 6]
    _, d, _ = _call(capsys, "ask", path, "--n", 1)
    assert d["ids"] == [7]


def test_new_refuses_an_existing_session_unless_exist_ok_with_the_same_settings(tmp_path,
                                                                                capsys):
    path = tmp_path / "s.sqlite"
    _new(capsys, path)
    before = _snapshot(path)
    code, obj, err = _call(capsys, "new", path, "--dim", 2)
    assert code == 2 and "already exists" in obj["error"] and err.startswith(PREFIX)
    obj = _new(capsys, path, "--exist-ok")
    assert obj["created"] is False
    # settings left out are the stored ones (seed 5, refit_every 20, its refit options)
    code, obj, _ = _call(capsys, "new", path, "--exist-ok")
    assert code == 0 and obj["created"] is False and obj["seed"] == 5, obj
    code, obj, _ = _call(capsys, "new", path, "--dim", 2, "--seed", 6, "--num-initial", 40,
                         "--refit-every", 20, *MODEL_ARGS, *QUICK_ARGS, "--exist-ok")
    assert code == 2 and "the session was created with seed=5" in obj["error"]
    assert _snapshot(path) == before


def test_bad_input_is_an_error_that_changes_nothing(tmp_path, capsys, monkeypatch):
    path = tmp_path / "s.sqlite"
    _new(capsys, path)
    _call(capsys, "ask", path, "--n", 4)
    _call(capsys, "tell", path, "--ids", "1", "--responses", "1")
    (tmp_path / "trials.csv").write_text("ref_x,comparison_x,response\n0.1,0.2,1\n")
    cases = [
        (["tell", path, "--ids", "99", "--responses", "1"], "unknown trial id 99"),
        (["tell", path, "--ids", "2,2", "--responses", "1,0"], "trial id 2 appears twice"),
        (["tell", path, "--ids", "2,1", "--responses", "1,1"], "trial 1 was already told"),
        (["tell", path, "--ids", "2", "--responses", "2"], "responses must be 0 or 1, got 2"),
        (["tell", path, "--ids", "2,3", "--responses", "1"], "one entry per id (2)"),
        (["tell", path, "--ids", "2,x", "--responses", "1,1"], "--ids must be comma-separated"),
        (["tell", path, "--ids", "2"], "--ids and --responses go together"),
        (["tell", path, "--json", '{"ids": [2], "responses": [0.5]}'],
         "responses must be 0 or 1, got 0.5"),
        (["tell", path, "--json", '{"ids": [2], "responses": ["1"]}'],
         'responses[0] = "1" is not 0/1 or true/false'),
        (["tell", path, "--json", '{"ids": [true], "responses": [1]}'],
         "ids[0] = true is not an integer trial id"),
        (["tell", path, "--json", '{"ids": [2], "response": [1]}'],
         "missing ['responses']; unknown ['response']"),
        (["tell", path, "--json", "[2, 1]"], "expected a JSON object"),
        (["tell", path, "--json", '{"ids": [2], '], "--json: not valid JSON"),
        (["tell", path, "--json", '{"ids": [2], "responses": [1]}', "--ids", "2",
          "--responses", "1"], "give --json or --ids/--responses, not both"),
        (["tell", path], "tell needs responses"),  # stdin is a terminal
        (["ask", tmp_path / "nope.sqlite"], "nope.sqlite: no such session file"),
        (["ask", tmp_path / "trials.csv"], "trials.csv: not a psyphy_numpyro session file"),
        (["ask", path, "--n", 0], "num_trials must be >= 1"),
        (["status", tmp_path], "is a folder, not a session file"),
        (["new", tmp_path / "x.sqlite", "--dim", 4], "input_dim must be in [1, 3], got 4"),
        (["new", tmp_path / "x.sqlite", "--num-draws", 1], "--num-draws must be >= 2, got 1"),
        (["new", tmp_path / "x.sqlite", "--distances", 0.3, 0.1], "distances must satisfy"),
        (["new", tmp_path / "no_dir" / "x.sqlite"], "no such folder for the session file"),
    ]

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    before = _snapshot(path)
    for args, message in cases:
        code, obj, err = _call(capsys, *args)
        assert code == 2 and obj["status"] == 2, (args, obj)
        assert message in obj["error"], (args, obj["error"])
        assert err.startswith(PREFIX) and message in err, (args, err)
        assert _snapshot(path) == before, args
    # ask does not create a session; a refused new leaves no file
    assert not (tmp_path / "nope.sqlite").exists() and not (tmp_path / "x.sqlite").exists()


def test_usage_errors_also_answer_in_json(tmp_path, capsys):
    path = tmp_path / "s.sqlite"
    cases = [
        (["ask", path, "--n", "many"], "argument --n/-n: invalid int value: 'many'"),
        (["ask", path, "--bogus"], "unrecognized arguments: --bogus"),
        (["tell"], "the following arguments are required: session"),
        (["frobnicate", path], "invalid choice: 'frobnicate'"),
        (["new", path, "--lapse-rate", "often"], "expected a number in [0, 0.5) or 'learn'"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as exc:
            cli.main(["experiment", *map(str, args)])
        assert exc.value.code == 2
        out, err = capsys.readouterr()
        obj = json.loads(out)
        assert obj == {"ok": False, "error": obj["error"], "status": 2}
        assert message in obj["error"] and message in err, (args, obj, err)
    assert not path.exists()


def test_a_bug_answers_in_json_and_keeps_its_traceback(tmp_path, capsys, monkeypatch):
    def broken(args):
        raise KeyError("an internal bug")

    monkeypatch.setitem(cx._ACTIONS, "status", broken)
    with pytest.raises(KeyError, match="an internal bug"):
        cli.main(["experiment", "status", str(tmp_path / "s.sqlite")])
    obj = json.loads(capsys.readouterr().out)
    assert obj["ok"] is False and obj["status"] == 1
    assert obj["error"] == "internal error: KeyError: 'an internal bug'"


def test_the_refit_lock_is_exclusive(tmp_path):
    a, b = FileLock(tmp_path / "refit.lock"), FileLock(tmp_path / "refit.lock")
    assert not a.held_elsewhere()
    assert a.acquire(blocking=False)
    assert not b.acquire(blocking=False) and b.held_elsewhere()
    a.release()
    assert not b.held_elsewhere() and b.acquire(blocking=False)
    b.release()


def test_a_status_probe_of_the_lock_does_not_make_a_due_refit_look_running(tmp_path):
    """A lock held for an instant (status probing it) is taken a moment later; one held
    throughout (a running refit) is not."""
    import threading

    probe, caller = FileLock(tmp_path / "refit.lock"), FileLock(tmp_path / "refit.lock")
    assert probe.acquire(blocking=False)
    threading.Timer(0.05, probe.release).start()
    assert experiment_refit.acquire_soon(caller, tries=200)  # up to 10 s: a loaded machine is slow
    caller.release()
    refit = FileLock(tmp_path / "refit.lock")
    assert refit.acquire(blocking=False)
    assert not experiment_refit.acquire_soon(caller)
    refit.release()


def _run(*args, cwd, stdin=None):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    res = subprocess.run([sys.executable, "-m", "psyphy_numpyro", "experiment",
                          *map(str, args)], input=stdin, capture_output=True, text=True,
                         cwd=cwd, env=env, timeout=300)
    lines = res.stdout.splitlines()
    assert len(lines) == 1, (res.stdout, res.stderr)
    return res.returncode, json.loads(lines[0]), res.stderr


def test_console_round_trip(tmp_path, capsys):
    """new -> ask -> tell (JSON on stdin), each a fresh ``python -m`` process, -> status."""
    code, obj, err = _run("new", "obs.sqlite", "--dim", 2, "--seed", 1, cwd=tmp_path)
    assert code == 0 and obj["created"] and obj["model"] is None, err
    code, a, err = _run("ask", "obs.sqlite", "--n", 3, cwd=tmp_path)
    assert code == 0 and a["ids"] == [1, 2, 3] and np.shape(a["stimuli"]) == (3, 2, 2), err
    reply = json.dumps({"ids": a["ids"], "responses": [1, 0, 1]})
    code, t, err = _run("tell", "obs.sqlite", cwd=tmp_path, stdin=reply)
    assert code == 0 and t["total_told"] == 3, err
    code, s, err = _call(capsys, "status", tmp_path / "obs.sqlite")  # in-process: faster
    assert code == 0 and (s["told"], s["pending"], s["num_initial"]) == (3, 0, 300), err
    with pn.Experiment(tmp_path / "obs.sqlite", seed=1, auto_refit=False) as exp:
        np.testing.assert_array_equal(exp.data.responses, [1, 0, 1])
        np.testing.assert_array_equal(exp.data.stimuli, a["stimuli"])


# -- refits (slow: they compile the fit programs) -----------------------------------------
def _wait_for(capsys, path, predicate, timeout=600):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        _, s, _ = _call(capsys, "status", path)
        if predicate(s):
            return s
        time.sleep(1.0)
    raise AssertionError(f"status never satisfied the condition: {s}")


@pytest.mark.slow
def test_tell_starts_a_background_refit_and_ask_uses_it_when_done(tmp_path, capsys):
    path = tmp_path / "s.sqlite"
    _new(capsys, path, num_initial=20, refit_every=10)
    _, a, _ = _call(capsys, "ask", path, "--n", 20)
    # the real console, its output captured: it returns without waiting for the refit it
    # starts (the refit process holds none of its pipes)
    code, t, err = _run("tell", path, "--ids", ",".join(map(str, a["ids"])), "--responses",
                        ",".join(map(str, _respond(a["stimuli"], 1))), cwd=tmp_path)
    assert code == 0, err
    assert t["refit"]["state"] == "started" and t["total_told"] == 20
    # the lock passed to the refit process with no gap: the refit is running, not due twice
    _, s, _ = _call(capsys, "status", path)
    assert s["refitting"] is True and s["fits"] == 0
    _, r, _ = _call(capsys, "refit", path, "--if-due")
    assert r["refit"] == {"state": "running"}
    _, b, _ = _call(capsys, "ask", path, "--n", 5)  # answers at once, space-filling
    assert b["sources"] == ["space"] * 5 and b["refit"]["state"] == "running"
    s = _wait_for(capsys, path, lambda s: not s["refitting"])
    assert s["fits"] == 1 and s["last_refit"]["state"] == "finished", s
    assert s["last_refit"]["pid"] == t["refit"]["pid"] and s["last_refit"]["num_trials"] == 20
    assert s["latest_fit"]["num_trials"] == 20 and s["next_refit_at"] == 30
    fit = pn.load_fit(s["latest_fit"]["file"])
    assert isinstance(fit, pn.LaplaceFit) and len(fit.data) == 20
    _, c, _ = _call(capsys, "ask", path, "--n", 3, "--no-reissue")
    assert c["sources"] == ["fit0"] * 3
    log = (tmp_path / "s.sqlite.fits" / "refit.log").read_text()
    assert "refit of 20 responses started" in log and "refit finished" in log


@pytest.mark.slow
def test_killed_refit_is_reported_and_loses_nothing(tmp_path, capsys):
    path = tmp_path / "s.sqlite"
    _new(capsys, path, num_initial=10, refit_every=10)
    _, a, _ = _call(capsys, "ask", path, "--n", 10)
    _, t, _ = _call(capsys, "tell", path, "--ids", ",".join(map(str, a["ids"])),
                    "--responses", ",".join(map(str, _respond(a["stimuli"], 2))))
    pid = t["refit"]["pid"]
    _wait_for(capsys, path, lambda s: (s["last_refit"] or {}).get("state") == "running")
    before = _snapshot(path)
    os.kill(pid, signal.SIGKILL)
    s = _wait_for(capsys, path, lambda s: not s["refitting"])
    assert s["last_refit"]["state"] == "interrupted" and s["fits"] == 0
    assert _snapshot(path) == before  # every acknowledged response is there, once
    code, r, err = _call(capsys, "refit", path)  # the lock is free again
    assert code == 0 and r["refit"]["state"] == "finished" and r["refit"]["fit"] == 0, err
    _, s, _ = _call(capsys, "status", path)
    assert s["fits"] == 1 and s["last_refit"]["state"] == "finished"


@pytest.mark.slow
def test_wait_sessions_match_the_library_offline_session_bit_for_bit(tmp_path, capsys):
    """``--wait`` refits in the calling process: the same trials and fits as
    ``Experiment(live=False)`` with the same seed and responses."""
    path = tmp_path / "cli.sqlite"
    _new(capsys, path, num_initial=30, refit_every=20, seed=7)
    lib = pn.Experiment(tmp_path / "lib.sqlite", SMALL, seed=7, live=False, num_initial=30,
                        refit_every=20, fit_options=QUICK_FITS)
    for b in range(7):  # refits at 30, 50 and 70 responses
        _, a, _ = _call(capsys, "ask", path, "--n", 10, "--wait")
        ids, st = lib.ask(10)
        assert a["ids"] == ids.tolist()
        np.testing.assert_array_equal(a["stimuli"], st)
        y = _respond(st, b)
        code, t, err = _call(capsys, "tell", path, "--ids", ",".join(map(str, a["ids"])),
                             "--responses", ",".join(map(str, y)), "--wait")
        assert code == 0, err
        lib.tell(ids, y)
        if t["total_told"] in (30, 50, 70):
            assert t["refit"]["state"] == "finished", t
        else:
            assert t["refit"]["state"] == "not_due", t
    _, a, _ = _call(capsys, "ask", path, "--n", 10, "--wait")
    ids, st = lib.ask(10)
    np.testing.assert_array_equal(a["stimuli"], st)
    assert a["sources"] == lib.sources(ids) == ["fit2"] * 10
    fit = pn.load_fit(tmp_path / "cli.sqlite.fits" / "fit_0002.nc")
    np.testing.assert_array_equal(fit.draws, lib.fit.draws)
    lib.close()


@pytest.mark.slow
def test_a_tell_killed_at_any_moment_records_all_of_it_or_nothing(tmp_path, capsys):
    """SIGKILL during ``tell`` processes: every acknowledged call is in the session once,
    and a killed call is recorded whole or not at all."""
    path = tmp_path / "s.sqlite"
    _new(capsys, path, num_initial=1000)
    _, a, _ = _call(capsys, "ask", path, "--n", 36)
    rng = np.random.default_rng(0)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    acknowledged, killed = {}, []
    for k in range(6):
        ids, y = a["ids"][6 * k: 6 * k + 6], rng.integers(0, 2, 6).tolist()
        proc = subprocess.Popen([sys.executable, "-m", "psyphy_numpyro", "experiment", "tell",
                                 str(path), "--ids", ",".join(map(str, ids)), "--responses",
                                 ",".join(map(str, y))], stdout=subprocess.PIPE, text=True,
                                env=env)
        if k % 2:
            time.sleep(rng.uniform(0.5, 4.0))  # somewhere in start-up, the commit or after
            proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
        if out.strip():
            assert json.loads(out.splitlines()[-1])["ok"]
            acknowledged.update(zip(ids, y, strict=True))
        else:
            killed.append(dict(zip(ids, y, strict=True)))
    with pn.Experiment(path, SMALL, seed=5, num_initial=1000, refit_every=20,
                       fit_options=QUICK_FITS, auto_refit=False) as exp:
        told = dict(zip(exp.trial_ids.tolist(), exp.data.responses.tolist(), strict=True))
        assert len(told) == exp.num_told  # each trial once
    assert len(acknowledged) >= 18
    for i, y in acknowledged.items():
        assert told[i] == y
    for call in killed:
        recorded = [i in told for i in call]
        assert all(recorded) or not any(recorded)
        if all(recorded):
            assert all(told[i] == y for i, y in call.items())
    assert set(told) <= set(acknowledged) | {i for call in killed for i in call}

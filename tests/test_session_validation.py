"""Validation trials inside a session (issue 22): a fixed MOCS design interleaved at a
fraction, labelled ``"validation"``, held out of every fit, durable after ``kill -9``."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import types

import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro import cli
from psyphy_numpyro.design import refit as pipeline
from psyphy_numpyro.errors import InvalidInput, InvalidType

SMALL = pn.WPPM(input_dim=2, basis_degree=1, num_samples=16, estimator="reparam")
QUICK_FITS = {"map_steps": 40, "warm_steps": 20, "num_draws": 16}
SPEC = {"fraction": 0.25, "references": 3, "levels": [0.03, 0.08, 0.2], "repeats": 4}


def _respond(stimuli, seed):
    """A deterministic simulated observer: correct when the comparison is far enough."""
    d = np.linalg.norm(stimuli[:, 1] - stimuli[:, 0], axis=1)
    p = 1 / 3 + (2 / 3) * (1 - np.exp(-((d / 0.08) ** 2)))
    return (np.random.default_rng(seed).uniform(size=len(d)) < p).astype(int)


def _fake_refit(calls):
    """A refit that fits nothing: it notes the data it was given and proposes a few
    trials (so the policy, the counting and the recording run without fitting)."""
    def run(job):
        calls.append(job["data"])
        n = job["num_proposals"]
        refs = np.zeros((n, 2))
        comps = np.tile([0.1, 0.0], (n, 1))
        fit = types.SimpleNamespace(model=SMALL, data=job["data"])
        return {"fit": fit, "seq": job["seq"], "path": job["path"],
                "proposals": (refs, comps)}
    return run


def test_the_fraction_is_honoured_and_spread_evenly(tmp_path):
    exp = pn.Experiment(tmp_path / "s.sqlite", SMALL, live=False, auto_refit=False,
                        validation=SPEC)
    rng = np.random.default_rng(0)
    ids = []
    while len(ids) < 40:  # asks of varying sizes, half of them told
        got, st = exp.ask(int(rng.integers(1, 7)))
        ids += got.tolist()
        exp.tell(got, _respond(st, len(ids)))
    src = exp.sources(ids)
    for t in range(1, len(ids) + 1):  # every prefix holds floor(t * F) validation trials
        assert src[:t].count("validation") == math.floor(t * 0.25)
    # the design runs out after 3 * 3 * 4 = 36 validation trials: then only adaptive ones
    more, _ = exp.ask(200)
    src = exp.sources(np.concatenate([ids, more]))
    assert src.count("validation") == 36
    assert set(exp.sources(more[-60:])) == {"space"}
    st = exp.status()["validation"]
    assert st["total"] == 36 and st["told"] == src[:len(ids)].count("validation")
    exp.close()


def test_validation_trials_never_enter_data_or_a_refit(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "refit_job", _fake_refit(calls))
    exp = pn.Experiment(tmp_path / "s.sqlite", SMALL, live=False, num_initial=30,
                        refit_every=20, validation=SPEC)
    told_ids = []
    for b in range(8):
        ids, st = exp.ask(10)
        exp.tell(ids, _respond(st, b))
        told_ids += ids.tolist()
    src = dict(zip(told_ids, exp.sources(told_ids), strict=True))
    held = [i for i in told_ids if src[i] == "validation"]
    fitted = [i for i in told_ids if src[i] != "validation"]
    assert len(held) == 20 and len(fitted) == 60
    # data and trial_ids: the fitted trials only; validation_data: the held-out ones
    assert exp.trial_ids.tolist() == fitted and exp.validation_ids.tolist() == held
    assert len(exp.data) == 60 and len(exp.validation_data) == 20
    np.testing.assert_array_equal(exp.data.stimuli, exp.stimuli(fitted))
    np.testing.assert_array_equal(exp.validation_data.stimuli, exp.stimuli(held))
    assert exp.num_told == 80
    # the refits saw only fitted trials, and were due by them (30, then 50): not at 30 or
    # 50 told trials counting the validation ones
    # (ask refits when due: after the batch that took the fitted count to 50 or more)
    sizes = [len(d) for d in calls]
    assert len(sizes) == 2 and sizes[0] == 30 and 50 <= sizes[1] < 60
    held_stim = {tuple(s.ravel()) for s in exp.stimuli(held)}
    for d in calls:
        assert not held_stim & {tuple(s.ravel()) for s in np.asarray(d.stimuli)}
    assert exp.latest_fit_info()["num_trials"] == sizes[1]
    assert exp.next_refit_at == sizes[1] + 20
    # after the first refit the adaptive trials are the fit's proposals
    ids, _ = exp.ask(8)
    assert set(exp.sources(ids)) == {"fit1", "validation"}
    exp.close()


def test_the_adaptive_trials_are_todays_and_no_validation_changes_nothing(tmp_path):
    """Without ``validation`` a session's trials are today's; with it, its adaptive trials
    are the same sequence, validation trials in between."""
    def trials(name, **kw):
        exp = pn.Experiment(tmp_path / name, SMALL, seed=3, live=False, auto_refit=False,
                            **kw)
        ids = np.concatenate([exp.ask(k)[0] for k in (5, 1, 12, 7)])
        out = exp.stimuli(ids), exp.sources(ids), exp.settings
        exp.close()
        return out

    plain, plain_src, plain_settings = trials("plain.sqlite")
    none, none_src, none_settings = trials("none.sqlite", validation=None)
    np.testing.assert_array_equal(plain, none)
    assert plain_src == none_src == ["space"] * 25
    assert plain_settings["validation"] is None and "validation_design" not in plain_settings
    held, held_src, _ = trials("held.sqlite", validation=SPEC)
    adaptive = held[[s != "validation" for s in held_src]]
    np.testing.assert_array_equal(adaptive, plain[:len(adaptive)])


def test_offline_sessions_with_validation_are_bit_identical_per_seed(tmp_path):
    def session(name, seed, auto_refit=True):
        exp = pn.Experiment(tmp_path / name, SMALL, seed=seed, live=False, num_initial=30,
                            refit_every=30, fit_options=QUICK_FITS, validation=SPEC,
                            auto_refit=auto_refit)
        b = 0
        while exp.num_told < 50:
            ids, st = exp.ask(10)
            exp.tell(ids, _respond(st, 100 + b))
            b += 1
        ids, _ = exp.ask(10)
        return exp, ids

    a, ids_a = session("a.sqlite", 7)
    b, ids_b = session("b.sqlite", 7)
    c, _ = session("c.sqlite", 8, auto_refit=False)  # (its design only)
    assert a.status()["fits"] == 1
    np.testing.assert_array_equal(ids_a, ids_b)
    np.testing.assert_array_equal(a.stimuli(ids_a), b.stimuli(ids_b))
    np.testing.assert_array_equal(a.data.stimuli, b.data.stimuli)
    np.testing.assert_array_equal(a.validation_data.stimuli, b.validation_data.stimuli)
    np.testing.assert_array_equal(a.fit.draws, b.fit.draws)
    assert a.settings["validation_design"] == b.settings["validation_design"]
    assert a.settings["validation_design"] != c.settings["validation_design"]
    assert len(a.fit.data) == 30  # the fit saw no validation trial
    for exp in (a, b, c):
        exp.close()


def test_the_design_is_stored_and_reopening_goes_on_with_it(tmp_path):
    path = tmp_path / "s.sqlite"
    exp = pn.Experiment(path, SMALL, live=False, auto_refit=False, validation=SPEC)
    first, _ = exp.ask(20)
    exp.close()
    stored = pn.Experiment.read_settings(path)
    assert stored["validation"] == SPEC
    design = stored["validation_design"]
    assert len(design["refs"]) == 36 and design["conditions"] == 3
    # MOCS conditions: 3 references x 3 levels, each comparison in the domain
    refs, comps = np.array(design["refs"]), np.array(design["comparisons"])
    dist = np.round(np.linalg.norm(comps - refs, axis=1), 9)
    assert sorted(set(dist.tolist())) == SPEC["levels"]
    assert len({tuple(r) for r in refs}) == 3 and np.all(np.abs(comps) <= 1)
    with pytest.raises(InvalidInput, match="created with validation="):
        pn.Experiment(path, SMALL, live=False, validation={**SPEC, "fraction": 0.5})
    again = pn.Experiment(path, live=False, auto_refit=False)  # the stored spec wins
    assert again.settings["validation"] == SPEC
    ids, _ = again.ask(20)  # the left-pending trials first, then new ones
    src = again.sources(ids)
    assert ids.tolist() == first.tolist()
    ids, _ = again.ask(20)
    src = again.sources(np.concatenate([first, ids]))
    assert src.count("validation") == 10  # floor(40 * 0.25): the plan goes on
    # the validation trials are the design's, in its order
    held = np.concatenate([first, ids])[[s == "validation" for s in src]]
    np.testing.assert_array_equal(again.stimuli(held)[:, 0], refs[:10])
    np.testing.assert_array_equal(again.stimuli(held)[:, 1], comps[:10])
    again.close()


@pytest.mark.parametrize("spec, error, match", [
    ({"references": 3}, InvalidInput, "needs a 'fraction'"),
    ({"fraction": 1.0}, InvalidInput, "fraction must be"),
    ({"fraction": 0.0}, InvalidInput, "fraction must be"),
    ({"fraction": "half"}, InvalidType, "fraction must be a real number"),
    ({"fraction": 0.2, "level": 3}, InvalidInput, r"unknown validation keys \['level'\]"),
    ({"fraction": 0.2, "levels": [0.1, -0.1]}, InvalidInput, "levels must be > 0"),
    ({"fraction": 0.2, "levels": 1}, InvalidInput, "levels must be >= 2"),
    ({"fraction": 0.2, "repeats": 0}, InvalidInput, "repeats must be >= 1"),
    ({"fraction": 0.2, "references": [[0.0, 0.0, 0.0]]}, InvalidInput, r"\(R, 2\)"),
    ({"fraction": 0.2, "references": [[0.0, 1.5]]}, InvalidInput, "outside the domain"),
    ({"fraction": 0.2, "references": [[0.99, 0.99]], "levels": [1.0, 3.0]}, InvalidInput,
     "do not fit in the domain"),
    ("some", InvalidType, "validation must be None"),
    (True, InvalidType, "validation must be None"),
])
def test_bad_specs_raise_before_anything_is_created(tmp_path, spec, error, match):
    path = tmp_path / "s.sqlite"
    with pytest.raises(error, match=match):
        pn.Experiment(path, SMALL, live=False, validation=spec)
    assert not path.exists()


def test_references_in_the_space_and_a_bare_fraction(tmp_path):
    space = pn.StimulusSpace.box([0.2, 0.2], [0.4, 0.4])
    refs = [[0.25, 0.3], [0.35, 0.35]]
    exp = pn.Experiment(tmp_path / "s.sqlite", SMALL, live=False, auto_refit=False,
                        space=space, validation={"fraction": 0.5, "references": refs,
                                                 "levels": 2, "repeats": 1})
    ids, st = exp.ask(8)
    held = [i for i, s in zip(ids, exp.sources(ids), strict=True) if s == "validation"]
    assert len(held) == 4
    got = {tuple(np.round(r, 9)) for r in exp.stimuli(held)[:, 0]}
    assert got == {tuple(r) for r in refs}  # in the space's units, as given
    exp.tell(ids, np.ones(8, int))
    assert exp.validation_data.space == space and len(exp.validation_data) == 4
    spec = exp.settings["validation"]
    exp.close()
    # reopened without the space: the given references are still read in its units
    again = pn.Experiment(tmp_path / "s.sqlite", live=False, auto_refit=False,
                          validation=spec)
    assert again.settings["validation"] == spec
    again.close()
    other = pn.Experiment(tmp_path / "t.sqlite", SMALL, live=False, auto_refit=False,
                          validation=0.1)
    assert other.settings["validation"] == {"fraction": 0.1, "references": 8, "levels": 6,
                                            "repeats": 10}
    design = other.settings["validation_design"]
    np.testing.assert_allclose(design["levels"], np.geomspace(0.005, 0.4, 6))
    assert len(design["refs"]) == 480
    other.close()


def test_validate_mocs_scores_a_fit_on_the_validation_data(tmp_path):
    """A simulated sitting: the observer answers every trial; ``validation_data`` is MOCS
    data that ``pn.validate_mocs`` scores (here the true observer, so no fit is needed)."""
    model = pn.WPPM(input_dim=2, basis_degree=1)
    params = model.sample_prior(3)
    spec = {"fraction": 0.5, "references": 3, "levels": [0.02, 0.05, 0.1, 0.2, 0.35],
            "repeats": 30}
    exp = pn.Experiment(tmp_path / "s.sqlite", model, live=False, auto_refit=False,
                        validation=spec, seed=2)
    ids, st = exp.ask(900)
    sim = pn.simulate_trials(model, params, st[:, 0], st[:, 1], key=1)
    exp.tell(ids, np.asarray(sim.responses))
    data = exp.validation_data
    assert len(data) == 450 and len(exp.data) == 450
    v = pn.validate_mocs((model, params), data, num_bootstrap=50)
    assert v.num_conditions == 3
    assert np.all(np.isfinite(v.fit_threshold))
    exp.close()


_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import psyphy_numpyro as pn
    exp = pn.Experiment(sys.argv[1], pn.WPPM(input_dim=2, basis_degree=1), live=False,
                        num_initial=10**6, validation={"fraction": 0.3, "references": 4,
                                                       "levels": 3, "repeats": 50})
    rng = np.random.default_rng(int(sys.argv[2]))
    while True:
        ids, st = exp.ask(int(rng.integers(1, 6)))
        y = rng.integers(0, 2, len(ids))
        exp.tell(ids, y)
        print(json.dumps({"ids": ids.tolist(), "y": y.tolist(),
                          "src": exp.sources(ids)}), flush=True)
""")


def test_sigkill_loses_no_acknowledged_validation_response(tmp_path):
    path = tmp_path / "killed.sqlite"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    acknowledged, sources = {}, {}
    for round_, lines in enumerate((40, 25)):  # killed twice, the second time after a reopen
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(round_)],
                                stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(lines):
            rec = json.loads(proc.stdout.readline())
            acknowledged.update(zip(rec["ids"], rec["y"], strict=True))
            sources.update(zip(rec["ids"], rec["src"], strict=True))
        time.sleep(0.01 * round_)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    exp = pn.Experiment(path, read_only=True)
    held = dict(zip(exp.validation_ids.tolist(), exp.validation_data.responses.tolist(),
                    strict=True))
    fitted = dict(zip(exp.trial_ids.tolist(), exp.data.responses.tolist(), strict=True))
    assert not set(held) & set(fitted)
    assert set(exp.sources(list(held))) <= {"validation"}
    assert "validation" not in set(exp.sources(list(fitted)))
    acked_held = {i for i, s in sources.items() if s == "validation"}
    assert len(acked_held) > 15
    for i, y in acknowledged.items():
        where = held if i in acked_held else fitted
        assert where.get(i) == y, f"acknowledged response of trial {i} lost or changed"
    assert exp.status()["validation"]["told"] == len(held) >= len(acked_held)
    exp.close()


def test_cli_new_with_validation_and_status_counts(tmp_path, capsys):
    path = tmp_path / "s.sqlite"

    def call(*args):
        code = cli.main(["experiment", *map(str, args)])
        out, err = capsys.readouterr()
        return code, json.loads(out.splitlines()[-1]), err

    code, obj, err = call("new", path, "--dim", 2, "--num-initial", 5,
                          "--validation-fraction", 0.5, "--validation-references", 2,
                          "--validation-levels", "0.05,0.1", "--validation-repeats", 3)
    assert code == 0, err
    assert pn.Experiment.read_settings(path)["validation"] == {
        "fraction": 0.5, "references": 2, "levels": [0.05, 0.1], "repeats": 3}
    code, obj, err = call("ask", path, "--n", 6)
    assert code == 0, err
    assert obj["sources"].count("validation") == 3
    ids = obj["ids"]
    code, obj, err = call("tell", path, "--ids", ",".join(map(str, ids)), "--responses",
                          ",".join(["1"] * 6))
    assert code == 0, err
    code, st, err = call("status", path)
    assert code == 0, err
    assert st["told"] == 6 and st["validation"]["told"] == 3
    assert st["validation"]["total"] == 12
    assert st["refit_due"] is False  # 3 fitted responses < num_initial 5
    code, obj, err = call("new", tmp_path / "t.sqlite", "--validation-repeats", 3)
    assert code == 2 and "need --validation-fraction" in obj["error"]
    code, obj, err = call("new", tmp_path / "u.sqlite", "--validation-fraction", 2)
    assert code == 2 and "fraction" in obj["error"]
    assert not (tmp_path / "u.sqlite").exists()


def test_server_passes_the_validation_spec(tmp_path):
    from fastapi.testclient import TestClient

    from psyphy_numpyro.server import create_app

    with TestClient(create_app(tmp_path)) as tc:
        body = {"name": "v.sqlite", "seed": 1, "num_initial": 10_000, "validation": SPEC}
        r = tc.post("/sessions", json=body)
        assert r.status_code == 200, r.text
        r = tc.post("/sessions/v.sqlite/ask", json={"n": 8})
        assert r.json()["sources"].count("validation") == 2
        r = tc.post("/sessions", json={"name": "v.sqlite", "validation": 0.5})
        assert r.status_code == 400 and "validation" in r.json()["error"]
        r = tc.post("/sessions", json={"name": "w.sqlite", "validation": {"fraction": 2}})
        assert r.status_code == 400 and "fraction" in r.json()["error"]
    assert pn.Experiment.read_settings(tmp_path / "v.sqlite")["validation"] == SPEC
    assert not (tmp_path / "w.sqlite").exists()

"""Warm starts from a file (issue 24): ``WeightPrior.save``/``load``, ``experiment new
--prior FILE`` and the server's ``"prior"``; the Python side is test_population_prior."""

import json

import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro import cli
from psyphy_numpyro.population_fit import PopulationFit
from psyphy_numpyro.priorfile import prior_model, read_prior

PREFIX = "psyphy-numpyro: error:"
# a small, quickly compiled model and quick refits (as in test_cli_experiment)
SMALL = pn.WPPM(input_dim=2, basis_degree=1, num_samples=16, estimator="reparam")
MODEL_ARGS = ("--num-samples", "16", "--estimator", "reparam")
QUICK_ARGS = ("--map-steps", "40", "--warm-steps", "20", "--num-draws", "16")


def _prior(shift=0.0):
    """A weight prior built directly (no population fit): a prior draw's mean, half the
    default prior's std."""
    mean = np.asarray(SMALL.sample_prior(3)["W"], np.float64) + shift
    return pn.WeightPrior(mean, 0.5 * SMALL.prior_std(), source="test prior")


def _call(capsys, *args):
    """``experiment ARGS`` in this process: (exit status, the JSON object, stderr)."""
    code = cli.main(["experiment", *map(str, args)])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1, out
    return code, json.loads(lines[0]), err


def test_weight_prior_file_round_trip_and_bad_files(tmp_path):
    prior = _prior()
    prior.save(tmp_path / "w.json")
    back = pn.WeightPrior.load(tmp_path / "w.json")
    assert back == prior and back.source == "test prior"
    assert read_prior(tmp_path / "w.json") == prior
    # the model its shape implies: input_dim, basis_degree and extra_dims
    model = prior_model(prior, num_samples=16, estimator="reparam")
    assert model == SMALL
    # a population fit file gives its fit (its model and new-observer prior)
    one = pn.TrialData(np.zeros((2, 2, 2)), [1, 0])
    pop = pn.MAPFit.from_params(SMALL, {"W": prior.mean}, one)
    PopulationFit(population=pop, observers=[pop, pop], tau=0.3, learned_tau=False,
                  model=SMALL, loss_history=np.zeros(1)).save(tmp_path / "pop.nc")
    got = read_prior(tmp_path / "pop.nc")
    assert isinstance(got, PopulationFit) and prior_model(got) == SMALL
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "text.txt").write_text("hello")
    for name, match in (("missing.json", "no such file"), ("bad.json", "not a JSON file"),
                        ("list.json", "neither"), ("text.txt", "neither")):
        with pytest.raises(ValueError, match=match):
            read_prior(tmp_path / name)
    (tmp_path / "kind.json").write_text('{"psyphy_numpyro_kind": "fit", "mean": 1}')
    with pytest.raises(ValueError, match="not a weight prior"):
        pn.WeightPrior.load(tmp_path / "kind.json")
    with pytest.raises(ValueError, match="2-D stimuli, not 3-D"):
        prior_model(prior, input_dim=3)


def test_cli_new_with_a_prior_stores_it_and_checks_reopenings(tmp_path, capsys):
    prior = _prior()
    prior.save(tmp_path / "w.json")
    path = tmp_path / "warm.sqlite"
    code, obj, err = _call(capsys, "new", path, "--prior", tmp_path / "w.json", *MODEL_ARGS)
    assert code == 0, err
    assert obj["created"] and obj["num_initial"] == 40  # 20 * d with a prior
    assert obj["model"]["basis_degree"] == 1 and "weight_prior" not in obj["model"]
    assert obj["prior"] == {"source": "test prior", "shape": list(prior.mean.shape),
                            "std_range": [float(prior.std.min()), float(prior.std.max())]}
    exp = pn.Experiment(path, read_only=True)
    assert exp.model == SMALL.with_prior(prior) and exp.model.weight_prior == prior
    exp.close()
    # reopened with the same prior (or none): fine; another prior, or a prior for a session
    # created without one: a one-line error, exit status 2, nothing changed
    code, obj, _ = _call(capsys, "new", path, "--exist-ok", "--prior", tmp_path / "w.json",
                         *MODEL_ARGS)
    assert code == 0 and not obj["created"]
    assert _call(capsys, "new", path, "--exist-ok")[0] == 0
    _prior(shift=0.1).save(tmp_path / "other.json")
    code, obj, err = _call(capsys, "new", path, "--exist-ok", "--prior",
                           tmp_path / "other.json", *MODEL_ARGS)
    assert code == 2 and "created with another prior (test prior)" in obj["error"]
    assert err.strip().splitlines()[-1].startswith(PREFIX)
    blank = tmp_path / "blank.sqlite"
    assert _call(capsys, "new", blank)[0] == 0
    code, obj, _ = _call(capsys, "new", blank, "--exist-ok", "--prior", tmp_path / "w.json")
    assert code == 2 and "created without a prior" in obj["error"]
    # a population fit file: its model, with its new-observer prior
    one = pn.TrialData(np.zeros((2, 2, 2)), [1, 0])
    fit = pn.MAPFit.from_params(SMALL, {"W": prior.mean}, one)
    pop = PopulationFit(population=fit, observers=[fit, fit], tau=0.3, learned_tau=False,
                        model=SMALL, loss_history=np.zeros(1))
    pop.save(tmp_path / "pop.nc")
    code, obj, err = _call(capsys, "new", tmp_path / "p.sqlite", "--prior",
                           tmp_path / "pop.nc", "--num-samples", "32")
    assert code == 0, err
    exp = pn.Experiment(tmp_path / "p.sqlite", read_only=True)
    assert exp.model == SMALL.replace(num_samples=32).with_prior(pop)
    exp.close()


def test_cli_prints_a_summary_of_the_prior_not_its_arrays(tmp_path, capsys):
    """``experiment new`` and ``status`` of a session with a prior print a line about as
    long as a blank session's: the prior's source, shape and std range, not its arrays
    (nor does the model, which stays usable as WPPM settings)."""
    prior = _prior()
    prior.save(tmp_path / "w.json")
    lines = {}
    for name, extra in (("warm", ("--prior", tmp_path / "w.json")), ("blank", ("--dim", "2"))):
        path = tmp_path / f"{name}.sqlite"
        for action, args in (("new", (*extra, "--basis-degree", "1", *MODEL_ARGS)),
                             ("status", ())):
            assert cli.main(["experiment", action, str(path), *map(str, args)]) == 0
            out = capsys.readouterr().out.splitlines()
            assert len(out) == 1
            lines[name, action] = out[0]
    for action in ("new", "status"):
        warm, blank = lines["warm", action], lines["blank", action]
        assert len(warm) - len(blank) < 150, (action, warm)
        obj = json.loads(warm)
        assert obj["prior"]["source"] == "test prior" and json.loads(blank)["prior"] is None
        assert obj["prior"]["shape"] == list(prior.mean.shape)
        assert "weight_prior" not in obj["model"]
        model = {**obj["model"], "lapse_prior": tuple(obj["model"]["lapse_prior"])}
        assert pn.WPPM(**model) == SMALL
    assert len(json.dumps(prior.to_dict())) > 500  # what the lines would hold otherwise


def test_cli_bad_prior_files_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{nope")
    _prior().save(tmp_path / "w.json")
    for args, match in ((("--prior", tmp_path / "missing.nc"), "no such file"),
                        (("--prior", tmp_path / "bad.json"), "not a JSON file"),
                        (("--prior", tmp_path / "w.json", "--dim", "3"), "not 3-D"),
                        (("--prior", tmp_path / "w.json", "--basis-degree", "3"),
                         "weights have shape")):
        code, obj, err = _call(capsys, "new", tmp_path / "s.sqlite", *args)
        assert code == 2 and obj["status"] == 2 and match in obj["error"], obj
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(PREFIX), err
        assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.slow
def test_cli_warm_session_proposes_differently(tmp_path, capsys):
    """After the same first trials and responses, the first refit's proposals of a session
    with a prior differ from those of a blank one."""
    _prior().save(tmp_path / "w.json")
    firsts = []
    for name, extra in (("warm", ("--prior", tmp_path / "w.json")),
                        ("blank", ("--basis-degree", "1"))):
        path = tmp_path / f"{name}.sqlite"
        code, _, err = _call(capsys, "new", path, "--num-initial", 20, "--refit-every", 20,
                             "--seed", 2, *MODEL_ARGS, *QUICK_ARGS, *extra)
        assert code == 0, err
        _, asked, _ = _call(capsys, "ask", path, "--n", 20, "--refit", "off")
        d = np.linalg.norm(np.diff(np.asarray(asked["stimuli"]), axis=1)[:, 0], axis=1)
        responses = (d > 0.05).astype(int).tolist()
        ids = ",".join(map(str, asked["ids"]))
        code, _, err = _call(capsys, "tell", path, "--ids", ids, "--responses",
                             ",".join(map(str, responses)), "--refit", "off")
        assert code == 0, err
        code, obj, err = _call(capsys, "ask", path, "--n", 5, "--wait")
        assert code == 0, err
        assert all(s.startswith("fit") for s in obj["sources"]), obj["sources"]
        firsts.append(np.asarray(obj["stimuli"]))
    assert not np.allclose(firsts[0], firsts[1])


# -- the server -------------------------------------------------------------------------
@pytest.fixture
def app_client(tmp_path):
    from fastapi.testclient import TestClient

    from psyphy_numpyro.server import create_app

    root = tmp_path / "root"
    root.mkdir()
    with TestClient(create_app(root)) as c:
        yield c


def test_server_sessions_take_a_prior_file_under_the_root(app_client, tmp_path):
    c = app_client
    root = tmp_path / "root"
    prior = _prior()
    (root / "priors").mkdir()
    prior.save(root / "priors" / "w.json")
    no_refit = {"num_initial": 10_000, "refit_every": 10_000}
    small = {"num_samples": 16, "estimator": "reparam"}
    r = c.post("/sessions", json={"name": "warm.sqlite", "prior": "priors/w.json",
                                  "model": small, **no_refit})
    assert r.status_code == 200, r.json()
    assert r.json()["prior"]["source"] == "test prior" and r.json()["created"]
    assert "weight_prior" not in r.json()["model"]
    status = c.get("/sessions/warm.sqlite/status").json()
    assert status["prior"] == r.json()["prior"] and len(json.dumps(status)) < 3000
    exp = c.app.state.registry.sessions["warm.sqlite"].exp
    assert exp.model == SMALL.with_prior(prior)
    # open here already: the same prior is fine, another one is refused
    r = c.post("/sessions", json={"name": "warm.sqlite", "prior": "priors/w.json",
                                  "model": small})
    assert r.status_code == 200, r.json()
    _prior(shift=0.1).save(root / "other.json")
    r = c.post("/sessions", json={"name": "warm.sqlite", "prior": "other.json",
                                  "model": small})
    assert r.status_code == 400 and "another prior" in r.json()["error"]
    # a prior outside the root, or a missing or bad one: 400, and no session
    prior.save(tmp_path / "outside.json")
    (root / "out").symlink_to(tmp_path)
    (root / "bad.json").write_text("{nope")
    for name, match in (("../outside.json", "'..'"), (str(tmp_path / "outside.json"),
                                                      "relative"),
                        ("out/outside.json", "out of the server's root"),
                        ("missing.json", "no such file"), ("bad.json", "not a JSON file")):
        r = c.post("/sessions", json={"name": "x.sqlite", "prior": name})
        assert r.status_code == 400 and match in r.json()["error"], (name, r.json())
        assert "prior" in r.json()["error"]
    assert not (root / "x.sqlite").exists()
    # the client passes it on (the same request body)
    from psyphy_numpyro.client import SessionClient

    s = SessionClient(None, "y.sqlite", takeover=False, settings={"prior": "priors/w.json"})
    assert s.settings == {"prior": "priors/w.json"}
    schema = c.get("/openapi.json").json()["components"]["schemas"]["OpenRequest"]
    assert "population" in schema["properties"]["prior"]["description"]

"""Where the user looks (issue 22): ``Experiment(region=...)``, ``experiment new
--region`` and the server's ``"region"``: every reference lies in the region (a box, or
one of a set of reference points), the ``"global"`` criterion integrates over it, and
the region is stored with the session."""

import json

import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro import cli
from psyphy_numpyro.design.refit import _propose
from psyphy_numpyro.design.region import Region, region_setting

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

SMALL = pn.WPPM(input_dim=2, basis_degree=1, num_samples=16, estimator="reparam")
NO_REFIT = {"num_initial": 10_000, "refit_every": 10_000}
BOX = ([-0.5, 0.0], [0.0, 0.5])
POINTS = np.array([[0.1, 0.2], [0.3, -0.4], [0.0, 0.0], [-0.7, 0.6]])


def _in_box(ref, box=BOX):
    lo, hi = np.asarray(box[0]), np.asarray(box[1])
    return bool(np.all(ref >= lo - 1e-12) and np.all(ref <= hi + 1e-12))


def _among(ref, points=POINTS):
    """Whether every reference is one of the points (float64 round trip: exact)."""
    dist = np.abs(ref[:, None, :] - points[None]).max(-1).min(1)
    return bool(np.all(dist < 1e-12))


def _ask_all(exp, n, batch=50):
    out = []
    while n > 0:
        ids, stimuli = exp.ask(min(batch, n))
        exp.tell(ids, np.ones(len(ids), int))
        out.append(stimuli)
        n -= len(ids)
    return np.concatenate(out)


def test_space_filling_references_stay_in_a_box_and_among_points(tmp_path):
    with pn.Experiment(tmp_path / "box.sqlite", SMALL, live=False, seed=2, region=BOX,
                       **NO_REFIT) as exp:
        st = _ask_all(exp, 300)
        assert exp.region.kind == "box" and set(exp.sources(exp.trial_ids)) == {"space"}
    assert _in_box(st[:, 0]) and np.all(np.abs(st[:, 1]) <= 1.0)
    # spread over the box (not squeezed into a corner), comparisons may leave it
    assert np.all(st[:, 0].min(0) < np.array(BOX[0]) + 0.05)
    assert np.all(st[:, 0].max(0) > np.array(BOX[1]) - 0.05)
    assert not _in_box(st[:, 1])
    with pn.Experiment(tmp_path / "pts.sqlite", SMALL, live=False, seed=2, region=POINTS,
                       **NO_REFIT) as exp:
        st = _ask_all(exp, 200)
    assert _among(st[:, 0]) and np.all(np.abs(st[:, 1]) <= 1.0)
    # every point is used, about equally often (Sobol's first coordinate)
    counts = [(np.abs(st[:, 0] - p).max(1) < 1e-12).sum() for p in POINTS]
    assert min(counts) >= 40
    # without a region: the whole domain, as before (the same trials as before the option)
    with pn.Experiment(tmp_path / "all.sqlite", SMALL, live=False, seed=2, **NO_REFIT) as exp:
        st_all = _ask_all(exp, 20)
    ref, comp = pn.space_filling_trials(20, 2, seed=2)
    np.testing.assert_array_equal(st_all[:, 0], ref)
    np.testing.assert_array_equal(st_all[:, 1], comp)


def _posterior():
    """A posterior from prior draws (no fitting): enough to score and propose."""
    draws = np.stack([np.asarray(SMALL.sample_prior(i)["W"]) for i in range(8)])[None]
    data = pn.TrialData(np.zeros((1, 2, 2)), np.ones(1, np.int32))
    return pn.PosteriorFit(model=SMALL, data=data, draws=draws)


@pytest.mark.parametrize("criterion", ["global", "info_gain"])
def test_refit_proposals_stay_in_the_region(criterion):
    post = _posterior()
    for region, inside in ((BOX, _in_box), (POINTS, _among)):
        job = {"num_proposals": 60, "options": {"criterion": criterion},
               "region": region_setting(region, 2), "space": None}
        ref, comp = _propose(post, job, 3)
        assert ref.shape == (60, 2) and inside(ref) and np.all(np.abs(comp) <= 1.0)
        if region is POINTS:  # a batch spreads over the points: each one in use
            assert all((np.abs(ref - p).max(1) < 1e-12).any() for p in POINTS)


def test_global_criterion_integrates_over_the_region(monkeypatch):
    from psyphy_numpyro.design import acquisition

    seen = []
    real = acquisition.region_points

    def spy(region, d, *args):
        seen.append(region)
        return real(region, d, *args)

    monkeypatch.setattr(acquisition, "region_points", spy)
    job = {"num_proposals": 10, "options": {"criterion": "global"},
           "region": region_setting(POINTS, 2), "space": None}
    _propose(_posterior(), job, 0)
    assert any(r is not None and np.allclose(r, POINTS) for r in seen)
    seen.clear()
    job["region"] = region_setting(BOX, 2)
    _propose(_posterior(), job, 0)
    grid = [np.asarray(r) for r in seen if r is not None]
    assert grid and grid[0].shape == (25, 2) and _in_box(grid[0])


def test_a_region_in_the_lab_units_of_a_space(tmp_path):
    space = pn.StimulusSpace.box(lo=[0.24, 0.26], hi=[0.38, 0.40])
    box = ([0.26, 0.30], [0.30, 0.34])
    with pn.Experiment(tmp_path / "xy.sqlite", SMALL, live=False, space=space, region=box,
                       **NO_REFIT) as exp:
        st = _ask_all(exp, 100)  # in lab units
        assert exp.status()["region"] == {"box": [list(box[0]), list(box[1])]}
    assert _in_box(st[:, 0], box)
    with pytest.raises(ValueError, match="region box corners"):  # outside the space
        pn.Experiment(tmp_path / "bad.sqlite", SMALL, space=space, region=([0.0, 0.3],
                                                                            [0.3, 0.34]))
    # reopened with the region but not the space: compared in the stored space's units
    pn.Experiment(tmp_path / "xy.sqlite", region=box, read_only=True).close()
    r = Region({"points": [[0.3, 0.33]]}, 2, space)
    np.testing.assert_allclose(r.place(np.zeros((1, 2))), space.to_model([[0.3, 0.33]]))


def test_the_region_is_stored_and_checked_on_reopen(tmp_path):
    path = tmp_path / "s.sqlite"
    with pn.Experiment(path, SMALL, live=False, region=BOX, **NO_REFIT) as exp:
        first = _ask_all(exp, 5)  # told: not handed out again
    stored = {"box": [BOX[0], BOX[1]]}
    assert pn.Experiment.read_settings(path)["region"] == stored
    with pn.Experiment(path, live=False) as exp:  # left out: the stored one
        assert exp.settings["region"] == stored and exp.region.kind == "box"
        again = _ask_all(exp, 5)
        assert _in_box(again[:, 0]) and not np.array_equal(again, first)
    # the same region (as a tuple or as the stored dict): fine
    pn.Experiment(path, region=(np.array(BOX[0]), np.array(BOX[1])), live=False).close()
    pn.Experiment(path, region=stored, live=False).close()
    # another one, or one for a session created without: refused, naming the setting
    with pytest.raises(ValueError, match="created with region="):
        pn.Experiment(path, region=([-0.5, 0.0], [0.0, 0.6]))
    with pytest.raises(ValueError, match="created with region="):
        pn.Experiment(path, region=POINTS)
    pn.Experiment(tmp_path / "plain.sqlite", SMALL, **NO_REFIT).close()
    with pytest.raises(ValueError, match="created with region=None"):
        pn.Experiment(tmp_path / "plain.sqlite", region=BOX)


@pytest.mark.parametrize("region, error, match", [
    (([0.0, 0.0], [0.0, 1.0]), ValueError, "hi must exceed lo"),
    (([0.5, 0.5], [0.0, 0.9]), ValueError, "hi must exceed lo"),
    (([0.0, 0.0, 0.0], [0.5, 0.5, 0.5]), ValueError, "2 entries"),
    (([-1.5, 0.0], [0.0, 0.5]), ValueError, "outside the domain"),
    (([0.0, float("nan")], [0.5, 0.5]), ValueError, "non-finite"),
    (([0.0], [0.5], [0.9]), ValueError, "pair"),
    ([[0.1, 0.2], [2.0, 0.0]], ValueError, "outside the domain"),
    (np.zeros((0, 2)), ValueError, "R >= 1"),
    (np.zeros((3, 3)), ValueError, r"\(R, 2\)"),
    ("box", TypeError, "region must be None"),
    (0.5, TypeError, "region must be None"),
    ([["a", "b"]], TypeError, "must be numbers"),
    ({"circle": [0, 1]}, ValueError, "'box' or 'points'"),
])
def test_bad_regions_raise_clear_errors(tmp_path, region, error, match):
    path = tmp_path / "bad.sqlite"
    with pytest.raises(error, match=match):
        pn.Experiment(path, SMALL, region=region)
    assert not path.exists()  # refused before the file is made


def _call(capsys, *args):
    code = cli.main(["experiment", *map(str, args)])
    out, err = capsys.readouterr()
    return code, json.loads(out.splitlines()[-1]), err


def test_cli_new_with_a_region(tmp_path, capsys):
    path = tmp_path / "box.sqlite"
    code, obj, err = _call(capsys, "new", path, "--num-initial", 10_000,
                           "--region=-0.5,0:0,0.5")
    assert code == 0, err
    assert obj["region"] == {"box": [[-0.5, 0.0], [0.0, 0.5]]}
    code, obj, err = _call(capsys, "ask", path, "--n", 40)
    assert code == 0, err
    assert _in_box(np.asarray(obj["stimuli"])[:, 0])
    code, obj, _ = _call(capsys, "status", path)
    assert obj["region"] == {"box": [[-0.5, 0.0], [0.0, 0.5]]}
    # reopened with the same region: fine; with another: exit status 2, a clear error
    code, _, err = _call(capsys, "new", path, "--exist-ok", "--region=-0.5,0:0,0.5")
    assert code == 0, err
    code, obj, _ = _call(capsys, "new", path, "--exist-ok", "--region=-0.5,0:0,0.6")
    assert code == 2 and "region" in obj["error"]
    # reference points from a CSV file (a header comment) and from a .npy file
    (tmp_path / "pts.csv").write_text("# x, y\n" + "\n".join(f"{a},{b}" for a, b in POINTS))
    np.save(tmp_path / "pts.npy", POINTS)
    for name in ("pts.csv", "pts.npy"):
        path = tmp_path / f"{name}.sqlite"
        code, obj, err = _call(capsys, "new", path, "--num-initial", 10_000, "--region",
                               tmp_path / name)
        assert code == 0, err
        assert np.allclose(obj["region"]["points"], POINTS)
        code, obj, err = _call(capsys, "ask", path, "--n", 30)
        assert _among(np.asarray(obj["stimuli"])[:, 0])
    # bad --region: exit status 2, nothing made
    for bad, match in (("1,2:x", "numbers"), ("nofile.csv", "no such file"),
                       ("0,0:0,1", "hi must exceed lo")):
        code, obj, _ = _call(capsys, "new", tmp_path / "bad.sqlite", f"--region={bad}")
        assert code == 2 and match in obj["error"], obj
    assert not (tmp_path / "bad.sqlite").exists()


def test_server_and_client_pass_the_region(tmp_path):
    from fastapi.testclient import TestClient

    from psyphy_numpyro.client import Client, SessionClient
    from psyphy_numpyro.server import create_app

    # the client sends a tuple box and an array of points in the server's JSON form
    c = Client.__new__(Client)
    s = SessionClient(c, "a.sqlite", takeover=False,
                      settings={"region": (np.array([-0.5, 0.0]), [0.0, 0.5])})
    assert s.settings["region"] == {"box": [[-0.5, 0.0], [0.0, 0.5]]}
    s = SessionClient(c, "a.sqlite", takeover=False, settings={"region": POINTS})
    assert s.settings["region"] == {"points": POINTS.tolist()}
    json.dumps(s.settings)

    with TestClient(create_app(tmp_path)) as tc:
        body = {"name": "r.sqlite", "seed": 1, "region": {"box": [BOX[0], BOX[1]]},
                **NO_REFIT}
        r = tc.post("/sessions", json=body)
        assert r.status_code == 200, r.text
        r = tc.post("/sessions/r.sqlite/ask", json={"n": 30})
        assert _in_box(np.asarray(r.json()["stimuli"])[:, 0])
        r = tc.post("/sessions", json={"name": "r.sqlite", "region": POINTS.tolist()})
        assert r.status_code == 400 and "region" in r.json()["error"]
        r = tc.post("/sessions", json={"name": "p.sqlite", "region": POINTS.tolist(),
                                       **NO_REFIT})
        assert r.status_code == 200, r.text
        r = tc.post("/sessions/p.sqlite/ask", json={"n": 30})
        assert _among(np.asarray(r.json()["stimuli"])[:, 0])
        r = tc.post("/sessions", json={"name": "b.sqlite", "region": {"box": [[0, 0],
                                                                               [0, 1]]}})
        assert r.status_code == 400 and "hi must exceed lo" in r.json()["error"]


@pytest.mark.slow  # two refits compile their programs (~45 s on a loaded machine)
@pytest.mark.filterwarnings("ignore:model.diag_term")
def test_a_session_with_refits_proposes_inside_the_region(tmp_path):
    """Offline refits (small model, quick fits): the fit's proposals keep the box."""
    exp = pn.Experiment(tmp_path / "fit.sqlite", SMALL, live=False, seed=1, num_initial=30,
                        refit_every=20, region=BOX,
                        fit_options={"map_steps": 40, "warm_steps": 20, "num_draws": 16,
                                     "criterion": "global"})
    with exp:
        st = _ask_all(exp, 80, batch=20)
        sources = exp.sources(exp.trial_ids)
    assert any(s.startswith("fit") for s in sources)
    assert _in_box(st[:, 0]) and np.all(np.abs(st[:, 1]) <= 1.0)

"""Sessions in the lab's units through the server, its client, the live page and the
command line (``--space FILE``): stimuli, status, thresholds and the live plane speak
the session's :class:`~psyphy_numpyro.StimulusSpace`."""

import json
import signal
import subprocess
import sys

import numpy as np
import pytest
from servers import (  # the real-server helpers (tests/ is on sys.path: rootdir)
    NO_REFIT,
    QUICK_FITS,
    SMALL_MODEL,
    Server,
    browser,
    chromium,
    env,
    wait_for,
)

import psyphy_numpyro as pn
from psyphy_numpyro import cli
from psyphy_numpyro.client import Client, ServerError
from psyphy_numpyro.server.replies import threshold_refs

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

LO, HI = np.array([0.24, 0.26]), np.array([0.38, 0.40])
SPACE = pn.StimulusSpace.box(lo=LO, hi=HI, axis_labels=["CIE x", "CIE y"],
                             units="CIE 1931 xy")
TOML = """kind = "box"
lo = [0.24, 0.26]
hi = [0.38, 0.40]
axis_labels = ["CIE x", "CIE y"]
units = "CIE 1931 xy"
"""


def _inside(stimuli):
    st = np.asarray(stimuli, float)
    return bool(np.all(st >= LO - 1e-12) and np.all(st <= HI + 1e-12))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("served_space"))
    yield srv
    srv.kill(signal.SIGINT)


def test_client_session_with_a_space(server):
    c = Client(server.url, timeout=120)  # the first open imports a lot (a loaded machine)
    s = c.session("xy.sqlite", seed=3, space=SPACE, **NO_REFIT)  # a StimulusSpace object
    assert s.info["space"] == SPACE.to_dict()
    ids, stimuli = s.ask(16)
    assert _inside(stimuli)
    assert not _inside(np.asarray(stimuli) * 0 - 0.5)  # (the check can fail)
    s.tell(ids, [1, 0] * 8)
    st = s.status()
    assert st["told"] == 16 and st["space"] == SPACE.to_dict()
    # the live page's data: the trials in lab units, the plane's bounds and labels
    live = c.request("GET", "/sessions/xy.sqlite/live.json")
    assert _inside([t[:2] for t in live["told_trials"]])
    plane = live["plane"]
    assert plane["lo"] == LO.tolist() and plane["hi"] == HI.tolist()
    assert plane["axis_labels"] == ["CIE x", "CIE y"] and plane["units"] == "CIE 1931 xy"
    # the same session reopened with its space as a dict: fine; with another: refused
    c.session("xy.sqlite", space=SPACE.to_dict())
    other = pn.StimulusSpace.box(lo=[0.2, 0.2], hi=[0.4, 0.4])
    with pytest.raises(ServerError) as err:
        c.session("xy.sqlite", space=other)
    assert err.value.status == 400 and "space" in err.value.message
    # a session without a space: the model's box
    plain = c.session("box.sqlite", seed=3, **NO_REFIT)
    assert plain.info["space"] is None
    box = c.request("GET", "/sessions/box.sqlite/live.json")["plane"]
    assert box["lo"] == [-1.0, -1.0] and box["units"] == "model"


def test_a_bad_space_is_a_400(tmp_path):
    from fastapi.testclient import TestClient

    from psyphy_numpyro.server import create_app

    with TestClient(create_app(tmp_path)) as c:
        r = c.post("/sessions", json={"name": "a.sqlite", "space": {"kind": "box",
                                                                   "lo": [1, 1], "hi": [0, 0]}})
        assert r.status_code == 400 and "hi must exceed lo" in r.json()["error"]
        r = c.post("/sessions", json={"name": "b.sqlite", "input_dim": 3,
                                      "space": SPACE.to_dict()})
        assert r.status_code == 400 and "3-D" in r.json()["error"]


def _cli(capsys, *args):
    code = cli.main(["experiment", *map(str, args)])
    out, _ = capsys.readouterr()
    return code, json.loads(out.splitlines()[-1])


def test_cli_new_with_space_then_ask_and_status_in_lab_units(tmp_path, capsys):
    f = tmp_path / "xy.toml"
    f.write_text(TOML)
    path = tmp_path / "s.sqlite"
    code, out = _cli(capsys, "new", path, "--space", f, "--seed", 2)
    assert code == 0 and out["space"] == SPACE.to_dict() and out["input_dim"] == 2
    code, out = _cli(capsys, "ask", path, "--n", 12)
    assert code == 0 and _inside(out["stimuli"]) and _inside(out["ref"])
    code, st = _cli(capsys, "status", path)
    assert code == 0 and st["space"] == SPACE.to_dict() and st["pending"] == 12
    # a session without --space reports none, and stays in the box
    code, out = _cli(capsys, "new", tmp_path / "box.sqlite")
    assert out["space"] is None
    # a missing file or a bad description: exit 2, nothing created
    code, out = _cli(capsys, "new", tmp_path / "n.sqlite", "--space", tmp_path / "no.toml")
    assert code == 2 and not out["ok"] and not (tmp_path / "n.sqlite").exists()
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "box", "lo": [0, 0]}')
    code, out = _cli(capsys, "new", tmp_path / "m.sqlite", "--space", bad)
    assert code == 2 and not out["ok"] and not (tmp_path / "m.sqlite").exists()


def test_cli_status_of_a_session_with_a_space_imports_no_jax(tmp_path):
    path = tmp_path / "c.sqlite"
    pn.Experiment(path, live=False, space=SPACE).close()
    code = ("import contextlib, io, sys\nfrom psyphy_numpyro.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    code = main(['experiment', 'status', sys.argv[1]])\n"
            "assert code == 0 and '\"CIE x\"' in out.getvalue()\n"
            "print(' '.join(sorted(sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, env=env(), timeout=120, check=True)
    mods = set(res.stdout.split())
    assert not {m for m in mods if m.split(".")[0] in ("jax", "numpyro", "matplotlib",
                                                       "scipy")}


# ---------------------------------------------------------------------------
# slow: a refit in the server; thresholds and the live page in the lab's units
# ---------------------------------------------------------------------------
def _simulate(s, n, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        ids, st = s.ask(1)
        m = SPACE.to_model(np.asarray(st[0]))  # an observer in the box's units
        d = float(np.linalg.norm(m[1] - m[0]))
        p = 1 / 3 + (2 / 3) * (1 - np.exp(-((d / 0.1) ** 2)))
        s.tell(ids, [int(rng.uniform() < p)])


REGION = [[0.26, 0.28], [0.34, 0.36]]  # a box inside SPACE, in its units


@pytest.fixture(scope="module")
def refitted(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("refit_space"))
    c = Client(srv.url)
    s = c.session("fit.sqlite", seed=0, num_initial=60, refit_every=40, space=SPACE,
                  model=SMALL_MODEL, fit_options=QUICK_FITS, region={"box": REGION})
    _simulate(s, 70)
    wait_for(lambda: s.thresholds()["state"] in ("ready", "failed"))
    _simulate(s, 5, seed=1)
    s.ask(3)
    yield srv, c, s
    srv.kill(signal.SIGINT)


@pytest.mark.slow
def test_thresholds_in_the_lab_units(refitted):
    srv, c, s = refitted
    reply = s.thresholds()
    assert reply["state"] == "ready", reply
    th = reply["thresholds"]
    assert th["axis_labels"] == ["CIE x", "CIE y"] and th["units"] == "CIE 1931 xy"
    refs = np.asarray(th["refs"])
    # read at a 3 x 3 grid over the session's region (not the default grid)
    axes = [np.linspace(REGION[0][k], REGION[1][k], 3) for k in range(2)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    np.testing.assert_allclose(refs, grid, atol=1e-12)
    assert not np.allclose(refs[:4], SPACE.to_lab(threshold_refs(2))[:4])
    assert c.request("GET", "/sessions/fit.sqlite/live.json")["region"] == {"box": REGION}
    assert _inside(refs)
    E = np.asarray(th["ellipses"])  # lab units: a box of width 0.14 maps to 2 model units
    assert np.all(np.sqrt(np.linalg.eigvalsh(E)) < 0.14)
    assert th["columns"][:2] == ["ref_x", "ref_y"] or th["columns"][0].startswith("ref")


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="no Chromium (apt-get install chromium)")
def test_live_page_in_lab_units(refitted, tmp_path):
    srv, c, s = refitted
    dom = browser(s.live_url(), "--virtual-time-budget=5000", "--dump-dom").stdout
    assert "Stimulus plane (CIE x, CIE y)" in dom
    assert "CIE 1931 xy" in dom and 'id="ellipses"' in dom
    assert "0.30" in dom  # a tick in lab units
    assert 'id="region"' in dom and "region: box 0.26\u20130.34 \u00d7 0.28\u20130.36" in dom

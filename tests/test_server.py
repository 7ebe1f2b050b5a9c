"""The session server (``psyphy-numpyro serve``) and its standard-library client.

In-process tests use FastAPI's TestClient; the client is tested against a real
server process (``python -m psyphy_numpyro serve``). Sessions here never reach
a refit (``num_initial`` above the trials told) unless a test is about refits.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from servers import (  # the real-server helpers (tests/ is on sys.path: rootdir)
    NO_REFIT,
    QUICK_FITS,
    REPO,
    SMALL_MODEL,
    Server,
    browser,
    chromium,
    env,
    wait_for,
)

from psyphy_numpyro.client import Client, ServerError, SessionClient, SessionNotOpen
from psyphy_numpyro.server import check_bind, is_loopback
from psyphy_numpyro.server.names import resolve_name

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("served"))
    yield srv
    srv.kill(signal.SIGINT)


@pytest.fixture
def app_client(tmp_path):
    from fastapi.testclient import TestClient

    from psyphy_numpyro.server import create_app

    with TestClient(create_app(tmp_path)) as c:
        yield c


# ---------------------------------------------------------------------------
# in process (TestClient)
# ---------------------------------------------------------------------------
def test_ask_tell_status_and_idempotent_tell(app_client, capsys):
    c = app_client
    r = c.post("/sessions", json={"name": "obs1.sqlite", "seed": 3, **NO_REFIT})
    assert r.status_code == 200 and r.json()["created"] is True
    a = c.post("/sessions/obs1.sqlite/ask", json={"n": 3}).json()
    assert a["ok"] and len(a["ids"]) == 3 and len(a["stimuli"]) == 3
    assert len(a["stimuli"][0]) == 2 and len(a["stimuli"][0][0]) == 2
    assert a["sources"] == ["space"] * 3 and a["pending"] == 3 and a["reissued"] == 0
    t = c.post("/sessions/obs1.sqlite/tell", json={"ids": a["ids"],
                                                   "responses": [1, 0, True]}).json()
    assert t["recorded"] == 3 and t["total_told"] == 3 and t["pending"] == 0
    # the same tell again (a retry after a lost reply): nothing recorded twice
    t2 = c.post("/sessions/obs1.sqlite/tell", json={"ids": a["ids"],
                                                    "responses": [1, 0, 1]}).json()
    assert t2["ok"] and t2["recorded"] == 0 and t2["total_told"] == 3
    # a repeat with another response is an error, and records nothing
    bad = c.post("/sessions/obs1.sqlite/tell", json={"ids": a["ids"], "responses": [0, 0, 1]})
    assert bad.status_code == 400 and "already told" in bad.json()["error"]
    s = c.get("/sessions/obs1.sqlite/status").json()
    assert s["told"] == 3 and s["pending"] == 0 and s["refit"]["state"] == "not_due"
    assert s["seed"] == 3 and s["session"] == "obs1.sqlite"
    # the same schema as the command line's status (read-only: it works while the server
    # owns the file)
    from psyphy_numpyro import cli

    assert cli.main(["experiment", "status", s["file"]]) == 0
    c_obj = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(c_obj) <= set(s)
    for key in ("told", "pending", "fits", "next_refit_at", "refit", "seed", "num_initial"):
        assert c_obj[key] == s[key], key
    assert s["owner"]["pid"] == os.getpid() and c_obj["owner"]["pid"] == os.getpid()


def test_ask_request_id_returns_the_same_trials(app_client):
    c = app_client
    c.post("/sessions", json={"name": "a.sqlite", **NO_REFIT})
    a1 = c.post("/sessions/a.sqlite/ask", json={"n": 2, "request_id": "x1"}).json()
    a2 = c.post("/sessions/a.sqlite/ask", json={"n": 2, "request_id": "x1"}).json()
    a3 = c.post("/sessions/a.sqlite/ask", json={"n": 2, "request_id": "x2"}).json()
    assert a1["ids"] == a2["ids"] and a1["stimuli"] == a2["stimuli"]
    assert set(a3["ids"]).isdisjoint(a1["ids"])


def test_errors_map_to_http(app_client):
    c = app_client
    assert c.get("/sessions/nope.sqlite/status").status_code == 404
    for name in ("../x.sqlite", "/etc/x.sqlite", "a/../../x", "a//b", ".", "a\\b"):
        r = c.post("/sessions", json={"name": name})
        assert r.status_code == 400, (name, r.json())
        assert r.json()["ok"] is False
    r = c.post("/sessions", json={"name": "s.sqlite", "input_dim": 7})
    assert r.status_code == 400 and "input_dim" in r.json()["error"]
    c.post("/sessions", json={"name": "s.sqlite", **NO_REFIT})
    r = c.post("/sessions/s.sqlite/tell", json={"ids": [99], "responses": [1]})
    assert r.status_code == 400 and "unknown trial id 99" in r.json()["error"]
    r = c.post("/sessions/s.sqlite/tell", json={"ids": [1, 2], "responses": [1]})
    assert r.status_code == 400
    r = c.post("/sessions/s.sqlite/ask", json={"n": 0})
    assert r.status_code == 422 and "n" in r.json()["error"]
    r = c.post("/sessions/s.sqlite/ask", json={"n": 1})
    r = c.post("/sessions/s.sqlite/tell", json={"ids": r.json()["ids"], "responses": [2]})
    assert r.status_code == 400 and "0 or 1" in r.json()["error"]
    # a session open here, reopened with other settings
    r = c.post("/sessions", json={"name": "s.sqlite", "seed": 99})
    assert r.status_code == 400 and "seed" in r.json()["error"]
    # a session another process owns: 409 naming the owner; takeover takes it
    code = ("import sys, time; import psyphy_numpyro as pn; "
            "e = pn.Experiment(sys.argv[1], live=False); print('open', flush=True); "
            "time.sleep(120)")
    other = subprocess.Popen([sys.executable, "-c", code, str(Path(c.app.state.registry.root)
                                                                / "busy.sqlite")],
                             stdout=subprocess.PIPE, text=True, env=env())
    try:
        assert other.stdout.readline().strip() == "open"
        r = c.post("/sessions", json={"name": "busy.sqlite"})
        assert r.status_code == 409, r.json()
        assert r.json()["owner"]["pid"] == other.pid and "takeover" in r.json()["error"]
        r = c.post("/sessions", json={"name": "busy.sqlite", "takeover": True})
        assert r.status_code == 200 and r.json()["owner"]["pid"] == os.getpid()
    finally:
        other.kill()
        other.wait()


def test_model_settings_as_json(app_client):
    c = app_client
    r = c.post("/sessions", json={"name": "m.sqlite", "model": SMALL_MODEL, **NO_REFIT})
    assert r.status_code == 200, r.json()
    assert r.json()["model"]["basis_degree"] == 1 and not r.json()["model_chosen_from_data"]
    r = c.post("/sessions", json={"name": "m2.sqlite", "model": {"no_such_setting": 1}})
    assert r.status_code == 422 and "no_such_setting" in r.json()["error"]


def test_durability_option(tmp_path):
    from fastapi.testclient import TestClient

    from psyphy_numpyro.server import create_app

    with pytest.raises(ValueError, match="durability"):
        create_app(tmp_path, durability="disk")
    for durability in ("process", "power"):
        app = create_app(tmp_path, durability=durability, monitor_every=0.05)
        with TestClient(app) as c:
            name = f"{durability}.sqlite"
            assert c.post("/sessions", json={"name": name, **NO_REFIT}).status_code == 200
            ids = c.post(f"/sessions/{name}/ask", json={"n": 2}).json()["ids"]
            assert c.post(f"/sessions/{name}/tell",
                          json={"ids": ids, "responses": [1, 0]}).json()["recorded"] == 2
            store = app.state.registry.get(name).exp._store
            assert store.durability == durability
            app.state.registry.sync_every = 0.0
            time.sleep(0.2)  # the monitor syncs the "process" session meanwhile
            assert (store._sync_db is not None) == (durability == "process")


def test_openapi_and_docs(app_client):
    spec = app_client.get("/openapi.json").json()
    paths = set(spec["paths"])
    for p in ("/sessions", "/sessions/{name}/ask", "/sessions/{name}/tell",
              "/sessions/{name}/status", "/sessions/{name}/thresholds",
              "/sessions/{name}/live", "/sessions/{name}"):
        assert p in paths, paths
    assert app_client.get("/docs").status_code == 200


def test_token(tmp_path):
    from fastapi.testclient import TestClient

    from psyphy_numpyro.server import create_app

    with TestClient(create_app(tmp_path, token="s3cret")) as c:
        assert c.get("/sessions").status_code == 401
        assert c.get("/sessions", headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = c.get("/sessions", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert c.get("/sessions?token=s3cret").status_code == 200  # the live page's way


def test_bind_rules():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "t")
    with pytest.raises(ValueError, match="--token"):
        check_bind("0.0.0.0", None)
    # the command refuses to start (exit 2) and says why
    out = subprocess.run([sys.executable, "-m", "psyphy_numpyro", "serve", "--host", "0.0.0.0",
                          "--port", "0"], capture_output=True, text=True, env=env(),
                         timeout=120)
    assert out.returncode == 2 and "--token" in out.stderr


def test_names_stay_inside_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    assert resolve_name(root, "a/b.sqlite") == root.resolve() / "a" / "b.sqlite"
    (root / "out").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="out of the server's root"):
        resolve_name(root, "out/x.sqlite")
    for bad in ("", "..", "a/..", "/abs", "x\x00y"):
        with pytest.raises(ValueError):
            resolve_name(root, bad)


def test_client_imports_only_the_standard_library():
    code = ("import sys; import psyphy_numpyro.client as c; "
            "bad = [m for m in ('numpy', 'jax', 'fastapi', 'scipy') if m in sys.modules]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env(), timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_psychopy_example_compiles():
    path = REPO / "examples" / "psychopy_oddity.py"
    compile(path.read_text(), str(path), "exec")


# ---------------------------------------------------------------------------
# a real server process
# ---------------------------------------------------------------------------
def test_client_against_a_real_server(server):
    c = Client(server.url, timeout=10)
    s = c.session("obs1.sqlite", input_dim=2, seed=0, **NO_REFIT)
    ids, stimuli = s.ask(4)
    assert len(ids) == 4 and len(stimuli[0]) == 2 and len(stimuli[0][0]) == 2
    assert isinstance(stimuli[0][0][0], float)
    r = s.tell(ids, [1, 0, 1, 1])
    assert r["recorded"] == 4
    assert s.tell(ids, [1, 0, 1, 1])["recorded"] == 0  # idempotent
    st = s.status()
    assert st["told"] == 4 and st["pending"] == 0 and "refit" in st
    assert s.thresholds()["state"] == "none"
    assert "obs1.sqlite" in c.sessions()
    with pytest.raises(ServerError) as err:
        s.tell([12345], [1])
    assert err.value.status == 400 and "unknown trial id" in err.value.message
    # NumPy arrays are accepted
    np = pytest.importorskip("numpy")
    ids, _ = s.ask(2)
    s.tell(np.array(ids), np.array([1, 0]))
    assert s.status()["told"] == 6
    # closed by this client: no call reopens it, open() does
    s.close()
    assert "obs1.sqlite" not in c.sessions()
    for call in (s.status, s.ask, s.close):
        with pytest.raises(SessionNotOpen, match="this client closed it"):
            call()
    assert "obs1.sqlite" not in c.sessions()
    s.open()
    # closed by someone else (as by a server restart): ask and tell reopen it, status not
    c.request("DELETE", "/sessions/obs1.sqlite")
    with pytest.raises(SessionNotOpen, match="status does not reopen it"):
        s.status()
    ids, _ = s.ask(1)
    assert s.status()["told"] == 6 and s.status()["pending_ids"] == ids
    with pytest.raises(SessionNotOpen):
        c.request("GET", "/sessions/other.sqlite/status")
    # a session this client never opened: an error, and nothing created
    never = SessionClient(c, "never.sqlite", takeover=False, settings={})
    for call in (never.status, never.thresholds, never.close, lambda: never.ask(1)):
        with pytest.raises(SessionNotOpen, match="never opened it"):
            call()
    assert "never.sqlite" not in c.sessions() and not (server.root / "never.sqlite").exists()


def test_concurrent_clients_one_and_several_sessions(server):
    """Threads ask and tell at once, on one shared session and on one session each."""
    errors = []
    told = {}

    def work(name, k, n=25):
        try:
            c = Client(server.url)
            s = c.session(name, seed=1, **NO_REFIT)
            mine = []
            for j in range(n):
                ids, _ = s.ask(1)
                s.tell(ids, [(j + k) % 2])
                mine += ids
            told[(name, k)] = mine
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=("shared.sqlite", k)) for k in range(3)]
    threads += [threading.Thread(target=work, args=(f"own{k}.sqlite", k)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    shared = [i for (name, _), ids in told.items() if name == "shared.sqlite" for i in ids]
    assert len(shared) == len(set(shared)) == 75  # no trial handed to two clients
    c = Client(server.url)
    assert c.session("shared.sqlite").status()["told"] == 75
    for k in range(3):
        assert c.session(f"own{k}.sqlite").status()["told"] == 25


def test_client_survives_a_server_restart(tmp_path):
    srv = Server(tmp_path)
    try:
        c = Client(srv.url, retries=40, backoff=0.25)
        # no takeover: the lease of a SIGKILLed server is stale, the restarted one takes it
        s = c.session("r.sqlite", seed=2, **NO_REFIT)
        ids, _ = s.ask(2)
        s.tell(ids[:1], [1])
        srv.kill()
        threading.Timer(0.5, srv.start, kwargs={"port": srv.port}).start()
        # the server comes back on the same port; the session is reopened by the client
        r = s.tell(ids, [1, 0])  # retried until the server answers; the first id was told
        assert r["recorded"] == 1 and r["total_told"] == 2
        assert s.status()["pending"] == 0
    finally:
        srv.kill(signal.SIGINT)


def test_ctrl_c_closes_sessions(tmp_path):
    srv = Server(tmp_path)
    c = Client(srv.url)
    s = c.session("c.sqlite", **NO_REFIT)
    s.tell(*(lambda r: (r[0], [1]))(s.ask(1)))
    assert srv.kill(signal.SIGINT) == 0
    assert "sessions closed" in "".join(srv.lines)
    # closed cleanly: no WAL left behind with the file
    assert not (tmp_path / "c.sqlite-wal").exists() or \
        (tmp_path / "c.sqlite-wal").stat().st_size == 0


# ---------------------------------------------------------------------------
# slow: refits in the server, the live page in a real browser
# ---------------------------------------------------------------------------
def _simulate(s, n, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    for _ in range(n):
        ids, st = s.ask(1)
        d = float(np.linalg.norm(np.subtract(st[0][1], st[0][0])))
        p = 1 / 3 + (2 / 3) * (1 - np.exp(-((d / 0.1) ** 2)))
        s.tell(ids, [int(rng.uniform() < p)])


@pytest.fixture(scope="module")
def refitted(tmp_path_factory):
    """A served session that has refitted and read out its thresholds."""
    srv = Server(tmp_path_factory.mktemp("refit"))
    c = Client(srv.url)
    s = c.session("fit.sqlite", seed=0, num_initial=60, refit_every=40,
                  model=SMALL_MODEL, fit_options=QUICK_FITS)
    _simulate(s, 70)
    wait_for(lambda: s.thresholds()["state"] == "ready")
    _simulate(s, 5, seed=1)
    s.ask(3)  # three pending trials on the page
    yield srv, c, s
    srv.kill(signal.SIGINT)


@pytest.mark.slow
def test_refit_in_the_background_and_thresholds(refitted):
    srv, c, s = refitted
    st = s.status()
    assert st["fits"] >= 1 and st["latest_fit"]["num_trials"] >= 60
    assert st["last_refit"]["state"] == "finished" and st["last_refit"]["seconds"] > 0
    # the server refits in its worker process: the record names that process, not the server
    pid = st["last_refit"]["pid"]
    assert isinstance(pid, int) and pid != srv.proc.pid
    th = s.thresholds()["thresholds"]
    assert th["fit"] == st["latest_fit"]["fit"] and len(th["refs"]) == 25
    assert "semi_major_lo" in th["columns"] and len(th["table"]) == 25
    assert len(th["lower_points"][0]) == 24


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="no Chromium (apt-get install chromium)")
def test_live_page_in_headless_chromium(refitted, tmp_path):
    srv, c, s = refitted
    url = s.live_url()
    dom = browser(url, "--virtual-time-budget=5000", "--dump-dom").stdout
    st = s.status()

    def text(id_):
        m = re.search(rf'id="{id_}"[^>]*>([^<]*)<', dom)
        assert m, (id_, dom[:2000])
        return m.group(1).strip()

    assert text("told") == str(st["told"])
    assert text("pending") == str(st["pending"])
    assert text("fits") == str(st["fits"])
    assert text("next-refit") == str(st["next_refit_at"])
    assert text("refit-state") == st["refit"]["state"].replace("_", " ")
    assert text("th-fit") == str(st["latest_fit"]["fit"])
    assert dom.count("<tr>") >= 26  # the thresholds table: a header and 25 references
    assert 'id="ellipses"' in dom
    shot = tmp_path / "live.png"
    browser(url, "--virtual-time-budget=5000", f"--screenshot={shot}")
    assert shot.exists() and shot.stat().st_size > 10_000


# ---------------------------------------------------------------------------
# durability: SIGKILL at random moments
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_durability_under_sigkill(tmp_path):
    """Clients ask and tell while the server is killed (SIGKILL) at random moments and
    restarted; every acknowledged response is in the file exactly once, with its value,
    and the sessions resume."""
    import random
    import sqlite3

    rng = random.Random(0)
    srv = Server(tmp_path)
    names = [f"d{k}.sqlite" for k in range(3)]
    acked = {n: {} for n in names}  # trial id -> response, acknowledged by the server
    stop = threading.Event()
    errors = []

    def client(name, k):
        try:
            c = Client(srv.url, retries=200, backoff=0.05, timeout=5)
            s = c.session(name, seed=k, **NO_REFIT)
            j = 0
            while not stop.is_set():
                ids, _ = s.ask(1)
                y = (j * 7 + k) % 2
                s.tell(ids, [y])  # returns only once the response is on disk
                acked[name][ids[0]] = y
                j += 1
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n, k)) for k, n in enumerate(names)]
    for t in threads:
        t.start()
    def total():
        return sum(len(a) for a in acked.values())

    kills = 0
    for _ in range(6):
        # a kill while the clients ask and tell: after a few acknowledged trials since
        # the restart, then at a random moment
        start = total()
        wait_for(lambda s=start: total() >= s + 3 or errors, timeout=120, every=0.05)
        time.sleep(rng.uniform(0.0, 0.5))
        srv.kill()
        kills += 1
        srv.start(port=srv.port)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(120)
    assert not errors, (errors, "".join(srv.lines)[-6000:])
    srv.kill(signal.SIGINT)
    assert kills == 6
    for name in names:
        con = sqlite3.connect(tmp_path / name)
        rows = con.execute("SELECT id, response, state FROM trials WHERE state='told'"
                           ).fetchall()
        con.close()
        told = {i: r for i, r, _ in rows}
        assert len(rows) == len(told)
        for i, y in acked[name].items():
            assert told.get(i) == y, (name, i)
        assert len(acked[name]) > 10
    # the sessions resume: reopened, asked and told
    srv.start()
    c = Client(srv.url)
    for name in names:
        s = c.session(name)
        before = s.status()["told"]
        ids, _ = s.ask(1)
        s.tell(ids, [1])
        assert s.status()["told"] == before + 1
    srv.kill(signal.SIGINT)

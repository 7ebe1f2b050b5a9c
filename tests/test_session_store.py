"""The session store: creation race, one owner per live session, idempotent tell, a fast
read-only command line."""

import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro import cli
from psyphy_numpyro.design.store import SessionStore
from psyphy_numpyro.errors import SessionBusy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pn.__file__)))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
    "JAX_PLATFORMS": "cpu"}


def _open(path, **kw):
    return pn.Experiment(path, live=False, num_initial=5, **kw)


# -- creation race -------------------------------------------------------------------
_RACER = textwrap.dedent("""
    import json, sys, time
    from psyphy_numpyro.design.store import SessionStore
    from psyphy_numpyro.errors import SessionBusy
    path, start = sys.argv[1], float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    out = {}
    try:
        store = SessionStore(path)
        settings, out["created"] = store.init_settings({"version": 1, "seed": 3})
        out["settings"] = settings
        try:
            lease = store.acquire_lease("racer")
            out["owned"] = [time.time()]
            time.sleep(0.2)
            out["owned"].append(time.time())
            store.release_lease(lease)
        except SessionBusy as exc:
            out["busy"] = exc.owner
        store.close()
    except BaseException as exc:
        out["error"] = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    print(json.dumps(out))
""")


def test_many_processes_creating_one_session_at_once_make_one_session(tmp_path):
    path = tmp_path / "race.sqlite"
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(path), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=ENV) for _ in range(12)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert [r for r in results if "error" in r] == []  # no raw sqlite3 error, no other
    assert sum(r["created"] for r in results) == 1
    assert all(r["settings"] == {"version": 1, "seed": 3} for r in results)
    # one owner at a time: the leases held never overlap, the others were told who owns it
    owned = sorted(r["owned"] for r in results if "owned" in r)
    assert owned and all(a[1] <= b[0] for a, b in zip(owned, owned[1:], strict=False))
    assert all(r["busy"]["name"] == "racer" for r in results if "owned" not in r)
    con = sqlite3.connect(path)
    assert con.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 2
    con.close()


def test_experiment_new_exist_ok_racing(tmp_path):
    path = tmp_path / "new.sqlite"
    code = ("import sys, time\nfrom psyphy_numpyro.cli import main\n"
            "start = float(sys.argv[1])\nwhile time.time() < start: time.sleep(0.001)\n"
            "sys.exit(main(['experiment', 'new', sys.argv[2], '--exist-ok', '--seed', '2']))")
    start = time.time() + 8.0  # each process imports JAX first (experiment new builds one)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(start), str(path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=ENV) for _ in range(4)]
    objs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, (out, err)
        objs.append(json.loads(out.splitlines()[-1]))
    assert all(o["ok"] and o["seed"] == 2 for o in objs)
    assert sum(o["created"] for o in objs) == 1


# -- one owner per live session ------------------------------------------------------------
def test_a_second_opener_is_refused_naming_the_owner_and_a_read_only_view_works(tmp_path):
    path = tmp_path / "s.sqlite"
    owner = _open(path, owner_name="display")
    ids, stimuli = owner.ask(3)
    owner.tell(ids[:1], [1])
    with pytest.raises(SessionBusy) as info:
        _open(path)
    assert info.value.owner["pid"] == os.getpid() and info.value.owner["name"] == "display"
    assert "display (pid" in str(info.value) and isinstance(info.value, RuntimeError)
    assert os.path.exists(str(path) + ".owner")

    view = pn.Experiment(path, read_only=True)
    assert view.status()["told"] == 1 and view.pending.tolist() == ids[1:].tolist()
    np.testing.assert_array_equal(view.stimuli(ids), stimuli)
    assert len(view.data) == 1 and view.fit is None
    assert view.owner["name"] == "display"
    for call in (lambda: view.ask(1), lambda: view.tell(ids[1:2], [0]), view.expire,
                 view.refit):
        with pytest.raises(ValueError, match="read_only"):
            call()
    view.close()
    with pytest.raises(ValueError, match="no such session file"):
        pn.Experiment(tmp_path / "missing.sqlite", read_only=True)
    assert not (tmp_path / "missing.sqlite").exists()

    owner.close()  # a closed session reopens, with its pending trials
    again = _open(path)
    assert again.ask(2)[0].tolist() == ids[1:].tolist()
    again.close()
    assert pn.Experiment(path, read_only=True).owner is None
    dropped = _open(path)  # an owner dropped without close() (a notebook cell run again)
    del dropped
    gc.collect()
    _open(path).close()


def test_takeover_moves_the_session_and_its_pending_trials_to_the_new_owner(tmp_path):
    path = tmp_path / "t.sqlite"
    old = _open(path, owner_name="old")
    ids, _ = old.ask(4)
    old.tell(ids[:1], [1])
    new = _open(path, takeover=True, owner_name="new")
    for call in (lambda: old.ask(1), lambda: old.tell(ids[1:2], [1]), old.expire):
        with pytest.raises(SessionBusy) as info:
            call()
        assert info.value.owner["name"] == "new"
    with pytest.raises(SessionBusy, match="new"):  # a third opener sees the new owner
        _open(path)
    assert new.ask(3)[0].tolist() == ids[1:].tolist()  # the old owner's pending trials
    assert new.tell(ids[1:], [0, 1, 1]) == 3
    old.close()  # gives up nothing: the lease is the new owner's
    with pytest.raises(SessionBusy, match="new"):
        _open(path)
    assert new.status()["told"] == 4
    new.close()
    _open(path).close()


_HOLDER = textwrap.dedent("""
    import sys, time
    from psyphy_numpyro.design.store import SessionStore
    store = SessionStore(sys.argv[1])
    store.init_settings({"version": 1})
    lease = store.acquire_lease("doomed")
    print("owned", flush=True)
    time.sleep(600)
""")


def test_a_stale_lease_of_a_killed_owner_is_taken_without_takeover(tmp_path):
    path = tmp_path / "k.sqlite"
    _open(path).close()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], env=ENV,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "owned"
        with pytest.raises(SessionBusy) as info:
            _open(path)
        assert info.value.owner["pid"] == holder.pid
        assert SessionStore(path, read_only=True).owner()["name"] == "doomed"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert SessionStore(path, read_only=True).owner() is None  # stale: nobody owns it
    exp = _open(path)  # no takeover needed
    assert exp.owner["pid"] == os.getpid()
    exp.close()


def test_a_session_file_without_the_lease_table_opens(tmp_path):
    path = tmp_path / "old.sqlite"
    exp = _open(path)
    ids, _ = exp.ask(2)
    exp.tell(ids, [1, 0])
    exp.close()
    con = sqlite3.connect(path)  # as the code before ownership wrote it
    con.execute("DROP TABLE lease")
    con.commit()
    con.close()
    view = pn.Experiment(path, read_only=True)
    assert view.owner is None and view.num_told == 2
    view.close()
    exp = _open(path)
    assert exp.num_told == 2 and exp.owner is not None
    exp.close()


# -- idempotent tell -----------------------------------------------------------------------
def test_tell_repeat_ok_accepts_a_retried_request_and_records_nothing_twice(tmp_path):
    exp = _open(tmp_path / "i.sqlite")
    ids, _ = exp.ask(4)
    assert exp.tell(ids[:2], [1, 0]) == 2
    order = exp.trial_ids.tolist()
    assert exp.tell(ids[:2], [1, 0], repeat_ok=True) == 0  # the retry: nothing new
    assert exp.trial_ids.tolist() == order and exp.num_told == 2
    assert exp.tell(ids[:3], [1, 0, 1], repeat_ok=True) == 1  # one new among repeats
    with pytest.raises(ValueError, match="already told"):
        exp.tell(ids[:1], [1])  # without repeat_ok a repeat is an error
    with pytest.raises(ValueError, match="already told with response 1, not 0"):
        exp.tell(ids[[3, 0]], [1, 0], repeat_ok=True)  # a different response
    assert exp.num_told == 3 and exp.pending.tolist() == [int(ids[3])]  # nothing recorded
    assert exp.data.responses.tolist() == [1, 0, 1]
    exp.close()


# -- durability ----------------------------------------------------------------------------
def test_durability_sets_synchronous_and_sync_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="durability must be one of"):
        SessionStore(tmp_path / "bad.sqlite", durability="disk")
    power = SessionStore(tmp_path / "p.sqlite")  # the default: every commit synced
    assert power.durability == "power"
    assert power.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    power.close()
    exp = _open(tmp_path / "q.sqlite", durability="process")
    assert exp._store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    ids, _ = exp.ask(3)
    exp.tell(ids, [1, 0, 1])
    exp.sync()  # a checkpoint: the whole log is copied into the file
    con = sqlite3.connect(tmp_path / "q.sqlite")
    busy, log, done = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and log == done
    assert con.execute("SELECT COUNT(*) FROM trials WHERE state='told'").fetchone()[0] == 3
    con.close()
    exp.close()
    exp.sync()  # closed: nothing to do


# -- the command line ------------------------------------------------------------------------
def test_experiment_status_imports_no_jax(tmp_path):
    path = tmp_path / "c.sqlite"
    _open(path).close()
    code = ("import contextlib, io, sys\nfrom psyphy_numpyro.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    code = main(['experiment', 'status', sys.argv[1]])\n"
            "assert code == 0 and '\"ok\": true' in out.getvalue()\n"
            "print(' '.join(sorted(sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, env=ENV, timeout=120, check=True)
    mods = set(res.stdout.split())
    assert "psyphy_numpyro.design.store" in mods
    assert not {m for m in mods if m.split(".")[0] in ("jax", "numpyro", "matplotlib",
                                                       "scipy")}


def _call(capsys, *args):
    code = cli.main(["experiment", *map(str, args)])
    out, err = capsys.readouterr()
    return code, json.loads(out.splitlines()[-1]), err


def test_a_cli_call_on_an_owned_session_answers_session_busy_unless_takeover(tmp_path, capsys):
    path = tmp_path / "o.sqlite"
    owner = _open(path, owner_name="server")
    ids, _ = owner.ask(2)
    for args in (("ask",), ("tell", "--ids", int(ids[0]), "--responses", 1), ("expire",),
                 ("refit",), ("refit", "--background")):
        code, obj, err = _call(capsys, args[0], path, *args[1:])
        assert code == 3 and obj["ok"] is False and obj["status"] == 3
        assert obj["owner"]["name"] == "server" and "server (pid" in obj["error"]
    assert owner.pending.tolist() == ids.tolist()  # nothing changed
    owner.tell(ids[1:], [0])
    code, obj, _ = _call(capsys, "status", path)  # reads while owned
    assert code == 0 and obj["owner"]["name"] == "server" and obj["pending"] == 1
    code, obj, _ = _call(capsys, "ask", path, "--n", 1, "--takeover")
    assert code == 0 and obj["ids"] == [int(ids[0])] and obj["reissued"] == 1
    with pytest.raises(SessionBusy):
        owner.ask(1)
    owner.close()
    code, obj, _ = _call(capsys, "status", path)
    assert obj["owner"] is None
    # a retried tell (its reply lost): accepted with --repeat-ok, nothing recorded twice
    args = ("tell", path, "--ids", f"{int(ids[0])},{int(ids[1])}", "--responses", "1,0")
    code, obj, _ = _call(capsys, *args)
    assert code == 2 and "already told" in obj["error"]
    code, obj, _ = _call(capsys, *args, "--repeat-ok")
    assert code == 0 and obj["told"] == 2 and obj["recorded"] == 1 and obj["total_told"] == 2
    code, obj, _ = _call(capsys, *args, "--repeat-ok")  # the retry
    assert code == 0 and obj["recorded"] == 0 and obj["total_told"] == 2
    code, obj, _ = _call(capsys, "tell", path, "--ids", int(ids[1]), "--responses", 1,
                         "--repeat-ok")
    assert code == 2 and "already told with response 0, not 1" in obj["error"]


# -- refits in a worker process -----------------------------------------------------------
@pytest.mark.slow
def test_refit_in_a_worker_process(tmp_path):
    """(Slow: the worker imports JAX and compiles the fits; the server's refit tests use
    it too.)"""
    with pytest.raises(ValueError, match="refit_in"):
        _open(tmp_path / "bad.sqlite", refit_in="fork")
    model = pn.WPPM(input_dim=2, basis_degree=1, num_samples=16, estimator="reparam")
    exp = pn.Experiment(tmp_path / "w.sqlite", model, live=True, num_initial=20,
                        refit_every=10, refit_in="process",
                        fit_options={"map_steps": 40, "warm_steps": 20, "num_draws": 16})
    from psyphy_numpyro.design.refit import ProcessRefit

    exp._fits.refits = ProcessRefit(nice=0)  # on a loaded test machine, not starved by others
    rng = np.random.default_rng(0)
    for _ in range(2):  # the second refit is warm-started by the worker's kept fit
        ids, _ = exp.ask(20)
        exp.tell(ids, rng.integers(0, 2, len(ids)))
        assert exp.wait(120)
    st = exp.status()
    assert st["fits"] == 2 and not st["refitting"]
    assert exp.latest_fit_info()["num_trials"] == 40
    assert exp.sources(exp.ask(3)[0]) == ["fit1"] * 3  # the worker's proposals, recorded
    assert exp.fit.model == model  # read from the worker's file
    exp.close()

"""``psyphy-numpyro experiment``: opening the session file and running its refits.

One concept: the session a call works on (checked, opened owning it or read-only)
and its refits, run in this process or in a detached background process that
takes over the refit lock ``<session>.fits/refit.lock``; the state of the latest
refit goes to ``<session>.fits/refit.json``, its log to ``refit.log``. The
actions that call them are :mod:`psyphy_numpyro.cli.experiment`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from .. import protocol
from ..design.store import FileLock, SessionStore, read_settings
from ._common import PROG, CLIError, error_message

__all__ = ["fits_dir", "check_session", "open_session", "read_session", "refit_step",
           "refit_locked", "spawn_refit", "acquire_soon", "read_refit_state", "refit_lock"]


# ---------------------------------------------------------------------------
# the session file
# ---------------------------------------------------------------------------
def fits_dir(path) -> Path:
    """The session's folder of fits, refit log and refit state: ``<session>.fits``."""
    return Path(str(path) + ".fits")


def check_session(path) -> None:
    """Check that ``path`` is an existing session file (``ValueError`` if it is not one),
    leaving the file as it is."""
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such session file (create it with "
                       f"'{PROG} experiment new')")
    read_settings(path)


def open_session(path, *, reissue=True, takeover=False):
    """Reopen a session with its stored settings, owning it (``SessionBusy`` when a live
    process owns it and not ``takeover``); refits only when this module runs them."""
    from ..design.session import Experiment

    check_session(path)
    return Experiment(path, live=False, auto_refit=False, reissue=reissue, takeover=takeover)


def read_session(path):
    """The session's store, opened read-only (no JAX, no ownership)."""
    check_session(path)
    return SessionStore(path, read_only=True)


# ---------------------------------------------------------------------------
# refits
# ---------------------------------------------------------------------------
def _latest_fit(store):
    """The latest fit, as the JSON replies report it."""
    return protocol.latest_fit_reply(store.latest_fit())


def refit_step(path, mode, *, takeover=False):
    """After ``tell`` (before or after ``ask``): start, run or skip a due refit.

    Never raises: the responses or trials are already committed when it runs, so a
    refit that cannot start (no process, a full disk, a busy file) is reported as
    ``{"state": "failed", "error": ...}`` and the command still succeeds.
    """
    try:
        return _refit_step_unchecked(path, mode, takeover)
    except Exception as exc:  # noqa: BLE001 - reported in the JSON and on stderr
        print(f"{PROG}: warning: the refit could not start: {error_message(exc)}",
              file=sys.stderr)
        return {"state": "failed", "error": error_message(exc)}


def _refit_step_unchecked(path, mode, takeover):
    store = read_session(path)
    try:
        told, next_at = store.num_fit_told(), store.next_refit_at(store.settings())
    finally:
        store.close()
    out = {"next_refit_at": next_at}
    if told < next_at:
        return {"state": "not_due", **out}
    if mode == "off":
        return {"state": "off", **out}
    lock = refit_lock(path)
    if mode == "wait":
        lock.acquire(blocking=True)
        try:
            return refit_locked(path, only_if_due=True, takeover=takeover)
        finally:
            lock.release()
    if not acquire_soon(lock):
        return {"state": "running", **out}
    try:
        started = spawn_refit(path, lock, if_due=True)
    except BaseException:
        lock.release()  # no child took it over
        raise
    return {**started, **out}


def acquire_soon(lock, tries: int = 6, wait: float = 0.05) -> bool:
    """Take the refit lock without blocking, trying again for a moment: ``status`` (and
    another caller's probe) hold it for an instant only, a running refit for as long as
    it runs, so a lock still held after ``tries * wait`` seconds means a refit."""
    for k in range(tries):
        if lock.acquire(blocking=False):
            return True
        if k + 1 < tries:
            time.sleep(wait)
    return False


def _now():
    """The time now (UTC, ISO 8601, to the second)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def refit_locked(path, *, only_if_due, takeover=False, delegated=False):
    """One refit, the refit lock held by this process; its state in ``refit.json``.

    The process owns the session while it refits, except a ``delegated`` one: the
    detached refit that an owner (``ask``, ``tell``) started, which runs beside the next
    calls and only adds a fit and its proposals.
    """
    if delegated:
        from ..design.refit import refit_session

        store = SessionStore(path)
        owner, run = None, lambda: refit_session(store)
    else:
        owner = open_session(path, reissue=False, takeover=takeover)
        store, run = SessionStore(path, read_only=True), owner.refit
    try:
        settings = store.settings()
        told, next_at = store.num_fit_told(), store.next_refit_at(settings)
        latest = store.latest_fit()
        if only_if_due and told < next_at:
            return {"state": "not_due", "next_refit_at": next_at}
        if told == 0 or (latest is not None and told == latest["num_trials"]):
            return {"state": "up_to_date", "next_refit_at": next_at}
        state = {"state": "running", "pid": os.getpid(), "started": _now(),
                 "num_trials": told}
        _write_state(path, state)
        _log(path, f"refit of {told} responses started (pid {os.getpid()})")
        t0 = time.monotonic()
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - recorded in refit.json / refit.log
            state.update(state="failed", ended=_now(), error=error_message(exc),
                         seconds=round(time.monotonic() - t0, 3))
            _write_state(path, state)
            _log(path, "refit failed:\n" + traceback.format_exc())
            return state
        _cache_precision(path, store, owner)
        latest = _latest_fit(store)
        state.update(state="finished", ended=_now(), seconds=round(time.monotonic() - t0, 3),
                     fit=latest["fit"], file=latest["file"],
                     next_refit_at=store.next_refit_at(store.settings()))
        _write_state(path, state)
        _log(path, f"refit finished: {latest['file']} ({state['seconds']} s)")
        return state
    finally:
        store.close()
        if owner is not None:
            owner.close()


def _cache_precision(path, store, owner) -> None:
    """The new fit's precision (``progress``), cached in the fits folder for ``status``
    (which imports no JAX); a failure is logged, the refit stands."""
    try:
        if owner is not None:
            owner.progress()
        else:
            from ..design.stopping import Progress
            from ..persist import load_fit

            Progress.for_store(store).report(lambda: load_fit(store.latest_fit()["path"]))
    except Exception:  # noqa: BLE001 - a cache: status reports no precision
        _log(path, "the precision (progress) was not computed:\n" + traceback.format_exc())


def spawn_refit(path, lock, *, if_due):
    """Start ``experiment refit`` in a detached process that takes over ``lock``."""
    import psyphy_numpyro

    folder = fits_dir(path)
    # --delegated: it refits for the owner that starts it, without taking the session
    cmd = [sys.executable, "-m", "psyphy_numpyro", "experiment", "refit",
           os.path.abspath(path), "--delegated"] + (["--if-due"] if if_due else [])
    env = dict(os.environ)
    package_root = str(Path(psyphy_numpyro.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in env.get(
        "PYTHONPATH", "").split(os.pathsep) if p])
    kwargs = {"stdin": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "env": env,
              "close_fds": True}
    if os.name == "posix":
        # the child inherits the locked file: the lock passes to it with no gap
        cmd += ["--lock-fd", str(lock.fd)]
        kwargs.update(start_new_session=True, pass_fds=(lock.fd,))
    else:  # pragma: no cover - Windows: the child takes the lock itself
        lock.release()
        kwargs["creationflags"] = (subprocess.DETACHED_PROCESS
                                   | subprocess.CREATE_NEW_PROCESS_GROUP
                                   | subprocess.CREATE_NO_WINDOW)
    with open(folder / "refit.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, **kwargs)
    # it outlives this process by design; a long-lived caller reaps it when it ends
    threading.Thread(target=proc.wait, name="psyphy-numpyro-refit-reaper", daemon=True).start()
    lock.close()  # closing (not unlocking) leaves the lock with the child
    return {"state": "started", "pid": proc.pid, "log": os.path.abspath(folder / "refit.log")}


def _log(path, text):
    """Append a time-stamped line to ``refit.log``."""
    with open(fits_dir(path) / "refit.log", "a") as fh:
        fh.write(f"{_now()} {text.rstrip()}\n")


def _write_state(path, state):
    """Write the refit state ``refit.json`` atomically."""
    folder = fits_dir(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".refit.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / "refit.json")
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_refit_state(path):
    """The latest refit's state (``refit.json``), or ``None``."""
    try:
        return json.loads((fits_dir(path) / "refit.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def refit_lock(path) -> FileLock:
    """The exclusive refit lock ``<session>.fits/refit.lock`` (see :class:`FileLock`)."""
    return FileLock(fits_dir(path) / "refit.lock")

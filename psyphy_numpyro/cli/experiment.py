"""``psyphy-numpyro experiment``: run an adaptive session from any language, JSON in and out.

Experiment software written in MATLAB, PsychoPy or Unity drives a
:class:`~psyphy_numpyro.Experiment` session file through one short command
per step::

    psyphy-numpyro experiment new    SESSION --dim 2 --seed 1
    psyphy-numpyro experiment ask    SESSION --n 20
    psyphy-numpyro experiment tell   SESSION --ids 1,2 --responses 1,0
    psyphy-numpyro experiment status SESSION

Protocol
--------
* Every call prints exactly one JSON object, on one line, as the last line
  of stdout: ``"ok": true`` and the result, or ``"ok": false``, ``"error"``
  (the message) and ``"status"`` (the exit status). Human-readable messages
  (errors, warnings) go to stderr, before the JSON line.
* Exit status 0: success (for ``tell``: the responses are on disk).
  2: bad input (an unknown or repeated id, a response that is not 0/1, a
  missing session, an invalid option, a usage error); nothing was changed.
  3: the session is owned by another live process (a server, a running
  script): the JSON object names it under ``"owner"``; nothing was changed
  (``--takeover`` takes the session over).
  1: a refit run by ``refit`` (in the foreground) failed, or a bug
  (its traceback on stderr).
* ``ask``, ``tell``, ``expire`` and a foreground ``refit`` own the session
  while they run (see :class:`~psyphy_numpyro.Experiment`); ``status`` only
  reads it: it never waits, never takes the session and imports no JAX.
* Each call is a fresh process that reopens the session file, so ``ask``
  hands out trials left pending (asked, never told) before new ones, with
  the same ids (``--no-reissue`` to hand out only new trials).

Refits
------
``ask`` never waits for a refit: it hands out the proposals of the latest
finished fit, which are stored in the session file. When a refit is due by
the session's policy, ``tell`` (and ``ask``) start it in a detached
background process (``experiment refit --if-due``, its own process session,
output appended to ``SESSION.fits/refit.log``) and return at once. A lock
(``SESSION.fits/refit.lock``, held by the refitting process and released by
the operating system when it ends, even by ``kill -9``) makes sure two refits
never run at once; the fit file is written atomically and recorded in the
session file in one transaction. ``--refit wait`` (or ``--wait``) refits in
the calling process instead (scripts, bit-reproducible simulations), ``--refit
off`` never starts one, and ``experiment refit SESSION`` refits now.
``SESSION.fits/refit.json`` holds the state of the latest refit
(``running``, ``finished``, ``failed``; ``status`` reports a refit whose
process died as ``interrupted``).

This module runs the actions; their parser is
:mod:`psyphy_numpyro.cli.experiment_parser`, the session file and the refits
:mod:`psyphy_numpyro.cli.experiment_refit`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys

from .. import errors, protocol
from ..design.stopping import cached_progress
from ..design.store import SessionStore
from ._common import (
    MODEL_OPTIONS,
    PROG,
    CLIError,
    error_message,
    given_options,
)
from .experiment_parser import add_parser, emit  # noqa: F401 - add_parser re-exported
from .experiment_refit import (
    check_session,
    open_session,
    read_refit_state,
    read_session,
    refit_lock,
    refit_locked,
    refit_step,
    spawn_refit,
)

__all__ = ["add_parser", "run"]


# ---------------------------------------------------------------------------
# running an action
# ---------------------------------------------------------------------------
def run(args) -> int:
    """Run ``experiment <action>``; print its JSON object; return the exit status."""
    try:
        result, status = _ACTIONS[args.action](args)
    except errors.SessionBusy as exc:
        text = error_message(exc)
        print(f"{PROG}: error: {text}", file=sys.stderr)
        emit({"ok": False, "error": text, "status": 3, "owner": exc.owner})
        return 3
    except (errors.Error, OSError, sqlite3.Error) as exc:
        status = 1 if isinstance(exc, errors.FitDivergedError | errors.FitFailedError) else 2
        text = error_message(exc)
        if isinstance(exc, sqlite3.Error):
            text = f"{args.session}: {text}"
        print(f"{PROG}: error: {text}", file=sys.stderr)
        emit({"ok": False, "error": text, "status": status})
        return status
    except Exception as exc:  # a bug: JSON for the caller, then the traceback
        emit({"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}",
              "status": 1})
        raise
    emit({"ok": status == 0, **result})
    return status


def _settings(s) -> dict:
    """The settings the JSON objects report, from the stored ``settings``."""
    return protocol.settings_reply(s)


def _int_list(option, text) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CLIError(f"{option} must be comma-separated integers, got {text!r}") from None
    if not out:
        raise CLIError(f"{option} is empty")
    return out


def _region(text):
    """``--region``: a box ``LO1,LO2:HI1,HI2`` (a tuple ``(lo, hi)``), or a file of
    reference points, one per row (``.npy``; else text, comma- or space-separated)."""
    import numpy as np

    if text is None:
        return None
    if ":" in text and not os.path.exists(text):
        lo, _, hi = text.partition(":")
        try:
            return tuple([float(v) for v in part.split(",")] for part in (lo, hi))
        except ValueError:
            raise CLIError(f"--region box must be LO1,LO2,...:HI1,HI2,... (numbers), got "
                           f"{text!r}") from None
    if not os.path.isfile(text):
        raise CLIError(f"--region {text}: no such file (give a box LO1,LO2:HI1,HI2 or a "
                       "file of reference points)")
    try:
        if text.endswith(".npy"):
            pts = np.load(text, allow_pickle=False)
        else:
            with open(text, encoding="utf-8") as f:
                rows = [line.replace(",", " ").split() for line in f
                        if line.strip() and not line.lstrip().startswith("#")]
            pts = np.array([[float(v) for v in row] for row in rows])
    except (ValueError, OSError) as exc:
        raise CLIError(f"--region {text}: not a file of reference points ({exc})") from None
    return np.atleast_2d(pts)


def _stop(args):
    """``--max-trials``, ``--max-seconds``, ``--target-precision``: the ``stop`` rules."""
    stop = {"trials": args.max_trials, "seconds": args.max_seconds,
            "precision": args.target_precision}
    return {k: v for k, v in stop.items() if v is not None} or None


# -- new ------------------------------------------------------------------------------
def _validation(args):
    """``--validation-*``: the ``validation`` spec (None without ``--validation-fraction``)."""
    extra = {"references": args.validation_references, "repeats": args.validation_repeats,
             "levels": args.validation_levels}
    if args.validation_fraction is None:
        if any(v is not None for v in extra.values()):
            raise CLIError("--validation-references, --validation-levels and "
                           "--validation-repeats need --validation-fraction")
        return None
    levels = args.validation_levels
    if levels is not None:
        try:
            parts = [float(v) for v in levels.split(",")]
        except ValueError:
            raise CLIError(f"--validation-levels must be a count or distances D1,D2,..., "
                           f"got {levels!r}") from None
        one = len(parts) == 1 and "." not in levels and parts[0] == int(parts[0])
        extra["levels"] = int(parts[0]) if one else parts
    spec = {"fraction": args.validation_fraction}
    spec.update({k: v for k, v in extra.items() if v is not None})
    return spec


def _new(args):
    from ..design.session import Experiment
    from ..validation import check_int
    from ..wppm import WPPM

    path = args.session
    exists = f"{path}: already exists ('experiment ask' resumes it; --exist-ok reopens it)"
    if os.path.exists(path):
        if not args.exist_ok:
            raise CLIError(exists)
        check_session(path)
    space = None
    if args.space is not None:
        from ..space import StimulusSpace

        space = StimulusSpace.from_file(args.space)
    options = given_options(args, **{n: n for n, _, _ in MODEL_OPTIONS})
    model = prior = None
    if args.prior is not None:  # the population's model (options change its settings)
        from ..priorfile import session_prior

        dim = args.dim if args.dim is not None else space.input_dim if space else None
        prior, model = session_prior(args.prior, options, dim)
    elif options:
        dim = args.dim if args.dim is not None else space.input_dim if space else 2
        model = WPPM(input_dim=dim, **options)
    fit_options = given_options(args, map_steps="map_steps", warm_steps="warm_steps",
                                num_draws="num_draws", criterion="criterion")
    for name, lo in (("map_steps", 1), ("warm_steps", 1), ("num_draws", 2)):
        if name in fit_options:  # checked now, not at the first refit
            check_int("--" + name.replace("_", "-"), fit_options[name], lo)
    given = {"seed": args.seed, "input_dim": args.dim, "num_initial": args.num_initial,
             "refit_every": args.refit_every, "distances": args.distances,
             "fit_options": fit_options or None, "space": space, "prior": prior,
             "region": _region(args.region), "validation": _validation(args),
             "stop": _stop(args)}
    try:  # creates the session (race-free: one process stores the settings) or checks them
        exp = Experiment(path, model, live=False, auto_refit=False, **given)
    except errors.SessionBusy:  # it exists and is owned: check the settings only
        exp = Experiment(path, model, read_only=True, **given)
    try:
        if not exp.created and not args.exist_ok:
            raise CLIError(exists)  # another process created it a moment ago
        out = {"session": str(path), "created": exp.created, **_settings(exp.settings),
               "told": exp.num_told}
    finally:
        exp.close()
    return out, 0


# -- ask ------------------------------------------------------------------------------
def _ask(args):
    if args.refit == "wait":
        refit = refit_step(args.session, "wait", takeover=args.takeover)
    exp = open_session(args.session, reissue=not args.no_reissue, takeover=args.takeover)
    try:
        before = set(exp.pending.tolist())
        ids, stimuli = exp.ask(args.n)
        st = exp.status()
        out = protocol.ask_reply(ids, stimuli, sources=exp.sources(ids),
                                 reissued=sum(int(i) in before for i in ids), told=st["told"],
                                 pending=st["pending"], refit=None)
    finally:
        exp.close()
    if args.refit != "wait":
        refit = refit_step(args.session, args.refit)
    out["refit"] = refit
    return out, 0


# -- tell -----------------------------------------------------------------------------
def _tell_input(args):
    """``(ids, responses)`` from --ids/--responses, --json or stdin, with JSON types checked."""
    pair = args.ids is not None or args.responses is not None
    if pair and args.json is not None:
        raise CLIError("give --json or --ids/--responses, not both")
    if pair:
        if args.ids is None or args.responses is None:
            raise CLIError("--ids and --responses go together")
        return _int_list("--ids", args.ids), _int_list("--responses", args.responses)
    if args.json is not None:
        text, where = args.json, "--json"
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise CLIError("tell needs responses: --json, --ids/--responses, or a JSON object "
                           "on stdin")
        text, where = sys.stdin.read(), "stdin"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CLIError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise CLIError(f'{where}: expected a JSON object {{"ids": [...], "responses": [...]}}, '
                       f"got {type(obj).__name__}")
    missing = [k for k in ("ids", "responses") if k not in obj]
    unknown = sorted(set(obj) - {"ids", "responses"})
    if missing or unknown:
        raise CLIError(f"{where}: the object needs the keys 'ids' and 'responses'"
                       + (f"; missing {missing}" if missing else "")
                       + (f"; unknown {unknown}" if unknown else ""))
    ids, resp = (v if isinstance(v, list) else [v] for v in (obj["ids"], obj["responses"]))
    for j, i in enumerate(ids):
        ok = isinstance(i, int) and not isinstance(i, bool)
        if isinstance(i, float) and i.is_integer():
            ids[j], ok = int(i), True
        if not ok:
            raise CLIError(f"{where}: ids[{j}] = {json.dumps(i)} is not an integer trial id")
    for j, r in enumerate(resp):
        if isinstance(r, bool):
            resp[j] = int(r)
        elif not isinstance(r, int | float):
            raise CLIError(f"{where}: responses[{j}] = {json.dumps(r)} is not 0/1 or "
                           "true/false")
    return ids, resp


def _tell(args):
    ids, responses = _tell_input(args)
    exp = open_session(args.session, takeover=args.takeover)
    try:
        recorded = exp.tell(ids, responses, repeat_ok=args.repeat_ok)  # on disk now
        st = exp.status()
    finally:
        exp.close()
    refit = refit_step(args.session, args.refit)
    if refit["state"] == "failed":
        print(f"{PROG}: warning: the responses were recorded; the refit failed: "
              f"{refit['error']}", file=sys.stderr)
    return protocol.tell_reply(ids, recorded=recorded, total_told=st["told"],
                               pending=st["pending"], refit=refit), 0


# -- status ---------------------------------------------------------------------------
def _status(args):
    from ..design.validation_trials import validation_status

    store = read_session(args.session)  # read-only: no JAX, no ownership, never waits for an owner
    try:
        settings = store.settings()
        counts = store.counts()
        pending_ids = store.pending_ids()
        latest = store.latest_fit()
        next_at = store.next_refit_at(settings)
        owner = store.owner()
        validation = validation_status(store, settings)
        progress = cached_progress(store, settings)  # the precision as the refit cached it
    finally:
        store.close()
    refitting = refit_lock(args.session).held_elsewhere()
    last = read_refit_state(args.session)
    if last is not None and last.get("state") == "running" and not refitting:
        last["state"] = "interrupted"
    if refitting:
        state = "running"
    else:
        fit_told = counts["told"] - (0 if validation is None else validation["told"])
        state = "due" if fit_told >= next_at else "not_due"
    return protocol.status_reply(
        session=str(args.session), counts=counts, pending_ids=pending_ids, latest_fit=latest,
        next_refit_at=next_at, refitting=refitting,
        refit=protocol.refit_reply(state, next_at), last_refit=last, settings=settings,
        owner=owner, validation=validation, progress=progress), 0


# -- expire ---------------------------------------------------------------------------
def _expire(args):
    ids = None if args.ids is None else _int_list("--ids", args.ids)
    exp = open_session(args.session, reissue=False, takeover=args.takeover)
    try:
        done = exp.expire(ids).tolist()
        st = exp.status()
    finally:
        exp.close()
    return {"expired": done, "pending": st["pending"], "told": st["told"]}, 0


# -- refit ----------------------------------------------------------------------------
def _refit(args):
    check_session(args.session)
    lock = refit_lock(args.session)
    if args.background:
        # started for this caller, who must be allowed to own the session: checked now
        # (taking and giving back the lease; SessionBusy when a live owner holds it)
        store = SessionStore(args.session)
        try:
            store.release_lease(store.acquire_lease(takeover=args.takeover))
        finally:
            store.close()
        if not lock.acquire(blocking=False):
            return {"refit": {"state": "running"}}, 0
        return {"refit": spawn_refit(args.session, lock, if_due=args.if_due)}, 0
    if args.lock_fd is not None:
        lock.adopt(args.lock_fd)  # handed over by the process that started this one
    elif args.if_due:
        if not lock.acquire(blocking=False):
            return {"refit": {"state": "running"}}, 0
    else:
        lock.acquire(blocking=True)
    try:
        info = refit_locked(args.session, only_if_due=args.if_due, takeover=args.takeover,
                             delegated=args.delegated)
    finally:
        lock.release()
    if info["state"] == "failed":
        print(f"{PROG}: error: the refit failed: {info['error']}", file=sys.stderr)
        return {"refit": info, "error": info["error"], "status": 1}, 1
    return {"refit": info}, 0


_ACTIONS = {"new": _new, "ask": _ask, "tell": _tell, "status": _status, "refit": _refit,
            "expire": _expire}

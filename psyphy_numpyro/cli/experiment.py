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
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from .. import errors, protocol
from ..design.store import FileLock, SessionStore, read_settings
from ._common import (
    MODEL_OPTIONS,
    PROG,
    CLIError,
    LazyParser,
    error_message,
    estimator_names,
    given_options,
    parse_lapse_rate,
    wrap,
)

__all__ = ["add_parser", "run"]

REFIT_MODES = ("background", "wait", "off")

_EPILOG = """\
actions:
  new     create a session file (or reopen it with --exist-ok)
  ask     the next trials: ids and stimuli (n, 2, d)
  tell    record responses (1 correct, 0 wrong) of asked trials
  status  counts, fits, the refit state
  refit   refit now (waits for a running refit), or in the background
  expire  discard pending trials

examples:
  psyphy-numpyro experiment new obs1.sqlite --dim 2 --seed 1
  psyphy-numpyro experiment new obs2.sqlite --space xy.toml   # stimuli in CIE xy
  psyphy-numpyro experiment ask obs1.sqlite --n 20
  psyphy-numpyro experiment tell obs1.sqlite --ids 1,2,3 --responses 1,0,1
  echo '{"ids": [4, 5], "responses": [1, 1]}' | psyphy-numpyro experiment tell obs1.sqlite
  psyphy-numpyro experiment status obs1.sqlite

Every call prints one JSON object on one line of stdout ("ok": true/false);
exit status 0 ok, 2 bad input (nothing changed), 3 the session is owned by
another live process (--takeover takes it over), 1 a failed refit or a bug.
See docs/experiment.md.
"""


# ---------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------
def _emit(obj) -> None:
    """Print one JSON object as the last line of stdout (stderr flushed first)."""
    sys.stderr.flush()
    sys.stdout.write(json.dumps(obj, allow_nan=False) + "\n")
    sys.stdout.flush()


def _usage_error(parser, message):
    """argparse's usage error (stderr, exit 2), with the JSON error object on stdout."""
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    _emit({"ok": False, "error": f"{parser.prog}: {message}", "status": 2})
    sys.exit(2)


class _JSONParser(LazyParser):
    """An action's parser: usage errors and unrecognised arguments also answer in JSON."""

    def error(self, message):
        _usage_error(self, message)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return namespace, extra


def add_parser(sub, raw) -> None:
    """Add ``experiment`` and its actions to the top-level subcommands ``sub``."""
    p = sub.add_parser(
        "experiment",
        help="run an adaptive session from other software (JSON in and out)",
        description=wrap("Drive an adaptive session file (psyphy_numpyro.Experiment) from "
                         "experiment software in any language: one JSON object per call on "
                         "stdout."),
        epilog=_EPILOG,
        formatter_class=raw,
    )
    p.error = lambda message: _usage_error(p, message)
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True,
                            parser_class=_JSONParser)
    session_help = "the session file (SQLite), e.g. observer1.sqlite"

    new = acts.add_parser("new", help="create a session file",
                          description=wrap("Create a session file. Without model options "
                                           "the first refit chooses the WPPM's "
                                           "hyperparameters from the data; any model option "
                                           "fixes the model (WPPM defaults for the rest)."),
                          formatter_class=raw, populate=_add_new_options)
    new.add_argument("session", help=session_help)
    new.add_argument("--dim", "--input-dim", dest="dim", type=int, default=None,
                     help="stimulus dimension, 1 to 3 (default: 2)")
    new.add_argument("--seed", type=int, default=None, help="seeds the design, fits and "
                     "proposals (default: 0)")
    new.add_argument("--num-initial", type=int, default=None,
                     help="space-filling trials before the first refit (default: 150 * dim)")
    new.add_argument("--refit-every", type=int, default=None,
                     help="responses between refits (default: 200)")
    new.add_argument("--distances", type=float, nargs=2, metavar=("LOW", "HIGH"),
                     default=None, help="distance range of the space-filling trials "
                     "(default: 0.005 0.4)")
    new.add_argument("--space", metavar="FILE", default=None,
                     help="the lab's stimulus units: a JSON or TOML description of a "
                     "psyphy_numpyro.StimulusSpace (box, colour or affine); ask, status and "
                     "the refits' read-outs then speak them (default: the model's box "
                     "[-1, 1]^d)")
    new.add_argument("--exist-ok", action="store_true",
                     help="reopen the session if it exists (its settings must match)")
    _add_actions(acts, raw, session_help)
    p.set_defaults(command="experiment")


def _add_new_options(new) -> None:
    """The refit and model options of ``experiment new`` (added on first use: their
    choices come from the library, which imports JAX)."""
    f = new.add_argument_group("refits (defaults: the session's)")
    f.add_argument("--map-steps", type=int, help="MAP steps of the first fit (default: 2000)")
    f.add_argument("--warm-steps", type=int,
                   help="MAP steps of later, warm-started fits (default: 500)")
    f.add_argument("--num-draws", type=int, help="Laplace draws per fit (default: 64)")
    from ..design.acquisition import CRITERIA

    f.add_argument("--criterion", choices=CRITERIA,
                   help="how proposals are scored (default: info_gain)")
    m = new.add_argument_group("model (any of these fixes the model; defaults: the WPPM's)")
    for name, typ, text in MODEL_OPTIONS:
        if name == "estimator":
            kwargs = {"choices": estimator_names()}
        else:
            kwargs = {"type": parse_lapse_rate if typ == "lapse" else typ}
        m.add_argument("--" + name.replace("_", "-"), default=None, help=text, **kwargs)


def _add_actions(acts, raw, session_help) -> None:
    """The actions after ``new``."""

    def refit_option(q, default="background"):
        q.add_argument("--refit", choices=REFIT_MODES, default=default,
                       help="when a refit is due: start it in a background process "
                       "(default), run it in this process and wait, or do nothing")
        q.add_argument("--wait", dest="refit", action="store_const", const="wait",
                       help="same as --refit wait")

    def takeover_option(q):
        q.add_argument("--takeover", action="store_true",
                       help="take the session over from a live owner (a server, a script "
                       "holding it open): its pending trials move to this call")

    ask = acts.add_parser("ask", help="the next trials (ids and stimuli)",
                          description=wrap("Hand out the next trials: trials left pending by "
                                           "earlier calls first (same ids), then the latest "
                                           "fit's proposals, then the space-filling "
                                           "sequence. Stored as pending before it prints."),
                          formatter_class=raw)
    ask.add_argument("session", help=session_help)
    ask.add_argument("--n", "-n", type=int, default=1, help="number of trials (default: 1)")
    ask.add_argument("--no-reissue", action="store_true",
                     help="hand out only new trials (pending ones stay tellable)")
    refit_option(ask)
    takeover_option(ask)

    tell = acts.add_parser("tell", help="record responses",
                           description=wrap("Record responses (1 correct, 0 wrong; true/false "
                                            "in JSON) of asked trials, from --json, from "
                                            "--ids/--responses or from a JSON object "
                                            "{\"ids\": [...], \"responses\": [...]} on stdin. "
                                            "Durable on disk before it prints; a bad id or "
                                            "response records nothing."),
                           formatter_class=raw)
    tell.add_argument("session", help=session_help)
    tell.add_argument("--json", help='{"ids": [...], "responses": [...]}')
    tell.add_argument("--ids", help="comma-separated trial ids, e.g. 4,5,6")
    tell.add_argument("--responses", help="comma-separated 0/1 responses, e.g. 1,0,1")
    tell.add_argument("--repeat-ok", action="store_true",
                      help="accept ids already told with the same response (a retried call) "
                      "without recording them twice; a different response is still an error")
    refit_option(tell)
    takeover_option(tell)

    status = acts.add_parser("status", help="counts, fits and the refit state",
                             formatter_class=raw)
    status.add_argument("session", help=session_help)

    refit = acts.add_parser("refit", help="refit now",
                            description=wrap("Refit the session now (waiting for a running "
                                             "refit first) if it has responses its latest fit "
                                             "has not seen."),
                            formatter_class=raw)
    refit.add_argument("session", help=session_help)
    refit.add_argument("--if-due", action="store_true",
                       help="only when a refit is due by the session's policy")
    refit.add_argument("--background", action="store_true",
                       help="start it in a detached process and return at once")
    takeover_option(refit)
    refit.add_argument("--lock-fd", type=int, default=None, help=argparse.SUPPRESS)
    refit.add_argument("--delegated", action="store_true", help=argparse.SUPPRESS)

    expire = acts.add_parser("expire", help="discard pending trials",
                             description=wrap("Mark pending trials expired: never handed out "
                                              "again and not tellable."),
                             formatter_class=raw)
    expire.add_argument("session", help=session_help)
    expire.add_argument("--ids", help="comma-separated ids (default: every pending trial)")
    takeover_option(expire)


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
        _emit({"ok": False, "error": text, "status": 3, "owner": exc.owner})
        return 3
    except (errors.Error, OSError, sqlite3.Error) as exc:
        status = 1 if isinstance(exc, errors.FitDivergedError | errors.FitFailedError) else 2
        text = error_message(exc)
        if isinstance(exc, sqlite3.Error):
            text = f"{args.session}: {text}"
        print(f"{PROG}: error: {text}", file=sys.stderr)
        _emit({"ok": False, "error": text, "status": status})
        return status
    except Exception as exc:  # a bug: JSON for the caller, then the traceback
        _emit({"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}",
               "status": 1})
        raise
    _emit({"ok": status == 0, **result})
    return status


def _fits_dir(path) -> Path:
    return Path(str(path) + ".fits")


def _check_session(path) -> None:
    """Check that ``path`` is an existing session file (``ValueError`` if it is not one),
    leaving the file as it is."""
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such session file (create it with "
                       f"'{PROG} experiment new')")
    read_settings(path)


def _open(path, *, reissue=True, takeover=False):
    """Reopen a session with its stored settings, owning it (``SessionBusy`` when a live
    process owns it and not ``takeover``); refits only when this module runs them."""
    from ..design.session import Experiment

    _check_session(path)
    return Experiment(path, live=False, auto_refit=False, reissue=reissue, takeover=takeover)


def _read(path):
    """The session's store, opened read-only (no JAX, no ownership)."""
    _check_session(path)
    return SessionStore(path, read_only=True)


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


# -- new ------------------------------------------------------------------------------
def _new(args):
    from ..design.session import Experiment
    from ..model import WPPM
    from ..validation import check_int

    path = args.session
    exists = f"{path}: already exists ('experiment ask' resumes it; --exist-ok reopens it)"
    if os.path.exists(path):
        if not args.exist_ok:
            raise CLIError(exists)
        _check_session(path)
    space = None
    if args.space is not None:
        from ..space import StimulusSpace

        space = StimulusSpace.from_file(args.space)
    options = given_options(args, **{n: n for n, _, _ in MODEL_OPTIONS})
    model = None
    if options:
        dim = args.dim if args.dim is not None else space.input_dim if space else 2
        model = WPPM(input_dim=dim, **options)
    fit_options = given_options(args, map_steps="map_steps", warm_steps="warm_steps",
                                num_draws="num_draws", criterion="criterion")
    for name, lo in (("map_steps", 1), ("warm_steps", 1), ("num_draws", 2)):
        if name in fit_options:  # checked now, not at the first refit
            check_int("--" + name.replace("_", "-"), fit_options[name], lo)
    given = {"seed": args.seed, "input_dim": args.dim, "num_initial": args.num_initial,
             "refit_every": args.refit_every, "distances": args.distances,
             "fit_options": fit_options or None, "space": space}
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
        refit = _refit_step(args.session, "wait", takeover=args.takeover)
    exp = _open(args.session, reissue=not args.no_reissue, takeover=args.takeover)
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
        refit = _refit_step(args.session, args.refit)
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
    exp = _open(args.session, takeover=args.takeover)
    try:
        recorded = exp.tell(ids, responses, repeat_ok=args.repeat_ok)  # on disk now
        st = exp.status()
    finally:
        exp.close()
    refit = _refit_step(args.session, args.refit)
    if refit["state"] == "failed":
        print(f"{PROG}: warning: the responses were recorded; the refit failed: "
              f"{refit['error']}", file=sys.stderr)
    return protocol.tell_reply(ids, recorded=recorded, total_told=st["told"],
                               pending=st["pending"], refit=refit), 0


# -- status ---------------------------------------------------------------------------
def _latest_fit(store):
    return protocol.latest_fit_reply(store.latest_fit())


def _status(args):
    store = _read(args.session)  # read-only: no JAX, no ownership, never waits for an owner
    try:
        settings = store.settings()
        counts = store.counts()
        pending_ids = store.pending_ids()
        latest = store.latest_fit()
        next_at = store.next_refit_at(settings)
        owner = store.owner()
    finally:
        store.close()
    refitting = _refit_lock(args.session).held_elsewhere()
    last = _read_state(args.session)
    if last is not None and last.get("state") == "running" and not refitting:
        last["state"] = "interrupted"
    if refitting:
        state = "running"
    else:
        state = "due" if counts["told"] >= next_at else "not_due"
    return protocol.status_reply(
        session=str(args.session), counts=counts, pending_ids=pending_ids, latest_fit=latest,
        next_refit_at=next_at, refitting=refitting,
        refit=protocol.refit_reply(state, next_at), last_refit=last, settings=settings,
        owner=owner), 0


# -- expire ---------------------------------------------------------------------------
def _expire(args):
    ids = None if args.ids is None else _int_list("--ids", args.ids)
    exp = _open(args.session, reissue=False, takeover=args.takeover)
    try:
        done = exp.expire(ids).tolist()
        st = exp.status()
    finally:
        exp.close()
    return {"expired": done, "pending": st["pending"], "told": st["told"]}, 0


# -- refit ----------------------------------------------------------------------------
def _refit(args):
    _check_session(args.session)
    lock = _refit_lock(args.session)
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
        return {"refit": _spawn_refit(args.session, lock, if_due=args.if_due)}, 0
    if args.lock_fd is not None:
        lock.adopt(args.lock_fd)  # handed over by the process that started this one
    elif args.if_due:
        if not lock.acquire(blocking=False):
            return {"refit": {"state": "running"}}, 0
    else:
        lock.acquire(blocking=True)
    try:
        info = _refit_locked(args.session, only_if_due=args.if_due, takeover=args.takeover,
                             delegated=args.delegated)
    finally:
        lock.release()
    if info["state"] == "failed":
        print(f"{PROG}: error: the refit failed: {info['error']}", file=sys.stderr)
        return {"refit": info, "error": info["error"], "status": 1}, 1
    return {"refit": info}, 0


def _refit_step(path, mode, *, takeover=False):
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
    store = _read(path)
    try:
        told, next_at = store.counts()["told"], store.next_refit_at(store.settings())
    finally:
        store.close()
    out = {"next_refit_at": next_at}
    if told < next_at:
        return {"state": "not_due", **out}
    if mode == "off":
        return {"state": "off", **out}
    lock = _refit_lock(path)
    if mode == "wait":
        lock.acquire(blocking=True)
        try:
            return _refit_locked(path, only_if_due=True, takeover=takeover)
        finally:
            lock.release()
    if not _acquire_soon(lock):
        return {"state": "running", **out}
    try:
        started = _spawn_refit(path, lock, if_due=True)
    except BaseException:
        lock.release()  # no child took it over
        raise
    return {**started, **out}


def _acquire_soon(lock, tries: int = 6, wait: float = 0.05) -> bool:
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
    return datetime.now(UTC).isoformat(timespec="seconds")


def _refit_locked(path, *, only_if_due, takeover=False, delegated=False):
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
        owner = _open(path, reissue=False, takeover=takeover)
        store, run = SessionStore(path, read_only=True), owner.refit
    try:
        settings = store.settings()
        told, next_at = store.counts()["told"], store.next_refit_at(settings)
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


def _spawn_refit(path, lock, *, if_due):
    """Start ``experiment refit`` in a detached process that takes over ``lock``."""
    import psyphy_numpyro

    folder = _fits_dir(path)
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
    with open(_fits_dir(path) / "refit.log", "a") as fh:
        fh.write(f"{_now()} {text.rstrip()}\n")


def _write_state(path, state):
    folder = _fits_dir(path)
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


def _read_state(path):
    try:
        return json.loads((_fits_dir(path) / "refit.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _refit_lock(path) -> FileLock:
    """The exclusive refit lock ``<session>.fits/refit.lock`` (see :class:`FileLock`)."""
    return FileLock(_fits_dir(path) / "refit.lock")


_ACTIONS = {"new": _new, "ask": _ask, "tell": _tell, "status": _status, "refit": _refit,
            "expire": _expire}

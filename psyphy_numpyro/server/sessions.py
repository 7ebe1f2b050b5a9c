"""The sessions a server holds open: one :class:`~psyphy_numpyro.Experiment` per file.

Each hosted session is an ``Experiment(path, live=True, refit_in="process")``
opened in the server's process: its refits run in a worker process of lower
priority (one for the server, the sessions' refits queue for it), so they
never hold the interpreter lock of the requests, and ``ask``/``tell`` never
wait for them. A monitor thread records finished refits
(so the fit's proposals are used at once), keeps the refit state for
``status`` and has the latest fit's thresholds and precision (the ``progress``
of ``status``, :mod:`~psyphy_numpyro.design.stopping`) read out off the request path,
once per fit, in a read-out worker process of the server's (:mod:`.readouts`).

Session names are resolved by :mod:`.names`, the JSON of thresholds and stimulus planes
built by :mod:`.replies`, and the start-up imports done by :mod:`.warmup`.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path

from .. import protocol
from ..errors import InvalidInput
from .names import resolve_name
from .readouts import readout_executor, readout_job
from .replies import clean, plane_reply
from .warmup import IMPORT_LOCK, import_fitters, warm_up

__all__ = ["Registry", "Hosted", "UnknownSession"]

_ASK_CACHE = 256  # request ids remembered per session (a retried ask gets the same trials)


class UnknownSession(LookupError):
    """The session is not open in this server (HTTP 404)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Hosted:
    """One open session: its Experiment, the refit state, the thresholds cache and an
    in-memory copy of its trials (for the live page, so it never reads the whole file)."""

    def __init__(self, name: str, path: Path, exp):
        self.name, self.path, self.exp = name, path, exp
        self.lock = threading.Lock()  # ask / tell and the trial copy change together
        self.opened = _now()
        self.asks: OrderedDict[str, dict] = OrderedDict()
        self.last_refit: dict | None = None
        self._seen_refitting = False
        self._t0: float | None = None  # monotonic start of the running refit
        self._fits = exp.status()["fits"]
        self.thresholds: dict | None = None
        self.thresholds_state = "none"  # none, computing, ready, failed
        self.thresholds_error: str | None = None  # the traceback of a failed read-out
        self._thresholds_job = None  # the running read-out (a Future)
        data = exp.data
        self.told = [[s[0], s[1], int(r)] for s, r in zip(data.stimuli.tolist(),
                                                          data.responses.tolist(), strict=True)]
        pend = exp.pending
        self.pending: dict[int, list] = {}
        if len(pend):
            self.pending = {int(i): s for i, s in zip(pend.tolist(),
                                                      exp.stimuli(pend).tolist(), strict=True)}

    # -- refit state --------------------------------------------------------------
    def refit_state(self, st: dict) -> dict:
        if st["refitting"]:
            state = "running"
        elif self.last_refit is not None and self.last_refit["state"] == "failed" and \
                self.last_refit.get("num_trials") == st["told"]:
            state = "failed"
        else:
            state = "due" if st["told"] >= st["next_refit_at"] else "not_due"
        return protocol.refit_reply(state, st["next_refit_at"])

    def _call(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` on the Experiment; a failed background refit (raised by
        the next call, once) is recorded in ``last_refit`` and the call made again."""
        try:
            return fn(*args, **kwargs)
        except RuntimeError as exc:
            if not str(exc).startswith("the background refit failed"):
                raise
            rec = dict(self.last_refit or {})
            rec.update(state="failed", ended=_now(), error=str(exc.__cause__ or exc))
            self.last_refit = rec
            return fn(*args, **kwargs)

    def observe(self) -> dict:
        """Record a finished refit, note a running one; return ``exp.status()``."""
        st = self._call(self.exp.status)  # records a finished background refit
        if st["refitting"] and not self._seen_refitting:
            self._t0 = time.monotonic()
            self.last_refit = {"state": "running", "pid": self.exp.refit_pid,
                               "started": _now(), "num_trials": st["told"]}
        if st["fits"] > self._fits and self.last_refit is not None:
            latest = protocol.latest_fit_reply(self.exp.latest_fit_info())
            self.last_refit.update(state="finished", ended=_now(), fit=latest["fit"],
                                   file=latest["file"], next_refit_at=st["next_refit_at"])
            if self.last_refit.get("pid") is None:  # the worker started after "running"
                self.last_refit["pid"] = self.exp.refit_pid
            if self._t0 is not None:
                self.last_refit["seconds"] = round(time.monotonic() - self._t0, 3)
        self._seen_refitting = st["refitting"]
        self._fits = st["fits"]
        return st

    # -- ask / tell -------------------------------------------------------------------
    def _counts(self) -> dict:
        """What an ask or tell reply reports, without reading the file: the told and
        pending counts from the in-memory copy of the trials (this process owns the
        session: nothing else changes them) and the refit state (a finished refit is
        recorded by the next ``ask`` or the monitor); a refit that started or ended since
        the last look is observed at once (:meth:`observe`, a few more reads)."""
        if self.exp.refitting != self._seen_refitting:
            self.observe()
        return {"told": len(self.told), "pending": len(self.pending),
                "refitting": self.exp.refitting, "next_refit_at": self.exp.next_refit_at}

    def ask(self, n: int, request_id: str | None = None) -> dict:
        with self.lock:
            if request_id is not None and request_id in self.asks:
                return self.asks[request_id]
            before = set(self.pending)
            ids, stimuli = self._call(self.exp.ask, n)
            for i, s in zip(ids.tolist(), stimuli.tolist(), strict=True):
                self.pending[int(i)] = s
            st = self._counts()
            reply = protocol.ask_reply(ids, stimuli, sources=self.exp.sources(ids),
                                       reissued=sum(int(i) in before for i in ids),
                                       told=st["told"], pending=st["pending"],
                                       refit=self.refit_state(st))
            if request_id is not None:
                self.asks[request_id] = reply
                while len(self.asks) > _ASK_CACHE:
                    self.asks.popitem(last=False)
            return reply

    def tell(self, ids, responses) -> dict:
        with self.lock:
            # repeat_ok: a retried tell (its reply lost) records nothing twice
            recorded = self._call(self.exp.tell, ids, responses, repeat_ok=True)
            for i, r in zip(ids, responses, strict=True):
                s = self.pending.pop(int(i), None)
                if s is not None:
                    self.told.append([s[0], s[1], int(r)])
            st = self._counts()
            return protocol.tell_reply(ids, recorded=recorded, total_told=st["told"],
                                       pending=st["pending"], refit=self.refit_state(st))

    def status(self) -> dict:
        with self.lock:
            st = self.observe()
            out = protocol.status_reply(
                session=self.name, counts=st, pending_ids=self.exp.pending.tolist(),
                latest_fit=self.exp.latest_fit_info(), next_refit_at=st["next_refit_at"],
                refitting=st["refitting"], refit=self.refit_state(st),
                last_refit=self.last_refit, settings=self.exp.settings, owner=self.exp.owner,
                validation=st.get("validation"),
                progress=st["progress"])  # its precision cached once per fit (below)
        out["file"] = str(self.path)
        out["opened"] = self.opened
        out["thresholds"] = self.thresholds_state
        return out

    # -- thresholds ---------------------------------------------------------------------
    def update_thresholds(self, executor) -> None:
        """Start reading out the latest fit (thresholds, precision) on ``executor`` (see
        :mod:`.readouts`), if not done yet; its result is kept when it is ready."""
        info = self.exp.latest_fit_info()
        if info is None:
            return
        have = None if self.thresholds is None else self.thresholds["fit"]
        if have == info["seq"] or (self._thresholds_job is not None
                                   and not self._thresholds_job.done()):
            return
        space = None if self.exp.space is None else self.exp.space.to_dict()
        self.thresholds_state = "computing"
        job = executor.submit(readout_job, info, space, self.exp.settings.get("region"),
                              self.exp.input_dim)

        def finished(job, seq=info["seq"]):
            try:
                self.thresholds = job.result()
                self.thresholds_state = "ready"
            except BaseException as exc:  # noqa: BLE001 - reported by the thresholds route
                self.thresholds_error = "".join(traceback.format_exception(exc, limit=3))
                self.thresholds_state = "failed"
                self.thresholds = {"fit": seq, "error": self.thresholds_error}

        self._thresholds_job = job
        job.add_done_callback(finished)

    def live(self, since: int = 0) -> dict:
        """What the live page draws: status, the trials told from number ``since`` on, the
        pending trials and the thresholds."""
        out = self.status()
        with self.lock:
            told = self.told[since:]
            pending = [[i, *s] for i, s in self.pending.items()]
        out.update(since=since, told_trials=told, pending_trials=pending,
                   threshold_readout=self.thresholds,
                   plane=plane_reply(self.exp.space, self.exp.input_dim))
        return clean(out)

    def close(self, timeout: float | None = None) -> bool:
        """Close the file; ``False`` (file left open) when a refit outlasts ``timeout``."""
        if not self.exp.wait(timeout):
            return False
        self.exp.close()
        return True


class Registry:
    """The sessions open in a server, by name (a path relative to ``root``).

    Parameters
    ----------
    root : str or os.PathLike
        The folder of the session files.
    monitor_every : float
        Seconds between the monitor's looks at the sessions.
    durability : {"process", "power"}
        The sessions' :class:`~psyphy_numpyro.Experiment` ``durability``. With
        ``"process"`` (the default) the monitor syncs every session to the disk
        about once a second (:meth:`~psyphy_numpyro.Experiment.sync`), off the
        request path.
    sync_every : float
        Seconds between those syncs.
    refit_in : {"process", "thread"}
        Where the sessions' refits run (:class:`~psyphy_numpyro.Experiment`'s
        ``refit_in``; default a worker process of lower priority).
    """

    def __init__(self, root, *, monitor_every: float = 0.25, durability: str = "process",
                 sync_every: float = 1.0, refit_in: str = "process"):
        from ..design.store import check_durability

        self.durability = check_durability(durability)
        self.sync_every = float(sync_every)
        self.refit_in = refit_in
        self._readouts = readout_executor(refit_in)  # the fits' read-outs (.readouts)
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise InvalidInput(f"{root}: no such folder (the server's --root)")
        self.sessions: dict[str, Hosted] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._watch, args=(monitor_every,),
                                         daemon=True, name="psyphy-numpyro-monitor")
        self._monitor.start()
        threading.Thread(target=import_fitters, daemon=True, name="psyphy-numpyro-imports"
                         ).start()

    def open(self, name: str, *, takeover: bool = False, **settings) -> tuple[Hosted, bool]:
        """Open (or create) session ``name``; ``(hosted, created)``. Already open here:
        the open session, its settings checked against ``settings``. ``model`` may be
        a :class:`~psyphy_numpyro.WPPM` or a dict of its settings; ``prior`` is the
        name of a prior file under ``root``, resolved like ``name``
        (:func:`~psyphy_numpyro.priorfile.session_prior` reads it)."""
        path = resolve_name(self.root, name)
        prior = settings.pop("prior", None)
        if prior is not None:  # a file under the root, like the session's
            prior_path = resolve_name(self.root, prior, "prior file")
        with self._lock, IMPORT_LOCK:  # opening imports modules: never beside another import
            from ..design.session import Experiment

            warm_up()
            kwargs = {k: v for k, v in settings.items() if v is not None}
            if prior is not None:
                from ..priorfile import session_prior

                kwargs["prior"], kwargs["model"] = session_prior(
                    prior_path, kwargs.get("model"), kwargs.get("input_dim"), name=prior)
            hosted = self.sessions.get(name)
            if hosted is not None:
                _check_same(hosted.exp, settings, kwargs)
                return hosted, False
            if not path.parent.exists():
                path.parent.mkdir(parents=True)
            created = not path.exists()
            if isinstance(kwargs.get("model"), dict):  # WPPM settings, as JSON gives them
                from ..wppm import WPPM

                kwargs["model"] = WPPM(**kwargs["model"])
            exp = Experiment(path, live=True, takeover=bool(takeover),
                             owner_name="psyphy-numpyro serve", durability=self.durability,
                             refit_in=self.refit_in, **kwargs)
            try:
                hosted = Hosted(name, path, exp)
            except BaseException:
                exp.close()
                raise
            self.sessions[name] = hosted
        return hosted, created

    def get(self, name: str) -> Hosted:
        hosted = self.sessions.get(name)
        if hosted is None:
            resolve_name(self.root, name)  # a bad name is a 400, not a 404
            raise UnknownSession(f"session {name!r} is not open in this server (open it with "
                                 "POST /sessions)")
        return hosted

    def close(self, name: str, timeout: float | None = None) -> bool:
        hosted = self.get(name)
        with self._lock:
            self.sessions.pop(name, None)
        return hosted.close(timeout)

    def close_all(self, timeout: float = 10.0) -> list[str]:
        """Close every session; the names whose refit was still running (left open)."""
        self._stop.set()
        self._readouts.shutdown(wait=False, cancel_futures=True)
        left = []
        for name in list(self.sessions):
            try:
                if not self.close(name, timeout):
                    left.append(name)
            except Exception:  # noqa: BLE001 - closing the others matters more
                left.append(name)
        return left

    def _watch(self, every):
        synced = time.monotonic()
        while not self._stop.wait(every):
            sync = self.durability != "power" and time.monotonic() - synced >= self.sync_every
            if sync:
                synced = time.monotonic()
            for hosted in list(self.sessions.values()):
                try:
                    with hosted.lock:
                        hosted.observe()
                    hosted.update_thresholds(self._readouts)
                    if sync:  # outside the session's lock: ask and tell go on meanwhile
                        hosted.exp.sync()
                except Exception:  # noqa: BLE001, S112 - a closed session; the next round
                    continue


def _check_same(exp, settings, kwargs):
    """Settings given when opening a session that is open already must match it
    (``kwargs``: the Experiment's arguments, with the ``prior`` and its ``model`` when a
    prior is given: the session must have been created with them)."""
    if kwargs.get("prior") is not None:
        from ..design.refit import model_to_json
        from ..design.settings import check_settings
        from ..wppm import model_with_prior

        model = model_with_prior(kwargs["model"], kwargs["prior"])
        check_settings(exp.path.name, exp.settings, {"model": model_to_json(model)},
                       {"model": True})
    space = settings.get("space")
    if space is not None:
        from ..space import StimulusSpace

        if exp.space is None or StimulusSpace.from_dict(space) != exp.space:
            raise InvalidInput(f"{exp.path.name}: the session is open with another stimulus "
                               "space (or none); open it without space or with its own")
    region = settings.get("region")
    if region is not None:
        from ..design.region import region_setting

        if region_setting(region, exp.input_dim, exp.space) != exp.settings.get("region"):
            raise InvalidInput(f"{exp.path.name}: the session was created with region="
                               f"{exp.settings.get('region')!r}; open it without region or "
                               "with that value")
    validation = settings.get("validation")
    if validation is not None:
        from ..design.validation_trials import validation_setting

        if (validation_setting(validation, exp.input_dim, exp.space)
                != exp.settings.get("validation")):
            raise InvalidInput(f"{exp.path.name}: the session was created with validation="
                               f"{exp.settings.get('validation')!r}; open it without "
                               "validation or with that value")
    stop = settings.get("stop")
    if stop is not None:
        from ..design.stopping import stop_setting

        if stop_setting(stop) != exp.settings.get("stop"):
            raise InvalidInput(f"{exp.path.name}: the session was created with stop="
                               f"{exp.settings.get('stop')!r}; open it without stop or "
                               "with that value")
    for key in ("input_dim", "seed", "num_initial", "refit_every"):
        v = settings.get(key)
        have = exp.input_dim if key == "input_dim" else exp.settings.get(key)
        if v is not None and v != have:
            raise InvalidInput(f"{exp.path.name}: the session was created with {key}={have!r}; "
                               f"open it without {key} or with that value")

"""The refit pipeline of a session: MAP (warm-started), Laplace around it, the proposals.

The only module of :mod:`psyphy_numpyro.design` that imports the fitters. A
refit is three steps, so that the slow middle one can run anywhere (a thread,
a detached process) while the session goes on:

1. :func:`make_job` snapshots what the refit needs from the store (the told
   trials, the model, the previous fit for a warm start, the fit's number);
2. :func:`refit_job` fits and proposes (no file but the fit's own is touched);
3. :func:`record_refit` records the fit and its proposals in one transaction.

:func:`refit_session` runs the three for a store opened without a lease (the
command line's detached refit process, started by the session's owner);
:class:`BackgroundRefit` runs step 2 in a thread (``Experiment(live=True)``) and
:class:`ProcessRefit` in a worker process (``Experiment(live=True,
refit_in="process")``, the session server's choice): the fitting then never
holds the interpreter lock of the process that answers ``ask`` and ``tell``,
and runs at a lower scheduling priority.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import numpy as np

from .acquisition import propose_trials
from .worker import become_worker

__all__ = ["BackgroundRefit", "ProcessRefit", "model_to_json", "model_from_json", "session_data",
           "session_capacity", "posterior_mode", "make_job", "refit_job", "record_refit",
           "refit_session", "told_data"]


def model_to_json(model):
    """A WPPM as the JSON object the session file stores (None stays None)."""
    if model is None:
        return None
    out = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}
    out["lapse_prior"] = list(out["lapse_prior"])
    prior = out.pop("weight_prior", None)
    if prior is not None:  # a population's prior (Experiment(prior=...)); else left out
        out["weight_prior"] = prior.to_dict()
    return out


def model_from_json(obj):
    """The WPPM of a stored JSON object (None stays None)."""
    from ..wppm import WPPM

    if obj is None:
        return None
    obj = dict(obj)
    obj["lapse_prior"] = tuple(obj["lapse_prior"])
    return WPPM(**obj)


def session_data(store, input_dim: int, space=None):
    """:class:`~psyphy_numpyro.TrialData` of the store's told trials, in the order told (in
    ``space``'s units when given: the store keeps the model's box)."""
    return told_data(*store.told_trials(), input_dim, space)


def told_data(ref, comp, responses, input_dim: int, space=None):
    """:class:`~psyphy_numpyro.TrialData` of told trials as the store returns them
    (references, comparisons in the model's box, responses), in ``space``'s units when
    given."""
    from ..data import TrialData

    if not ref:
        return TrialData(np.zeros((0, 2, input_dim)), np.zeros(0, np.int32), space=space)
    stim = np.stack([np.array(ref, np.float64), np.array(comp, np.float64)], 1)
    if space is not None:
        stim = space.to_lab(stim)
    return TrialData(stim, np.array(responses, np.int32), space=space)


def session_capacity(n: int) -> int:
    """Padded trial count of a session's refits: the next power of two (at least 512), so a
    session growing to 6 000 trials compiles its fit programs five times, not twenty-five."""
    return max(512, 1 << (int(n) - 1).bit_length())


MAX_PROPOSALS = 1000
"""The most proposals a refit makes (twice ``refit_every`` up to here): picking them is
quadratic in their number (a session refitting every 10 000 trials spent minutes on
20 000); past them the session hands out its space-filling sequence until the next fit."""


def make_job(store, settings: dict, previous=None, *, load_previous: bool = True) -> dict:
    """Everything one refit needs, read from the store now.

    Parameters
    ----------
    store : SessionStore
    settings : dict
        The session's settings.
    previous : Fit, optional
        The latest fit (the warm start). ``None``: loaded from its file when
        the session has one.
    load_previous : bool
        ``False``: leave the latest fit in its file (``previous_path``: the
        worker process of :class:`ProcessRefit` loads it).
    """
    latest = store.latest_fit()
    previous_path = None if latest is None else latest["path"]
    if (load_previous and previous is None and latest is not None
            and latest["path"].exists()):
        from ..persist import load_fit

        previous = load_fit(latest["path"])
    seq = store.next_fit_seq()
    return {"data": session_data(store, settings["input_dim"]),
            "model": model_from_json(settings.get("model") or settings.get("chosen_model")),
            "seq": seq, "seed": settings["seed"], "chosen": settings.get("model") is None,
            "previous": previous, "previous_path": previous_path,
            "path": store.fits_dir / f"fit_{seq:04d}.nc",
            "options": settings["fit_options"],
            "region": settings.get("region"), "space": settings.get("space"),
            "num_proposals": min(2 * settings["refit_every"], MAX_PROPOSALS)}


def refit_job(job: dict) -> dict:
    """One refit: MAP (warm-started), Laplace around it, the proposals; the fit saved.

    Returns
    -------
    dict
        ``fit`` (the LaplaceFit), ``seq``, ``path`` (its file) and
        ``proposals`` (``(ref, comparison)`` arrays).
    """
    from ..hyperparameters import floor_is_high
    from ..laplace import fit_laplace
    from ..map_fit import fit_map
    from ..wppm import WPPM

    data, model, seq, seed = job["data"], job["model"], job["seq"], job["seed"]
    opts = job["options"]
    previous = job["previous"]
    if model is None or (job.get("chosen") and floor_is_high(data, model)[0]):
        # the first refit chooses the hyperparameters; a session that chose them itself
        # chooses again when its data imply thresholds near the model's diag_term floor
        model = WPPM.for_data(data)
    warm = previous is not None and previous.model == model
    init = None
    if previous is not None and previous.model.replace(
            variance_scale=model.variance_scale, diag_term=model.diag_term) == model:
        init = posterior_mode(previous)  # also across a new choice of the two scales
    elif model.weight_prior is not None:  # a population's prior: start at its mean
        init = {"W": model.prior_mean()}
    fit_seed = (seed * 1009 + seq) % (2**31)
    capacity = session_capacity(len(data))
    m = fit_map(data, model, steps=opts["warm_steps"] if warm else opts["map_steps"],
                num_restarts=1 if init is not None else 3, seed=fit_seed, init=init,
                progress=False, trial_capacity=capacity)
    post = fit_laplace(data, model, init=m, num_draws=opts["num_draws"], seed=fit_seed,
                       progress=False, trial_capacity=capacity)
    proposals = _propose(post, job, fit_seed)
    job["path"].parent.mkdir(exist_ok=True)
    post.save(job["path"], log_likelihood=False)
    return {"fit": post, "seq": seq, "path": job["path"], "proposals": proposals}


def _propose(post, job: dict, seed: int):
    """The refit's proposals; with a session region (:class:`.region.Region`) the
    candidates' references lie in it and ``"global"`` integrates over it."""
    n, criterion = job["num_proposals"], job["options"]["criterion"]
    if job.get("region") is None:
        return propose_trials(post, n, key=seed, criterion=criterion)
    from .acquisition import candidate_trials
    from .region import Region

    region = Region(job["region"], post.model.input_dim, job.get("space"))
    candidates = candidate_trials(post, seed=seed, num_refs=max(256, 2 * n),
                                  place=region.place)
    return propose_trials(post, n, key=seed, candidates=candidates, criterion=criterion,
                          region=region.points())


def posterior_mode(fit) -> dict:
    """The MAP a Laplace fit is centred on, as ``params`` (the next fit's warm start)."""
    if getattr(fit, "map_fit", None) is not None:
        return dict(fit.map_fit.params)
    params = {"W": np.asarray(fit.mean)}
    if fit.model.learns_lapse:
        params["lapse_rate"] = float(np.median(np.asarray(fit.lapse_rates())))
    return params


def record_refit(store, settings: dict, result: dict, lease=None) -> None:
    """Record a finished refit in the store (one transaction) and, when the session
    chooses its model from the data, the model in ``settings["chosen_model"]``."""
    chosen = None
    fit = result.get("fit")  # None from a worker process: its model and trial count given
    if settings.get("model") is None:
        model = model_to_json(fit.model) if fit is not None else result["model"]
        if settings.get("chosen_model") != model:
            chosen = model
    num_trials = len(fit.data) if fit is not None else result["num_trials"]
    store.record_fit(result["seq"], num_trials, result["path"].name,
                     result["proposals"], chosen_model=chosen, lease=lease)
    if chosen is not None:
        settings["chosen_model"] = chosen


def refit_session(store) -> dict:
    """Refit the session in ``store`` now and record the fit; the refit's result."""
    settings = store.settings()
    result = refit_job(make_job(store, settings))
    record_refit(store, settings, result)
    return result


class BackgroundRefit:
    """One refit at a time in a daemon thread, its outcome handed to the caller's thread.

    The thread only fits (:func:`refit_job`); the caller records the result
    (:meth:`take`), so the session file is written from one thread.
    """

    def __init__(self):
        self._thread = None
        self._result = None
        self._error = None

    @property
    def running(self) -> bool:
        """Whether a refit is running."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def pid(self) -> int | None:
        """The process that fits: this one (the refit runs in its thread)."""
        return os.getpid()

    def start(self, job: dict) -> None:
        """Run ``refit_job(job)`` in a new thread."""

        def run():
            try:
                self._result = self._run(job)
            except BaseException as exc:  # reported by the next take / raise_error
                self._error = exc

        self._result = None
        self._thread = threading.Thread(target=run, name="psyphy-numpyro-refit", daemon=True)
        self._thread.start()

    def _run(self, job: dict) -> dict:
        return refit_job(job)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for a running refit; ``False`` when it still runs after ``timeout``."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def raise_error(self) -> None:
        """Raise ``RuntimeError`` (once) when the last refit failed."""
        if self._error is not None:
            exc, self._error = self._error, None
            raise RuntimeError(f"the background refit failed: {exc}") from exc

    def take(self):
        """The finished refit's result (once), None when none finished; raises as
        :meth:`raise_error` when it failed."""
        if self._thread is None or self._thread.is_alive():
            return None
        self._thread = None
        self.raise_error()
        result, self._result = self._result, None
        return result


class ProcessRefit(BackgroundRefit):
    """:class:`BackgroundRefit` whose fitting runs in a worker process.

    One worker per process and ``nice`` value, started (``spawn``) by the first
    refit and kept for the next ones (its compiled programs and the sessions'
    latest fits stay warm); the refits of several sessions queue for it. Its
    scheduling priority is lowered by ``nice``, and it ends with its parent.
    The result has no ``fit`` (the fit is in its file): ``model`` (JSON) and
    ``num_trials`` instead, which :func:`record_refit` takes.

    Parameters
    ----------
    nice : int
        How much the worker lowers its priority (``os.nice``; 0 leaves it).
    """

    def __init__(self, nice: int = 10):
        super().__init__()
        self.nice = int(nice)

    def _run(self, job: dict) -> dict:
        job = dict(job, previous=None)  # loaded (or kept) by the worker
        return _worker(self.nice).call(job)

    @property
    def pid(self) -> int | None:
        """The worker process that fits (None before the first refit started it, or after
        it ended)."""
        with _WORKERS_LOCK:
            w = _WORKERS.get(self.nice)
        return w.proc.pid if w is not None and w.proc.is_alive() else None


_WORKERS: dict = {}
_WORKERS_LOCK = threading.Lock()


def _worker(nice: int):
    with _WORKERS_LOCK:
        w = _WORKERS.get(nice)
        if w is None or not w.proc.is_alive():
            w = _WORKERS[nice] = _Worker(nice)
        return w


class _Worker:
    """A spawned process that runs :func:`refit_job` for the jobs it is sent, one at
    a time (a daemon: it ends with its parent)."""

    def __init__(self, nice: int):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.lock = threading.Lock()
        self.proc = ctx.Process(target=_serve_refits, args=(child, nice, os.getpid()),
                                daemon=True, name="psyphy-numpyro-refit")
        self.proc.start()
        child.close()

    def call(self, job: dict) -> dict:
        with self.lock:
            try:
                self.conn.send(job)
                kind, value = self.conn.recv()
            except (EOFError, OSError) as exc:
                raise RuntimeError(f"the refit process ended (exit code "
                                   f"{self.proc.exitcode})") from exc
        if kind == "error":
            raise RuntimeError(value)
        return value


def _serve_refits(conn, nice: int, parent: int) -> None:  # pragma: no cover - a child
    """The worker process's loop: jobs in, results (or the error's text) out."""
    become_worker(nice, parent)
    fits: dict = {}  # the latest fits by path: the next refit's warm start, not reloaded
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        try:
            path = job.pop("previous_path", None)
            if path is not None:
                job["previous"] = fits.get(str(path))
                if job["previous"] is None and Path(path).exists():
                    from ..persist import load_fit

                    job["previous"] = load_fit(path)
            result = refit_job(job)
            fits[str(result["path"])] = result["fit"]
            while len(fits) > 8:
                fits.pop(next(iter(fits)))
            fit = result["fit"]
            reply = ("ok", {"fit": None, "seq": result["seq"], "path": result["path"],
                            "proposals": tuple(np.asarray(x) for x in result["proposals"]),
                            "model": model_to_json(fit.model), "num_trials": len(fit.data)})
        except Exception as exc:  # noqa: BLE001 - reported by the parent's next call
            reply = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(reply)

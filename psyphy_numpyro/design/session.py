"""``Experiment``: a crash-safe adaptive session with ask / tell and refits.

The session lives in one SQLite file (:mod:`.store`: WAL, one transaction
per ``ask`` and per ``tell``, committed before the call returns), so a
process killed at any moment (``kill -9``) loses no acknowledged response,
and reopening the file resumes the session. With ``durability="power"`` (the
default, ``synchronous=FULL``) each commit is also synced to the disk, so a
power cut after it loses nothing either; ``durability="process"``
(``synchronous=NORMAL``) skips that flush (the session server's choice: see
:meth:`Experiment.sync`). The refits are :mod:`.refit`'s.

The policy
----------
1. **Space-filling start.** Until a fit exists, trials come from
   :func:`~psyphy_numpyro.design.space_filling_trials` (Sobol references,
   random directions, log-uniform distances), continued index by index.
2. **Refits.** A refit is due once ``num_initial`` responses are in and then
   after every ``refit_every`` further responses: :func:`~psyphy_numpyro.fit_map`
   (warm-started from the previous MAP) and
   :func:`~psyphy_numpyro.fit_laplace` around it. Without a ``model`` the
   first refit chooses the hyperparameters from the data
   (:meth:`~psyphy_numpyro.WPPM.for_data`) and the session keeps them.
3. **Adaptive batches.** Each refit proposes ``2 * refit_every`` trials with
   :func:`~psyphy_numpyro.propose_trials`; ``ask`` hands them out in order
   until the next fit replaces them. If they run out first, ``ask`` continues
   the space-filling sequence rather than wait.

``live=True`` runs the refits in the background: ``ask`` never waits for
one and uses the latest finished fit. They run in a thread
(``refit_in="thread"``) or in a worker process of lower priority
(``refit_in="process"``, the session server's choice: the fitting then never
holds the interpreter lock that ``ask`` and ``tell`` need). ``live=False`` runs them inside
``ask`` when due, so a simulated session is a pure function of its seed and
its responses (bit-identical reruns).

One owner
---------
An ``Experiment`` opened for asking (the default) owns the session until
:meth:`~Experiment.close` (or the end of its process, however it ends): a
second opener gets :class:`~psyphy_numpyro.errors.SessionBusy` naming the
owner. ``read_only=True`` opens a view without owning it (status, data, the
fit, stimuli; ``ask``, ``tell``, ``expire`` and ``refit`` raise).
``takeover=True`` takes the session from a live owner: the old owner's next
``ask``, ``tell``, ``expire`` or refit raises ``SessionBusy`` naming the new
owner and changes nothing, and the trials it left pending move to the new
owner (handed out again by its ``ask``, tellable by it). No other trial of a
live owner is ever handed to another process.

Asked but never told
--------------------
A trial stays pending (tellable) until it is told or expired. When a session
is reopened, the trials still pending from earlier openings are handed out
again, first and with the same ids, by the next ``ask`` calls (``reissue=True``,
the default): planned trials are not lost with a crashed display program.
:meth:`Experiment.expire` discards pending trials instead. ``tell`` with
``repeat_ok=True`` accepts a response told before again (a request retried
after a lost reply) without recording it twice.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInput, SessionBusy
from ..validation import check_int
from . import refit as pipeline
from .sessionfits import SessionFits
from .settings import check_settings, region_units, session_model, session_settings
from .stopping import Progress, mark_started
from .store import SessionStore
from .trials import TrialSource, check_binary, check_ids
from .validation_trials import add_design, validation_plan
from .view import SessionView

__all__ = ["Experiment"]


class Experiment(SessionView):
    """An adaptive psychophysics session stored in one SQLite file.

    Parameters
    ----------
    path : str or os.PathLike
        The session file; created when missing, reopened (and resumed) when
        it exists. Fits are written to the folder ``<path>.fits``.
    model : WPPM, optional
        The model the refits use. ``None``: chosen from the data at the first
        refit (:meth:`~psyphy_numpyro.WPPM.for_data`) and kept.
    seed : int, optional
        Seeds the space-filling design, the fits and the proposals (default 0).
    live : bool
        ``True``: refits run in a background thread and ``ask`` never waits
        for one. ``False``: refits run inside ``ask`` when due (bit-identical
        sessions per seed).
    input_dim : int, optional
        Stimulus dimension when ``model`` is None (default 2).
    num_initial : int, optional
        Space-filling trials before the first refit (default ``150 * d``;
        ``20 * d`` for a model with a ``weight_prior``, e.g. ``prior=``).
    refit_every : int, optional
        Responses between refits (default 200).
    distances : (float, float), optional
        Distance range of the space-filling trials (default ``(0.005, 0.4)``;
        see :func:`~psyphy_numpyro.design.space_filling_trials`).
    fit_options : dict, optional
        Settings of the refits: ``map_steps`` (first fit, default 2000),
        ``warm_steps`` (later fits, default 500), ``num_draws`` (Laplace
        draws, default 64), ``criterion`` (default ``"info_gain"``).
    reissue : bool
        Hand out trials left pending by earlier openings again (see the module).
    auto_refit : bool
        ``False``: ``ask`` and ``tell`` never start a refit, whatever ``live``
        says; run them with :meth:`refit` (the command line does, in a process
        of its own). Not stored in the file: it applies to this opening.
    takeover : bool
        Take the session from a live owner (see the module): without it, a
        session another live process owns raises ``SessionBusy``.
    read_only : bool
        Open an existing session without owning it: ``status``, ``data``,
        ``fit``, ``stimuli`` ... work; ``ask``, ``tell``, ``expire`` and
        ``refit`` raise ``ValueError``.
    owner_name : str, optional
        How other openers see this owner (e.g. ``"server"``).
    durability : {"power", "process"}
        ``"power"`` (default): every ``ask``, ``tell`` and ``expire`` is synced
        to the disk before it returns (SQLite ``synchronous=FULL``; one disk
        flush each). ``"process"`` (``synchronous=NORMAL``): it is committed
        but not flushed, so it survives the end of the process however it ends
        (``kill -9``) but an operating-system crash or power cut may undo what
        was committed since the last :meth:`sync`. Not stored in the file: it
        applies to this opening.
    refit_in : {"thread", "process"}
        Where ``live`` refits run: a thread of this process (default) or a
        worker process of lower priority (:class:`~psyphy_numpyro.design.refit.ProcessRefit`),
        started by the first refit and shared by the sessions of this process.
    prior : PopulationFit or WeightPrior, optional
        Warm start from a population: the refits use ``model.with_prior(prior)``
        (default model: the population's), the population's prior for a new
        observer (:meth:`~psyphy_numpyro.PopulationFit.new_observer_prior`), so
        the first refit comes after ``20 * d`` trials instead of ``150 * d`` and
        starts at the population field. Stored in the session file as part of
        the model (a reopening may leave it out). See docs/population.md.
    space : StimulusSpace, dict or path, optional
        The lab's units (:class:`~psyphy_numpyro.StimulusSpace`, its ``to_dict()``,
        or a JSON/TOML file): ``ask``, ``stimuli`` and ``data`` speak them, the
        refits and the stored trials use the model's box. Stored with the session
        (a reopening may leave it out). ``distances`` stay in the box's units.
    region : None, tuple (lo, hi), array (R, d) or dict, optional
        Where the user looks, in the session's units (its ``space``'s, else the
        model's box). ``None`` (default): the whole domain. A box as a *tuple*
        ``(lo, hi)`` of two length-``d`` sequences (``lo < hi``, inside the
        domain): every trial's reference lies in it. Reference points as an
        ``(R, d)`` array: every reference is one of them. The dicts
        ``{"box": [lo, hi]}`` and ``{"points": [...]}`` (the stored form, and
        the server's JSON) are accepted too. Comparisons may leave the region
        (they stay in the domain), and the ``"global"`` criterion
        (``fit_options``) integrates over the region (a 5-per-axis grid over a
        box, or the points). Stored with the session (a reopening may leave it
        out; a different one raises). See docs/experiment.md.
    validation : None, float or dict, optional
        Held-out MOCS trials interleaved with the adaptive ones (see
        :mod:`~psyphy_numpyro.design.validation_trials`). ``None`` (default): none. A
        dict ``{"fraction": F, "references": R, "levels": L, "repeats": k}``: a share
        ``F`` in (0, 1) of the trials ``ask`` hands out (spread evenly) come from a
        MOCS design of ``R`` references (a count, spread over the region, or an
        ``(R, d)`` array in the session's units; default 8), one random direction
        each, ``L`` distances (a count, geometric over ``distances``, or a list in
        model units; default 6), ``k`` repeats each (default 10), generated once from
        the seed and stored in the session file; a bare float is the fraction. They are
        labelled ``"validation"`` (:meth:`sources`), never enter a fit or :attr:`data`,
        and make :attr:`validation_data`. Stored with the session (a reopening may
        leave it out; a different one raises). See docs/experiment.md.
    stop : dict, optional
        Stop rules in plain units, any of ``{"trials": 3000}`` (trials told),
        ``{"seconds": 3600}`` (wall-clock seconds since the session's first ask) and
        ``{"precision": 10.0}`` (the median width of the 90% threshold intervals over
        the region, in % of the threshold); the session is :attr:`done` when any is
        met (``ask`` still hands out trials). Stored with the session (a reopening may
        leave it out; a different one raises). See :meth:`progress` and
        :mod:`~psyphy_numpyro.design.stopping`.

    Raises
    ------
    SessionBusy
        Another live process owns the session (and neither ``takeover`` nor
        ``read_only`` is given).

    Notes
    -----
    When reopening, the settings stored in the file win: leave out the ones
    you do not give (``Experiment(path)`` reopens any session); giving one
    that differs from the stored value raises ``ValueError``.

    Examples
    --------
    >>> exp = pn.Experiment("observer1.sqlite", seed=1)      # doctest: +SKIP
    >>> ids, stimuli = exp.ask(20)                           # doctest: +SKIP
    >>> exp.tell(ids, responses)                             # doctest: +SKIP
    >>> exp.close()                                          # doctest: +SKIP
    """

    def __init__(self, path, model=None, *, seed: int | None = None, live: bool = True,
                 input_dim: int | None = None, num_initial: int | None = None,
                 refit_every: int | None = None, distances=None, fit_options=None,
                 reissue: bool = True, auto_refit: bool = True, takeover: bool = False,
                 read_only: bool = False, owner_name: str | None = None, space=None,
                 durability: str = "power", refit_in: str = "thread", prior=None,
                 region=None, validation=None, stop=None):
        from ..space import StimulusSpace

        model = session_model(model, prior, input_dim)
        if takeover and read_only:
            raise InvalidInput("takeover=True and read_only=True exclude each other")
        units = region_units(path, space, region if region is not None else validation)
        settings, given = session_settings(
            model, space=space, input_dim=input_dim, seed=seed, num_initial=num_initial,
            refit_every=refit_every, distances=distances, fit_options=fit_options,
            region=region, validation=validation, stored_space=units, stop=stop)
        units = settings["space"] if settings["space"] is not None else units
        add_design(settings, given, None if units is None else StimulusSpace.from_dict(units))
        if refit_in not in ("thread", "process"):
            raise InvalidInput(f"refit_in must be 'thread' or 'process', got {refit_in!r}")
        self.live = bool(live)
        self.auto_refit = bool(auto_refit)
        self.read_only = bool(read_only)
        self._lease = None
        self.created = False  # whether this opening created the session file's settings
        self._store = SessionStore(path, read_only=read_only, durability=durability)
        try:
            if read_only:
                stored = self._store.settings()
            else:
                stored, self.created = self._store.init_settings(settings)
            self.settings = check_settings(self._store.path, stored, settings, given)
            if not read_only:
                self._lease = self._store.acquire_lease(owner_name, takeover=takeover)
        except BaseException:
            self._store.close()
            raise
        self._open_view(self._store, self.settings, self._lease)
        # the pending trials of earlier (ended or taken-over) owners are now this owner's
        self._trials = TrialSource(self._store, self.input_dim, self.seed,
                                   self.settings["distances"],
                                   self.pending if reissue and not read_only else (),
                                   place=self.region.place,
                                   validation=validation_plan(self.settings))
        self.refit_in = refit_in
        self._fits = SessionFits(self._store, self.settings, refit_in, self._lock, self._lease)
        self._progress = Progress(self._store, self.settings, self.region)

    # -- ownership ---------------------------------------------------------------
    def _require_owner(self, action):
        if self.read_only:
            raise InvalidInput(f"{self.path}: opened read_only=True, so {action} is not "
                               "allowed; open it without read_only to change it")
        if self._store.db is None:
            raise InvalidInput(f"{self.path}: the session is closed")

    # -- ask / tell -------------------------------------------------------------
    def ask(self, num_trials: int = 1):
        """The next ``num_trials`` trials to show.

        Returns
        -------
        ids : numpy int64 array ``(n,)``
        stimuli : numpy array ``(n, 2, d)``: ``stimuli[i, 0]`` the reference
            (shown twice), ``stimuli[i, 1]`` the comparison.

        The trials are stored as pending before this returns.

        Raises
        ------
        SessionBusy
            The session was taken over by another owner (nothing is handed out).
        """
        self._require_owner("ask")
        n = check_int("num_trials", num_trials, 1)
        self._fits.refits.raise_error()
        with self._lock:
            self._fits.collect()
            if self.auto_refit and self.live:
                self._fits.start_if_due()
            elif self.auto_refit:
                self._fits.refit_if_due()
            # inside the write transaction (which checks the lease): the next indices are
            # read there, so no design trial is handed out twice, and a taken-over owner
            # hands out nothing
            with self._store.transaction(self._lease) as db:
                ids = self._trials.hand_out(db, n, self._fits.seq)
                mark_started(db)  # the time budget counts from the first ask
            ids = np.array(ids, np.int64)
            return ids, self.stimuli(ids)

    def tell(self, ids, responses, *, repeat_ok: bool = False) -> int:
        """Record responses (1 correct, 0 wrong) of asked trials; durable before it returns.

        Parameters
        ----------
        ids : array of int
            Trial ids handed out by :meth:`ask`.
        responses : array of 0/1 or bool
            One response per id.
        repeat_ok : bool
            Accept ids already told with the *same* response (a retried
            request whose reply was lost) and leave them as they are. A
            different response still raises and records nothing.

        Returns
        -------
        int
            The number of responses newly recorded.

        Raises
        ------
        ValueError
            An unknown id, an id told (or expired) before (unless
            ``repeat_ok`` and the same response), an id repeated in the call,
            or a response other than 0/1: nothing is recorded.
        SessionBusy
            The session was taken over by another owner (nothing is recorded).
        """
        self._require_owner("tell")
        ids = check_ids(ids)
        y = check_binary(responses, len(ids))
        self._fits.refits.raise_error()
        with self._lock:
            # checked inside the write transaction: another process telling the same ids at
            # the same moment cannot overwrite an acknowledged response
            count = self._store.tell(ids, y, repeat_ok=repeat_ok, lease=self._lease)
            if self.live and self.auto_refit:
                self._fits.start_if_due()
        return count

    def expire(self, ids=None) -> np.ndarray:
        """Mark pending trials (all of them by default) expired; returns their ids.

        Expired trials are never handed out again and cannot be told.
        """
        self._require_owner("expire")
        with self._lock:
            ids = None if ids is None else check_ids(ids)
            done = self._store.expire(ids, lease=self._lease)
            self._trials.drop(done)
            return np.array(done, np.int64)

    # -- refits -------------------------------------------------------------------
    def sync(self) -> None:
        """Sync what was committed to the disk (an SQLite checkpoint, which does not hold
        up ``ask`` and ``tell``): with ``durability="process"``, a power cut after this
        loses none of it. Nothing to do with ``"power"`` (every commit is synced)."""
        if self._store.durability != "power":
            self._store.sync()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running background refit and record it; ``False`` on timeout."""
        if not self._fits.refits.join(timeout):
            return False
        self._fits.collect()
        return True

    def refit(self) -> None:
        """Run a refit now (synchronously), whether or not one is due."""
        self._require_owner("refit")
        self.wait()
        if self._store.num_fit_told() == 0:
            raise InvalidInput("no responses yet (validation trials aside): nothing to fit")
        self._fits.record(pipeline.refit_job(self._fits.job()))

    def close(self) -> None:
        """Wait for a running refit, record it, give up the ownership and close the file."""
        if self._store.db is None:
            return
        try:
            try:
                self.wait()
            except SessionBusy:  # taken over meanwhile: its last refit is not recorded
                pass
        finally:
            if self._lease is not None:
                self._store.release_lease(self._lease)
            self._store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        if self._store.db is None:
            return f"Experiment({str(self.path)!r}, closed)"
        s = self.status()
        return (f"Experiment({str(self.path)!r}: {s['told']} told, {s['pending']} pending, "
                f"{s['fits']} fits)")

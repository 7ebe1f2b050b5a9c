"""``Experiment``: a crash-safe adaptive session (SQLite, WAL) with ask / tell and refits.

The session file is an SQLite database (standard library ``sqlite3``) in WAL
mode with ``synchronous=FULL``: every ``ask`` and every ``tell`` is one
transaction, committed to disk before the call returns, so a process killed
at any moment (``kill -9``, a power cut after the commit) loses no
acknowledged response, and reopening the file resumes the session.

Tables
------
``meta``
    The session's settings (dimension, model, seed, policy) as JSON.
``trials``
    One row per asked trial: id, stimuli (JSON, exact float64 round trip),
    how it was chosen, its state (``pending`` / ``told`` / ``expired``), the
    response and the order in which responses arrived.
``fits``
    One row per finished refit: the number of told trials it saw and the
    NetCDF file (in the folder ``<session>.fits/``) of its posterior.
``proposals``
    The adaptive trials proposed from each fit, handed out in order by ``ask``.

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

``live=True`` runs the refits in a background thread: ``ask`` never waits for
one and uses the latest finished fit. ``live=False`` runs them inside
``ask`` when due, so a simulated session is a pure function of its seed and
its responses (bit-identical reruns).

Asked but never told
--------------------
A trial stays pending (tellable) until it is told or expired. When a session
is reopened, the trials still pending from earlier openings are handed out
again, first and with the same ids, by the next ``ask`` calls (``reissue=True``,
the default): planned trials are not lost with a crashed display program.
:meth:`Experiment.expire` discards pending trials instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import threading
from pathlib import Path

import numpy as np

from ..errors import InvalidInput, InvalidType
from ..validation import check_int, check_range
from .acquisition import propose_trials, space_filling_trials

__all__ = ["Experiment"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    ref TEXT NOT NULL,
    comparison TEXT NOT NULL,
    source TEXT NOT NULL,
    source_index INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    response INTEGER,
    told_seq INTEGER UNIQUE
);
CREATE INDEX IF NOT EXISTS trials_state ON trials (state);
CREATE TABLE IF NOT EXISTS fits (
    seq INTEGER PRIMARY KEY,
    num_trials INTEGER NOT NULL,
    path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS proposals (
    fit_seq INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    ref TEXT NOT NULL,
    comparison TEXT NOT NULL,
    PRIMARY KEY (fit_seq, idx)
);
"""


def _model_to_json(model):
    if model is None:
        return None
    out = dataclasses.asdict(model)
    out["lapse_prior"] = list(out["lapse_prior"])
    return out


def _model_from_json(obj):
    from ..model import WPPM

    if obj is None:
        return None
    obj = dict(obj)
    obj["lapse_prior"] = tuple(obj["lapse_prior"])
    return WPPM(**obj)


class Experiment:
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
        Space-filling trials before the first refit (default ``150 * d``).
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
    """

    def __init__(self, path, model=None, *, seed: int | None = None, live: bool = True,
                 input_dim: int | None = None, num_initial: int | None = None,
                 refit_every: int | None = None, distances=None, fit_options=None,
                 reissue: bool = True, auto_refit: bool = True):
        from ..model import WPPM

        if model is not None and not isinstance(model, WPPM):
            raise InvalidType(f"model must be a psyphy_numpyro.WPPM, got {type(model).__name__}")
        if model is not None and input_dim is not None and input_dim != model.input_dim:
            raise InvalidInput(f"input_dim={input_dim} does not match model.input_dim="
                               f"{model.input_dim}")
        d = model.input_dim if model is not None else check_int("input_dim", input_dim or 2, 1, 3)
        given = {"model": model is not None, "input_dim": model is None and input_dim is not None,
                 "seed": seed is not None, "num_initial": num_initial is not None,
                 "refit_every": refit_every is not None, "distances": distances is not None,
                 "fit_options": fit_options is not None}
        seed = check_int("seed", 0 if seed is None else seed, 0)
        refit_every = 200 if refit_every is None else refit_every
        distances = (0.005, 0.4) if distances is None else distances
        opts = {"map_steps": 2000, "warm_steps": 500, "num_draws": 64, "criterion": "info_gain"}
        unknown = set(fit_options or {}) - set(opts)
        if unknown:
            raise InvalidInput(f"unknown fit_options {sorted(unknown)}; known: {sorted(opts)}")
        opts.update(fit_options or {})
        settings = {
            "version": SCHEMA_VERSION,
            "input_dim": d,
            "model": _model_to_json(model),
            "seed": seed,
            "num_initial": check_int("num_initial", num_initial if num_initial is not None
                                     else 150 * d, 1),
            "refit_every": check_int("refit_every", refit_every, 1),
            "distances": [float(v) for v in distances],
            "fit_options": opts,
        }
        check_range("distances", distances)  # (no Sobol draw: scipy.stats loads slowly)
        self.path = Path(os.fspath(path))
        if self.path.is_dir():
            raise InvalidInput(f"{self.path}: is a folder, not a session file")
        if not self.path.parent.exists():
            raise InvalidInput(f"{self.path.parent}: no such folder for the session file")
        self.live = bool(live)
        self.auto_refit = bool(auto_refit)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.settings = self._settings(settings, reopening_defaults={
            k: not v for k, v in given.items()})
        self.input_dim = self.settings["input_dim"]
        self.seed = self.settings["seed"]
        self.fits_dir = Path(str(self.path) + ".fits")
        self._reissue = [int(i) for i in self.pending] if reissue else []
        self._handed = set()
        self._fit = None  # the latest fit, loaded from its file on first use
        self._fit_seq = None
        self._worker = None
        self._worker_error = None
        self._pending_result = None
        self._load_latest_fit()

    # -- settings ------------------------------------------------------------
    def _settings(self, given, reopening_defaults):
        rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not rows:
            with self._transaction() as db:
                db.executemany("INSERT INTO meta VALUES (?, ?)",
                               [(k, json.dumps(v)) for k, v in given.items()])
            return given
        stored = {k: json.loads(v) for k, v in rows.items()}
        if stored.get("version") != SCHEMA_VERSION:
            raise InvalidInput(f"{self.path}: session format {stored.get('version')} is not "
                               f"{SCHEMA_VERSION}, which this version reads")
        for k, v in given.items():
            if k in ("version",) or reopening_defaults.get(k):
                continue
            if k == "model" and stored.get("chosen_model") == v:
                continue
            if stored.get(k) != v:
                raise InvalidInput(f"{self.path}: the session was created with {k}="
                                   f"{stored.get(k)!r}; reopen it without {k} or with that value")
        return stored

    @staticmethod
    def read_settings(path) -> dict:
        """The settings stored in an existing session file, read without changing it.

        Parameters
        ----------
        path : str or os.PathLike
            The session file.

        Returns
        -------
        dict
            The stored settings (``input_dim``, ``seed``, ``model``,
            ``num_initial``, ``refit_every``, ``distances``, ``fit_options``,
            ``version``, and ``chosen_model`` once a refit chose the model), as
            in ``settings`` of an opened session.

        Raises
        ------
        ValueError
            No such file, a folder, or a file that is not a session file
            (which is left as it is, where opening it as an ``Experiment``
            would turn it into one).
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise InvalidInput(f"{path}: no such session file")
        if os.path.isdir(path):
            raise InvalidInput(f"{path}: is a folder, not a session file")
        try:
            con = sqlite3.connect(path)
            try:
                rows = con.execute("SELECT key, value FROM meta").fetchall()
            finally:
                con.close()
        except sqlite3.DatabaseError:
            rows = []
        if not rows:
            raise InvalidInput(f"{path}: not a psyphy_numpyro session file")
        return {k: json.loads(v) for k, v in rows}

    def _transaction(self):
        return _Transaction(self._db, self._lock)

    # -- state ----------------------------------------------------------------
    @property
    def model(self):
        """The refits' model: the given one, the one chosen at the first refit, or None."""
        obj = self.settings.get("model") or self.settings.get("chosen_model")
        return _model_from_json(obj)

    def _ids(self, sql, *args):
        with self._lock:
            return np.array([r[0] for r in self._db.execute(sql, args)], np.int64)

    @property
    def trial_ids(self) -> np.ndarray:
        """Ids of the told trials, in the order their responses arrived."""
        return self._ids("SELECT id FROM trials WHERE state='told' ORDER BY told_seq")

    @property
    def pending(self) -> np.ndarray:
        """Ids of the trials asked and not yet told (nor expired), oldest first."""
        return self._ids("SELECT id FROM trials WHERE state='pending' ORDER BY id")

    @property
    def num_told(self) -> int:
        with self._lock:
            return int(self._db.execute(
                "SELECT COUNT(*) FROM trials WHERE state='told'").fetchone()[0])

    @property
    def data(self):
        """:class:`~psyphy_numpyro.TrialData` of every told trial, in the order told."""
        from ..data import TrialData

        with self._lock:
            rows = self._db.execute("SELECT ref, comparison, response FROM trials "
                                    "WHERE state='told' ORDER BY told_seq").fetchall()
        d = self.input_dim
        if not rows:
            return TrialData(np.zeros((0, 2, d)), np.zeros(0, np.int32))
        ref = np.array([json.loads(r[0]) for r in rows], np.float64)
        comp = np.array([json.loads(r[1]) for r in rows], np.float64)
        return TrialData.from_arrays(ref, comp, np.array([r[2] for r in rows], np.int32))

    @property
    def fit(self):
        """The latest finished posterior fit (a LaplaceFit), or None before the first refit."""
        self._collect()
        return self._fit

    def stimuli(self, ids) -> np.ndarray:
        """Stimuli ``(n, 2, d)`` of the given trial ids."""
        ids = self._check_ids(ids)
        with self._lock:
            rows = {r[0]: r[1:] for r in self._db.execute(
                f"SELECT id, ref, comparison FROM trials WHERE id IN ({_marks(ids)})",
                [int(i) for i in ids])}
        missing = [int(i) for i in ids if int(i) not in rows]
        if missing:
            raise InvalidInput(f"unknown trial id {missing[0]}")
        return np.array([[json.loads(rows[int(i)][0]), json.loads(rows[int(i)][1])]
                         for i in ids], np.float64)

    def sources(self, ids) -> list[str]:
        """How each trial was chosen: ``"space"`` (the space-filling sequence) or
        ``"fit<k>"`` (proposed from the session's fit number ``k``)."""
        ids = self._check_ids(ids)
        with self._lock:
            rows = dict(self._db.execute(
                f"SELECT id, source FROM trials WHERE id IN ({_marks(ids)})",
                [int(i) for i in ids]).fetchall())
        missing = [int(i) for i in ids if int(i) not in rows]
        if missing:
            raise InvalidInput(f"unknown trial id {missing[0]}")
        return [rows[int(i)] for i in ids]

    def latest_fit_info(self) -> dict | None:
        """Where the latest finished fit is stored, without loading it.

        Returns
        -------
        dict or None
            ``None`` before the first refit; else ``seq`` (the fit's number,
            from 0), ``num_trials`` (the told trials it saw) and ``path`` (the
            absolute path of its NetCDF file in the folder ``<path>.fits``).
        """
        with self._lock:
            row = self._db.execute(
                "SELECT seq, num_trials, path FROM fits ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return None
        return {"seq": int(row[0]), "num_trials": int(row[1]),
                "path": Path(os.path.abspath(self.fits_dir)) / row[2]}

    def status(self) -> dict:
        """Counts and settings as a JSON-ready dict."""
        self._collect()
        with self._lock:
            counts = dict(self._db.execute(
                "SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())
            nfits = self._db.execute("SELECT COUNT(*) FROM fits").fetchone()[0]
        return {
            "session": str(self.path),
            "told": counts.get("told", 0),
            "pending": counts.get("pending", 0),
            "expired": counts.get("expired", 0),
            "fits": int(nfits),
            "latest_fit_trials": self._latest_fit_trials(),
            "refitting": self.refitting,
            "next_refit_at": self._next_refit_at(),
            "input_dim": self.input_dim,
            "seed": self.seed,
            "num_initial": self.settings["num_initial"],
            "refit_every": self.settings["refit_every"],
        }

    # -- ask / tell -------------------------------------------------------------
    def ask(self, num_trials: int = 1):
        """The next ``num_trials`` trials to show.

        Returns
        -------
        ids : numpy int64 array ``(n,)``
        stimuli : numpy array ``(n, 2, d)``: ``stimuli[i, 0]`` the reference
            (shown twice), ``stimuli[i, 1]`` the comparison.

        The trials are stored as pending before this returns.
        """
        n = check_int("num_trials", num_trials, 1)
        self._raise_worker_error()
        with self._lock:
            self._collect()
            if self.auto_refit and self.live:
                self._start_refit_if_due()
            elif self.auto_refit:
                self._refit_if_due()
            ids = []
            while self._reissue and len(ids) < n:
                i = self._reissue.pop(0)
                state = self._db.execute("SELECT state FROM trials WHERE id=?", (i,)).fetchone()
                if state is not None and state[0] == "pending":
                    ids.append(i)
            if len(ids) < n:
                # the next indices are read inside the write transaction, so two processes
                # asking at once never hand out the same design trial under two ids
                with self._transaction() as db:
                    for ref, comp, source, index in self._new_trials(n - len(ids)):
                        cur = db.execute(
                            "INSERT INTO trials (ref, comparison, source, source_index) "
                            "VALUES (?, ?, ?, ?)",
                            (json.dumps(ref.tolist()), json.dumps(comp.tolist()), source,
                             index))
                        ids.append(int(cur.lastrowid))
            ids = np.array(ids, np.int64)
            self._handed.update(int(i) for i in ids)
            return ids, self.stimuli(ids)

    def _new_trials(self, n):
        if n == 0:
            return []
        out = []
        if self._fit_seq is not None:
            used = self._db.execute(
                "SELECT COALESCE(MAX(source_index) + 1, 0) FROM trials WHERE source=?",
                (f"fit{self._fit_seq}",)).fetchone()[0]
            rows = self._db.execute(
                "SELECT idx, ref, comparison FROM proposals WHERE fit_seq=? AND idx>=? "
                "ORDER BY idx LIMIT ?", (self._fit_seq, used, n)).fetchall()
            out = [(np.array(json.loads(r[1])), np.array(json.loads(r[2])),
                    f"fit{self._fit_seq}", r[0]) for r in rows]
        if len(out) < n:
            start = self._db.execute(
                "SELECT COALESCE(MAX(source_index) + 1, 0) FROM trials WHERE source='space'"
            ).fetchone()[0]
            ref, comp = space_filling_trials(n - len(out), self.input_dim, seed=self.seed,
                                             start=start, distances=self.settings["distances"])
            out += [(ref[j], comp[j], "space", start + j) for j in range(len(ref))]
        return out

    def tell(self, ids, responses) -> None:
        """Record responses (1 correct, 0 wrong) of asked trials; durable before it returns.

        An unknown id, an id told (or expired) before, an id repeated in the
        call, or a response other than 0/1 raises ``ValueError`` and records
        nothing.
        """
        ids = self._check_ids(ids)
        y = _check_binary(responses, len(ids))
        self._raise_worker_error()
        with self._lock:
            # checked inside the write transaction: another process (the command line)
            # telling the same ids at the same moment cannot overwrite an acknowledged
            # response, since BEGIN IMMEDIATE serialises the two
            with self._transaction() as db:
                states = dict(db.execute(
                    f"SELECT id, state FROM trials WHERE id IN ({_marks(ids)})",
                    [int(i) for i in ids]).fetchall())
                for i in ids:
                    s = states.get(int(i))
                    if s is None:
                        raise InvalidInput(f"unknown trial id {int(i)}; nothing was recorded")
                    if s != "pending":
                        raise InvalidInput(f"trial {int(i)} was already {s}; nothing was "
                                           "recorded")
                seq = db.execute("SELECT COALESCE(MAX(told_seq) + 1, 0) FROM trials"
                                 ).fetchone()[0]
                db.executemany(
                    "UPDATE trials SET state='told', response=?, told_seq=? WHERE id=?",
                    [(int(r), seq + j, int(i)) for j, (i, r) in enumerate(zip(ids, y,
                                                                               strict=True))])
            if self.live and self.auto_refit:
                self._start_refit_if_due()

    def expire(self, ids=None) -> np.ndarray:
        """Mark pending trials (all of them by default) expired; returns their ids.

        Expired trials are never handed out again and cannot be told.
        """
        with self._lock:
            pend = set(self.pending.tolist())
            ids = sorted(pend) if ids is None else [int(i) for i in self._check_ids(ids)]
            bad = [i for i in ids if i not in pend]
            if bad:
                raise InvalidInput(f"trial {bad[0]} is not pending; nothing was expired")
            with self._transaction() as db:
                db.executemany("UPDATE trials SET state='expired' WHERE id=?",
                               [(i,) for i in ids])
            self._reissue = [i for i in self._reissue if i not in set(ids)]
            return np.array(ids, np.int64)

    def _check_ids(self, ids):
        arr = np.asarray(ids)
        if arr.ndim == 0:
            arr = arr[None]
        if arr.ndim != 1 or arr.size == 0:
            raise InvalidInput(f"ids must be a non-empty 1-D array of trial ids, got shape "
                               f"{arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
                arr = arr.astype(np.int64)
            else:
                raise InvalidType(f"ids must be integers, got dtype {arr.dtype}")
        uniq, counts = np.unique(arr, return_counts=True)
        if np.any(counts > 1):
            raise InvalidInput(f"trial id {int(uniq[counts > 1][0])} appears twice; nothing was "
                               "recorded")
        return arr.astype(np.int64)

    # -- refits -------------------------------------------------------------------
    def _next_refit_at(self):
        with self._lock:
            last = self._db.execute("SELECT MAX(num_trials) FROM fits").fetchone()[0]
        if last is None:
            return self.settings["num_initial"]
        return int(last) + self.settings["refit_every"]

    def _due(self):
        return self.num_told >= self._next_refit_at()

    @property
    def refitting(self) -> bool:
        """Whether a background refit is running."""
        return self._worker is not None and self._worker.is_alive()

    def _refit_if_due(self):
        if self._due():
            result = _refit_job(self._job())
            self._record(result)

    def _start_refit_if_due(self):
        if self.refitting or not self._due():
            return
        job = self._job()

        def run():
            try:
                self._pending_result = _refit_job(job)
            except BaseException as exc:  # reported by the next ask / tell / wait
                self._worker_error = exc

        self._pending_result = None
        self._worker = threading.Thread(target=run, name="psyphy-numpyro-refit", daemon=True)
        self._worker.start()

    def _job(self):
        with self._lock:
            seq = int(self._db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM fits"
                                       ).fetchone()[0])
        return {"data": self.data, "model": self.model, "seq": seq, "seed": self.seed,
                "chosen": self.settings.get("model") is None,
                "previous": self._fit, "path": self.fits_dir / f"fit_{seq:04d}.nc",
                "options": self.settings["fit_options"],
                "num_proposals": 2 * self.settings["refit_every"]}

    def _collect(self):
        """Record a finished background refit (called from the user's thread)."""
        w = self._worker
        if w is not None and not w.is_alive():
            self._worker = None
            self._raise_worker_error()
            if self._pending_result is not None:
                self._record(self._pending_result)
                self._pending_result = None

    def _raise_worker_error(self):
        if self._worker_error is not None:
            exc, self._worker_error = self._worker_error, None
            raise RuntimeError(f"the background refit failed: {exc}") from exc

    def _record(self, result):
        with self._lock, self._transaction() as db:
            chosen = _model_to_json(result["fit"].model)
            if self.settings.get("model") is None and self.settings.get(
                    "chosen_model") != chosen:
                self.settings["chosen_model"] = chosen
                db.execute("INSERT OR REPLACE INTO meta VALUES ('chosen_model', ?)",
                           (json.dumps(self.settings["chosen_model"]),))
            db.execute("INSERT INTO fits VALUES (?, ?, ?)",
                       (result["seq"], len(result["fit"].data), result["path"].name))
            db.executemany("INSERT INTO proposals VALUES (?, ?, ?, ?)",
                           [(result["seq"], j, json.dumps(r.tolist()), json.dumps(c.tolist()))
                            for j, (r, c) in enumerate(zip(*result["proposals"], strict=True))])
        self._fit, self._fit_seq = result["fit"], result["seq"]

    def _load_latest_fit(self):
        """Note the latest fit; its file is read on first use (``ask`` needs only its
        proposals, which are in the session file)."""
        row = self._db.execute("SELECT seq, path FROM fits ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None:
            self._fit_file = self.fits_dir / row[1]
            self._fit_seq = int(row[0])

    @property
    def _fit(self):
        if self._fit_obj is None and self._fit_file is not None:
            from ..persist import load_fit

            self._fit_obj = load_fit(self._fit_file)
            self._fit_file = None
        return self._fit_obj

    @_fit.setter
    def _fit(self, value):
        self._fit_obj, self._fit_file = value, None

    def _latest_fit_trials(self):
        with self._lock:
            row = self._db.execute(
                "SELECT num_trials FROM fits ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running background refit and record it; ``False`` on timeout."""
        w = self._worker
        if w is not None:
            w.join(timeout)
            if w.is_alive():
                return False
        self._collect()
        return True

    def refit(self) -> None:
        """Run a refit now (synchronously), whether or not one is due."""
        self.wait()
        if self.num_told == 0:
            raise InvalidInput("no responses yet: nothing to fit")
        self._record(_refit_job(self._job()))

    def close(self) -> None:
        """Wait for a running refit, record it and close the file."""
        if self._db is None:
            return
        self.wait()
        self._db.close()
        self._db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        s = self.status()
        return (f"Experiment({str(self.path)!r}: {s['told']} told, {s['pending']} pending, "
                f"{s['fits']} fits)")


class _Transaction:
    """``with``: BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), under the session lock."""

    def __init__(self, db, lock):
        self.db, self.lock = db, lock

    def __enter__(self):
        self.lock.acquire()
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, typ, exc, tb):
        try:
            self.db.execute("ROLLBACK" if typ is not None else "COMMIT")
        finally:
            self.lock.release()
        return False


def _marks(ids):
    return ", ".join("?" * len(ids))


def _check_binary(responses, n):
    y = np.asarray(responses)
    if y.ndim == 0:
        y = y[None]
    if y.shape != (n,):
        raise InvalidInput(f"responses must have one entry per id ({n}), got shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number):
        raise InvalidType(f"responses must be 0/1 numbers or booleans, got dtype {y.dtype}")
    bad = ~np.isin(y, (0, 1))
    if np.any(bad):
        j = int(np.flatnonzero(bad)[0])
        raise InvalidInput(f"responses must be 0 or 1, got {y[j].item()!r} at position {j}; "
                           "nothing was recorded")
    return y.astype(np.int64)


def session_capacity(n: int) -> int:
    """Padded trial count of a session's refits: the next power of two (at least 512), so a
    session growing to 6 000 trials compiles its fit programs five times, not twenty-five."""
    return max(512, 1 << (int(n) - 1).bit_length())


def _refit_job(job):
    """One refit: MAP (warm-started), Laplace around it, the proposals; the fit saved."""
    from ..hyperparameters import floor_is_high
    from ..laplace import fit_laplace
    from ..map_fit import fit_map
    from ..model import WPPM

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
        init = _posterior_mode(previous)  # also across a new choice of the two scales
    fit_seed = (seed * 1009 + seq) % (2**31)
    capacity = session_capacity(len(data))
    m = fit_map(data, model, steps=opts["warm_steps"] if warm else opts["map_steps"],
                num_restarts=1 if init is not None else 3, seed=fit_seed, init=init,
                progress=False, trial_capacity=capacity)
    post = fit_laplace(data, model, init=m, num_draws=opts["num_draws"], seed=fit_seed,
                       progress=False, trial_capacity=capacity)
    proposals = propose_trials(post, job["num_proposals"], key=fit_seed,
                               criterion=opts["criterion"])
    job["path"].parent.mkdir(exist_ok=True)
    post.save(job["path"], log_likelihood=False)
    return {"fit": post, "seq": seq, "path": job["path"], "proposals": proposals}


def _posterior_mode(fit):
    """The MAP a Laplace fit is centred on, as ``params`` (the next fit's warm start)."""
    if getattr(fit, "map_fit", None) is not None:
        return dict(fit.map_fit.params)
    params = {"W": np.asarray(fit.mean)}
    if fit.model.learns_lapse:
        params["lapse_rate"] = float(np.median(np.asarray(fit.lapse_rates())))
    return params

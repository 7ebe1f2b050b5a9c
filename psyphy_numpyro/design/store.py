"""The session store: one SQLite file per adaptive session, and who owns it.

This module imports no JAX, NumPyro or SciPy (only the standard library;
NumPy where arrays are returned), so callers that only read a session (``psyphy-numpyro experiment
status``, a status page) start in a fraction of a second.

The file's format, connection settings and transactions are
:mod:`.schema`'s.

Ownership
---------
A process that opens a session for asking takes its *lease* (:mod:`.lease`):
an operating-system lock on a sidecar file (``<session>.owner``, a
:class:`FileLock`) held for as long as the session is open, and the row of
``lease`` naming the owner. A second opener gets
:class:`~psyphy_numpyro.errors.SessionBusy` naming the owner; the lock dies
with its process (``kill -9`` included), so a stale lease is taken at once.
``takeover=True`` moves the lease from a live owner; every change an owner
makes checks its lease inside the transaction (:meth:`SessionStore.transaction`),
so an owner that was taken over changes nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

from ..errors import InvalidInput, SessionBusy
from . import lease as ownership
from .lease import FileLock, Lease, owner_info
from .schema import (
    DURABILITY,
    SCHEMA_VERSION,
    Transaction,
    check_durability,
    connect,
    read_settings,
    retry_busy,
)

__all__ = ["DURABILITY", "SCHEMA_VERSION", "FileLock", "Lease", "SessionStore",
           "check_durability", "read_settings"]


def _marks(ids) -> str:
    return ", ".join("?" * len(ids))


class SessionStore:
    """One session file: its tables, transactions and lease (no policy, no fitting).

    Parameters
    ----------
    path : str or os.PathLike
        The session file. Created when missing unless ``read_only``.
    read_only : bool
        Open an existing session to read it: no tables are created and every
        change raises ``ValueError``.
    durability : {"power", "process"}
        ``"power"`` (``synchronous=FULL``, the default): every commit is synced
        to the disk before it returns. ``"process"`` (``synchronous=NORMAL``):
        a commit survives the end of the process however it ends, not an
        operating-system crash or power cut that comes before the next
        :meth:`sync` (see :mod:`.schema`).
    """

    def __init__(self, path, *, read_only: bool = False, durability: str = "power"):
        self.path = Path(os.fspath(path))
        self.read_only = bool(read_only)
        self.durability = check_durability(durability)
        if self.path.is_dir():
            raise InvalidInput(f"{self.path}: is a folder, not a session file")
        if not self.path.parent.exists():
            raise InvalidInput(f"{self.path.parent}: no such folder for the session file")
        if self.read_only:
            read_settings(self.path)  # an existing session file, left as it is
        self.lock = threading.RLock()
        self._sync_db = None  # the connection of sync(), opened on first use
        self._sync_lock = threading.Lock()
        self.db = connect(self.path, read_only=self.read_only, durability=self.durability)

    def sync(self) -> None:
        """Sync the committed changes to the disk: a passive checkpoint (it syncs the
        write-ahead log, copies it into the file and syncs that) on a connection of its
        own, so the store's lock is not held while the disk flushes. A checkpoint that
        another connection's reading holds back syncs what it can; an error (the file
        busy) is left for the next call."""
        with self._sync_lock:
            if self.read_only or self.db is None:
                return
            con = self._sync_db
            if con is None:
                con = self._sync_db = sqlite3.connect(self.path, isolation_level=None,
                                                      check_same_thread=False, timeout=0.1)
                con.execute(f"PRAGMA synchronous={DURABILITY[self.durability]}")
            try:
                con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.OperationalError:
                pass

    @property
    def fits_dir(self) -> Path:
        """The folder of the session's fit files, ``<path>.fits``."""
        return Path(str(self.path) + ".fits")

    def close(self) -> None:
        """Close the file (a held lease is released first by its owner)."""
        with self._sync_lock:
            if self._sync_db is not None:
                self._sync_db.close()
                self._sync_db = None
        if self.db is not None:
            self.db.close()
            self.db = None

    # -- transactions ---------------------------------------------------------------
    def transaction(self, lease: Lease | None = None):
        """``with``: ``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error).

        With a ``lease``, the transaction first checks that it is still the
        session's lease and raises :class:`~psyphy_numpyro.errors.SessionBusy`
        naming the new owner when it was taken over.
        """
        if self.read_only:
            raise InvalidInput(f"{self.path}: opened read-only; nothing can be changed")
        return Transaction(self, lease)

    def check_lease(self, db, lease):
        """Raise ``SessionBusy`` (and release ``lease``'s lock) unless ``lease`` is still
        the session's."""
        row = self.lease_row(db)
        if row is not None and row["token"] == lease.token:
            return
        owner = owner_info(row) if row is not None else {
            "pid": None, "host": None, "since": None, "name": "nobody (the lease was released)"}
        lease.revoked_by = owner
        lease.lock.release()  # the lease is gone: so is its lock
        raise SessionBusy(self.path, owner)

    # -- settings -------------------------------------------------------------------
    def init_settings(self, given: dict) -> tuple[dict, bool]:
        """The stored settings, or ``given`` stored when there are none; race-free.

        Returns
        -------
        settings : dict
        created : bool
            Whether ``given`` was stored (a new session).
        """
        def attempt():
            with self.transaction() as db:
                rows = db.execute("SELECT key, value FROM meta").fetchall()
                if rows:
                    return {k: json.loads(v) for k, v in rows}, False
                db.executemany("INSERT INTO meta VALUES (?, ?)",
                               [(k, json.dumps(v)) for k, v in given.items()])
                return dict(given), True

        settings, created = retry_busy(attempt, self.path)
        if settings.get("version") != SCHEMA_VERSION:
            raise InvalidInput(f"{self.path}: session format {settings.get('version')} is "
                               f"not {SCHEMA_VERSION}, which this version reads")
        return settings, created

    def settings(self) -> dict:
        """The stored settings (read-only openers)."""
        with self.lock:
            rows = self.db.execute("SELECT key, value FROM meta").fetchall()
        settings = {k: json.loads(v) for k, v in rows}
        if settings.get("version") != SCHEMA_VERSION:
            raise InvalidInput(f"{self.path}: session format {settings.get('version')} is "
                               f"not {SCHEMA_VERSION}, which this version reads")
        return settings

    def set_setting(self, key: str, value, lease: Lease | None = None) -> None:
        """Store one setting (JSON), replacing its value."""
        with self.transaction(lease) as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # -- reading ------------------------------------------------------------------------
    def _ids(self, sql, *args):
        with self.lock:
            return [int(r[0]) for r in self.db.execute(sql, args)]

    def told_ids(self) -> list[int]:
        """Ids of the told trials the fits use (validation trials left out), in the order
        their responses arrived."""
        return self._ids("SELECT id FROM trials WHERE state='told' AND source!='validation' "
                         "ORDER BY told_seq")

    def validation_told(self):
        """``(ids, ref, comparison, responses)`` of the told validation trials, in the
        order told (lists)."""
        with self.lock:
            rows = self.db.execute("SELECT id, ref, comparison, response FROM trials WHERE "
                                   "source='validation' AND state='told' ORDER BY told_seq"
                                   ).fetchall()
        return ([int(r[0]) for r in rows], [json.loads(r[1]) for r in rows],
                [json.loads(r[2]) for r in rows], [int(r[3]) for r in rows])

    def validation_counts(self) -> dict:
        """``{"told": n, "pending": n, "expired": n}`` of the validation trials handed out
        (from the index of the sources: no table scan)."""
        with self.lock:
            counts = dict(self.db.execute("SELECT state, COUNT(*) FROM trials WHERE "
                                          "source='validation' GROUP BY state").fetchall())
        return {k: int(counts.get(k, 0)) for k in ("told", "pending", "expired")}

    def num_fit_told(self) -> int:
        """The number of told trials the fits use (validation trials left out)."""
        with self.lock:
            held = self.db.execute("SELECT COUNT(*) FROM trials WHERE source='validation' "
                                   "AND state='told'").fetchone()[0]
        return self.num_told() - int(held)

    def pending_ids(self) -> list[int]:
        """Ids of the pending trials, oldest first."""
        return self._ids("SELECT id FROM trials WHERE state='pending' ORDER BY id")

    def num_told(self) -> int:
        """The number of told trials (from the index of the order told: no table scan)."""
        with self.lock:
            return int(self.db.execute("SELECT COALESCE(MAX(told_seq) + 1, 0) FROM trials"
                                       ).fetchone()[0])

    def counts(self) -> dict:
        """``{"told": n, "pending": n, "expired": n, "fits": n}``."""
        with self.lock:
            counts = dict(self.db.execute(
                "SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())
            nfits = self.db.execute("SELECT COUNT(*) FROM fits").fetchone()[0]
        return {"told": int(counts.get("told", 0)), "pending": int(counts.get("pending", 0)),
                "expired": int(counts.get("expired", 0)), "fits": int(nfits)}

    def state(self, trial_id: int):
        """The state of one trial (``None`` for an unknown id)."""
        with self.lock:
            row = self.db.execute("SELECT state FROM trials WHERE id=?",
                                  (int(trial_id),)).fetchone()
        return None if row is None else row[0]

    def told_trials(self):
        """``(ref, comparison, responses)`` of the told trials the fits use (validation
        trials left out) in the order told (lists)."""
        with self.lock:
            rows = self.db.execute("SELECT ref, comparison, response FROM trials "
                                   "WHERE state='told' AND source!='validation' "
                                   "ORDER BY told_seq").fetchall()
        return ([json.loads(r[0]) for r in rows], [json.loads(r[1]) for r in rows],
                [int(r[2]) for r in rows])

    def _rows(self, ids, columns):
        ids = [int(i) for i in ids]
        with self.lock:
            rows = {r[0]: r[1:] for r in self.db.execute(
                f"SELECT id, {columns} FROM trials WHERE id IN ({_marks(ids)})", ids)}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise InvalidInput(f"unknown trial id {missing[0]}")
        return [rows[i] for i in ids]

    def stimuli(self, ids):
        """Stimuli ``(n, 2, d)`` (a NumPy array) of the given trial ids."""
        import numpy as np

        return np.array([[json.loads(r), json.loads(c)] for r, c in
                         self._rows(ids, "ref, comparison")], np.float64)

    def sources(self, ids) -> list[str]:
        """How each trial was chosen (``"space"``, ``"fit<k>"`` or ``"validation"``)."""
        return [r[0] for r in self._rows(ids, "source")]

    def latest_fit(self) -> dict | None:
        """``{"seq", "num_trials", "path"}`` of the latest fit (path absolute), or None."""
        with self.lock:
            row = self.db.execute(
                "SELECT seq, num_trials, path FROM fits ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return None
        return {"seq": int(row[0]), "num_trials": int(row[1]),
                "path": Path(os.path.abspath(self.fits_dir)) / row[2]}

    def next_fit_seq(self) -> int:
        """The number the next fit gets."""
        with self.lock:
            return int(self.db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM fits"
                                       ).fetchone()[0])

    def next_refit_at(self, settings: dict) -> int:
        """The number of told trials at which the session's policy refits next."""
        with self.lock:
            last = self.db.execute("SELECT MAX(num_trials) FROM fits").fetchone()[0]
        if last is None:
            return int(settings["num_initial"])
        return int(last) + int(settings["refit_every"])

    # -- changing (inside a transaction: ``db`` from :meth:`transaction`) ----------------
    @staticmethod
    def next_source_index(db, source: str) -> int:
        """The next unused index of a trial source (the design sequence or a fit's batch)."""
        return int(db.execute("SELECT COALESCE(MAX(source_index) + 1, 0) FROM trials "
                              "WHERE source=?", (source,)).fetchone()[0])

    @staticmethod
    def proposals(db, fit_seq: int, start: int, n: int):
        """Up to ``n`` proposals of fit ``fit_seq`` from index ``start``: ``(idx, ref, comp)``."""
        rows = db.execute("SELECT idx, ref, comparison FROM proposals WHERE fit_seq=? AND "
                          "idx>=? ORDER BY idx LIMIT ?", (fit_seq, start, n)).fetchall()
        return [(int(i), json.loads(r), json.loads(c)) for i, r, c in rows]

    @staticmethod
    def add_trial(db, ref, comparison, source: str, index: int) -> int:
        """Store a new pending trial; its id."""
        cur = db.execute("INSERT INTO trials (ref, comparison, source, source_index) "
                         "VALUES (?, ?, ?, ?)",
                         (json.dumps(list(ref)), json.dumps(list(comparison)), source,
                          int(index)))
        return int(cur.lastrowid)

    def tell(self, ids, responses, *, repeat_ok: bool = False,
             lease: Lease | None = None) -> int:
        """Record responses of pending trials in one transaction; the number newly recorded.

        An unknown id or one told (or expired) before raises ``ValueError``
        and records nothing; with ``repeat_ok``, an id already told with the
        same response is accepted and left as it is.
        """
        ids = [int(i) for i in ids]
        responses = [int(r) for r in responses]
        with self.transaction(lease) as db:
            rows = {r[0]: r[1:] for r in db.execute(
                f"SELECT id, state, response FROM trials WHERE id IN ({_marks(ids)})", ids)}
            new = []
            for i, r in zip(ids, responses, strict=True):
                if i not in rows:
                    raise InvalidInput(f"unknown trial id {i}; nothing was recorded")
                state, old = rows[i]
                if state == "pending":
                    new.append((i, r))
                elif repeat_ok and state == "told" and old == r:
                    continue
                elif repeat_ok and state == "told":
                    raise InvalidInput(f"trial {i} was already told with response {old}, not "
                                       f"{r}; nothing was recorded")
                else:
                    raise InvalidInput(f"trial {i} was already {state}; nothing was recorded")
            seq = db.execute("SELECT COALESCE(MAX(told_seq) + 1, 0) FROM trials").fetchone()[0]
            db.executemany("UPDATE trials SET state='told', response=?, told_seq=? WHERE id=?",
                           [(r, seq + j, i) for j, (i, r) in enumerate(new)])
        return len(new)

    def expire(self, ids=None, *, lease: Lease | None = None) -> list[int]:
        """Mark pending trials (every one when ``ids`` is None) expired; their ids."""
        with self.transaction(lease) as db:
            pending = [r[0] for r in db.execute(
                "SELECT id FROM trials WHERE state='pending' ORDER BY id")]
            ids = pending if ids is None else [int(i) for i in ids]
            bad = sorted(set(ids) - set(pending))
            if bad:
                raise InvalidInput(f"trial {bad[0]} is not pending; nothing was expired")
            db.executemany("UPDATE trials SET state='expired' WHERE id=?", [(i,) for i in ids])
        return ids

    def record_fit(self, seq: int, num_trials: int, filename: str, proposals, *,
                   chosen_model=None, lease: Lease | None = None) -> None:
        """Record a finished fit, its proposals ``(ref, comparison)`` and, when the session
        chose its model from the data, that model (JSON), in one transaction."""
        import numpy as np

        refs, comps = proposals
        with self.transaction(lease) as db:
            if chosen_model is not None:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('chosen_model', ?)",
                           (json.dumps(chosen_model),))
            db.execute("INSERT INTO fits VALUES (?, ?, ?)", (int(seq), int(num_trials),
                                                              filename))
            db.executemany("INSERT INTO proposals VALUES (?, ?, ?, ?)",
                           [(int(seq), j, json.dumps(np.asarray(r).tolist()),
                             json.dumps(np.asarray(c).tolist()))
                            for j, (r, c) in enumerate(zip(refs, comps, strict=True))])

    # -- the lease ------------------------------------------------------------------------
    def lease_row(self, db=None) -> dict | None:
        """The ``lease`` row (``token``, ``pid``, ``host``, ``since``, ``name``,
        ``lockfile``), or None (no owner, or a file written before the table)."""
        db = self.db if db is None else db
        try:
            row = db.execute("SELECT token, pid, host, since, name, lockfile FROM lease "
                             "WHERE slot=0").fetchone()
        except sqlite3.OperationalError:  # a file written before the lease table
            return None
        if row is None:
            return None
        return dict(zip(("token", "pid", "host", "since", "name", "lockfile"), row,
                        strict=True))

    def owner(self) -> dict | None:
        """The live owner (``pid``, ``host``, ``since``, ``name``), or None; a lease whose
        lock is free (its process ended) is stale: None."""
        return ownership.live_owner(self)

    def acquire_lease(self, name: str | None = None, *, takeover: bool = False) -> Lease:
        """Become the session's owner (:func:`.lease.acquire`); ``SessionBusy`` when a
        live owner holds it and not ``takeover``."""
        return ownership.acquire(self, name, takeover=takeover)

    def release_lease(self, held: Lease) -> None:
        """Give the lease up (nothing when it was taken over); unlock its sidecar."""
        ownership.release(self, held)

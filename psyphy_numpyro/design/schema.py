"""The session file's format: its tables, its connection settings and its transactions.

Imports only the standard library (see :mod:`.store`).

The file
--------
An SQLite database in WAL mode with a busy timeout: every change is one
``BEGIN IMMEDIATE`` transaction, committed before the call returns. How far
a commit is durable is the opener's ``durability`` (:data:`DURABILITY`):
``"process"`` (``synchronous=NORMAL``): a commit is in the write-ahead log
(the operating system's file cache) when the call returns, so it survives the
end of the process however it ends (``kill -9`` included) but an operating
system crash or power cut may undo the commits since the log was last synced
(at its checkpoints); ``"power"`` (``synchronous=FULL``): the log is synced
(``fsync``) at every commit, so a commit also survives a power cut, at the
cost of one disk flush per change (about 3.5 ms on the benchmark machine's
disk). :meth:`.store.SessionStore.sync` (a checkpoint, from a connection of its own)
syncs the log and the file: the session server calls it about once a second
for its ``"process"`` sessions, bounding what a power cut can undo to about
the last second. Several processes may open one file at the same moment, creating it
if needed: the WAL set-up is retried while another opener holds the file, and
the settings are read and, for a new session, written in one transaction, so
exactly one set of settings is stored.

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
    The adaptive trials proposed from each fit, handed out in order.
``lease``
    The session's owner (at most one row): the process that opened it for
    asking. Files written before this table existed open as they are; the
    table is added by the first owner.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time

from ..errors import InvalidInput

__all__ = ["BUSY_WAIT", "DURABILITY", "SCHEMA", "SCHEMA_VERSION", "Transaction",
           "check_durability", "connect", "read_settings", "retry_busy"]

SCHEMA_VERSION = 1

DURABILITY = {"process": "NORMAL", "power": "FULL"}
"""The ``durability`` choices and the ``PRAGMA synchronous`` each sets."""

SCHEMA = """
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
CREATE INDEX IF NOT EXISTS trials_source ON trials (source, source_index);
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
CREATE TABLE IF NOT EXISTS lease (
    slot INTEGER PRIMARY KEY CHECK (slot = 0),
    token TEXT NOT NULL,
    pid INTEGER,
    host TEXT,
    since TEXT,
    name TEXT,
    lockfile TEXT NOT NULL
);
"""

BUSY_WAIT = 30.0  # seconds a connection waits for another writer


def retry_busy(fn, what):
    """``fn()``, retried while another process holds the file (``database is locked``)."""
    deadline = time.monotonic() + BUSY_WAIT
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" not in text and "busy" not in text:
                raise
            if time.monotonic() > deadline:
                raise InvalidInput(f"{what}: {text}") from exc
            time.sleep(0.005 + 0.02 * random.random())


def check_durability(durability: str) -> str:
    """``durability`` when it is one of :data:`DURABILITY`'s keys; else ``ValueError``."""
    if durability not in DURABILITY:
        raise InvalidInput(f"durability must be one of {sorted(DURABILITY)}, got "
                           f"{durability!r}")
    return durability


def read_settings(path) -> dict:
    """The settings stored in an existing session file, read without changing it.

    Parameters
    ----------
    path : str or os.PathLike
        The session file.

    Returns
    -------
    dict
        The stored settings.

    Raises
    ------
    ValueError
        No such file, a folder, or a file that is not a session file (left
        as it is). A session file that another process is creating (no
        tables yet, or no settings yet) is read again for up to 2 s.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InvalidInput(f"{path}: no such session file")
    if os.path.isdir(path):
        raise InvalidInput(f"{path}: is a folder, not a session file")
    deadline = time.monotonic() + _CREATING_WAIT
    while True:
        rows, creating = _read_meta(path)
        if rows:
            return {k: json.loads(v) for k, v in rows}
        if not creating or time.monotonic() > deadline:
            raise InvalidInput(f"{path}: not a psyphy_numpyro session file")
        time.sleep(0.02)


_CREATING_WAIT = 2.0  # seconds a file another process is creating may lack its settings


def _read_meta(path):
    """``(rows of meta, creating)``: ``creating`` when the file may be a session another
    process is creating (no tables yet, or the tables without the settings)."""
    try:
        con = sqlite3.connect(path, timeout=BUSY_WAIT)
        try:
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
            if "meta" not in names:
                return [], not names
            return con.execute("SELECT key, value FROM meta").fetchall(), True
        finally:
            con.close()
    except sqlite3.DatabaseError:  # not an SQLite file
        return [], False


def connect(path, *, read_only: bool, durability: str) -> sqlite3.Connection:
    """A connection to the session file ``path`` (autocommit: :class:`Transaction` makes
    the transactions); unless ``read_only``, in WAL mode with ``durability``'s
    ``synchronous`` and the tables created when missing (retried while another opener
    holds the file)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                         timeout=BUSY_WAIT)
    try:
        if not read_only:
            retry_busy(lambda: db.execute("PRAGMA journal_mode=WAL"), path)
            db.execute(f"PRAGMA synchronous={DURABILITY[durability]}")
            retry_busy(lambda: _create_tables(db), path)
    except BaseException:
        db.close()
        raise
    return db


def _create_tables(db):
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class Transaction:
    """``with``: BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), under the store's lock."""

    def __init__(self, store, lease):
        self.store, self.lease = store, lease

    def __enter__(self):
        self.store.lock.acquire()
        try:
            self.store.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.store.lock.release()
            raise
        if self.lease is not None:
            try:
                self.store.check_lease(self.store.db, self.lease)
            except BaseException:
                try:
                    self.store.db.execute("ROLLBACK")
                finally:
                    self.store.lock.release()
                raise
        return self.store.db

    def __exit__(self, typ, exc, tb):
        try:
            self.store.db.execute("ROLLBACK" if typ is not None else "COMMIT")
        finally:
            self.store.lock.release()
        return False

"""The ownership lease of a session file and the operating-system file lock under it.

A process that opens a session for asking takes its lease: an exclusive
:class:`FileLock` on a sidecar file (``<session>.owner``; after a takeover of a
live owner ``<session>.owner.1``, ...: the first one free) held for as long as
the session is open, and the row of the store's ``lease`` table naming the owner
and that sidecar. The lock dies with the process, however it ends, so a lease
whose sidecar is not locked is stale and the next opener takes it. The store
checks the row's token inside every change an owner makes, so an owner whose
lease was taken over changes nothing (:meth:`.SessionStore.transaction`).

Imports no JAX or NumPy (only the standard library).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
import weakref
from datetime import UTC, datetime
from pathlib import Path

from ..errors import SessionBusy

__all__ = ["FileLock", "Lease", "acquire", "release", "live_owner", "owner_info"]

_CLAIM_WAIT = 30.0  # seconds of losing the claim to other openers before giving up


class FileLock:
    """An exclusive operating-system lock on a file, released when its process ends.

    ``flock`` on POSIX and ``msvcrt.locking`` on Windows: the lock belongs to
    the open file, so two ``FileLock`` objects conflict even in one process,
    and it disappears with the process however that ends (``kill -9``), or
    with the object when it is garbage-collected while held.

    Parameters
    ----------
    path : str or os.PathLike
        The lock file (created, with its folder, when missing).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.fd = None
        self._finalizer = None

    def acquire(self, *, blocking: bool) -> bool:
        """Take the lock; ``False`` when another holder has it and ``blocking`` is False."""
        self.path.parent.mkdir(exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            ok = _lock(fd, blocking)
        except BaseException:
            os.close(fd)
            raise
        if not ok:
            os.close(fd)
            return False
        self.adopt(fd)
        return True

    def adopt(self, fd: int) -> None:
        """Hold the lock of an open file descriptor inherited from another process."""
        self.fd = fd
        # an owner dropped without close() (a notebook cell run again) frees its session
        self._finalizer = weakref.finalize(self, os.close, fd)

    def release(self) -> None:
        """Unlock and close (nothing when not held)."""
        if self.fd is not None:
            _unlock(self.fd)
            self.close()

    def close(self) -> None:
        """Close without unlocking: a child process sharing the file keeps the lock."""
        if self.fd is not None:
            self._finalizer.detach()
            os.close(self.fd)
            self.fd = None

    def held_elsewhere(self) -> bool:
        """Whether another holder has the lock (probed without waiting)."""
        if not self.path.parent.exists():
            return False
        if self.acquire(blocking=False):
            self.release()
            return False
        return True

    def write(self, text: str) -> None:
        """Replace the lock file's content (held lock only; informative, for people)."""
        os.lseek(self.fd, 0, os.SEEK_SET)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, text.encode())


if os.name == "posix":
    import fcntl

    def _lock(fd, blocking):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True

    def _unlock(fd):
        fcntl.flock(fd, fcntl.LOCK_UN)

else:  # pragma: no cover - Windows
    import msvcrt

    def _lock(fd, blocking):
        # a byte far beyond the informative content, which is rewritten while locked
        os.lseek(fd, 1 << 20, os.SEEK_SET)
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not blocking:
                    return False
                time.sleep(0.5)

    def _unlock(fd):
        os.lseek(fd, 1 << 20, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class Lease:
    """The lease of an owner: its token, who it is (``owner``) and its held lock."""

    def __init__(self, token: str, owner: dict, lock: FileLock):
        self.token, self.owner, self.lock = token, owner, lock
        self.revoked_by = None  # the owner who took it over, once this owner noticed

    def __repr__(self):
        return f"Lease({self.owner!r})"


def owner_info(row: dict) -> dict:
    """The owner as :class:`~psyphy_numpyro.errors.SessionBusy` reports it: ``pid``,
    ``host``, ``since`` and, where given, ``name``."""
    out = {k: row.get(k) for k in ("pid", "host", "since")}
    if row.get("name"):
        out["name"] = row["name"]
    return out


def _sidecar(store, name) -> Path:
    return store.path.parent / name


def live_owner(store) -> dict | None:
    """The live owner of ``store``'s session, or None (none, or a stale lease)."""
    with store.lock:
        row = store.lease_row()
    if row is None or not FileLock(_sidecar(store, row["lockfile"])).held_elsewhere():
        return None
    return owner_info(row)


def _free_lock(store) -> FileLock:
    """The first sidecar ``<session>.owner``, ``.owner.1``, ... whose lock is free, held."""
    base = store.path.name + ".owner"
    for k in range(1000):
        lock = FileLock(_sidecar(store, base if k == 0 else f"{base}.{k}"))
        if lock.acquire(blocking=False):
            return lock
    raise SessionBusy(store.path, store.lease_row() or {})  # pragma: no cover


def acquire(store, name: str | None = None, *, takeover: bool = False) -> Lease:
    """Make this process the owner of ``store``'s session.

    Parameters
    ----------
    store : SessionStore
    name : str, optional
        Shown to other openers (e.g. ``"server"``).
    takeover : bool
        Take the lease from a live owner: its next change raises ``SessionBusy``.

    Returns
    -------
    Lease

    Raises
    ------
    SessionBusy
        A live owner holds the session and ``takeover`` is False.
    """
    deadline = time.monotonic() + _CLAIM_WAIT
    while True:
        with store.lock:
            row = store.lease_row()
        if row is not None and not takeover and FileLock(
                _sidecar(store, row["lockfile"])).held_elsewhere():
            raise SessionBusy(store.path, owner_info(row))
        lock = _free_lock(store)
        owner = owner_info({"pid": os.getpid(), "host": socket.gethostname(),
                            "since": datetime.now(UTC).isoformat(timespec="seconds"),
                            "name": name})
        token = uuid.uuid4().hex
        # the claim: only if nobody claimed the lease since it was read (the row is
        # compared inside the write transaction, so of two openers one wins)
        with store.transaction() as db:
            now = store.lease_row(db)
            claimed = (now or {}).get("token") == (row or {}).get("token")
            if claimed:
                db.execute("INSERT OR REPLACE INTO lease VALUES (0, ?, ?, ?, ?, ?, ?)",
                           (token, owner["pid"], owner["host"], owner["since"], name,
                            lock.path.name))
        if claimed:
            lock.write(json.dumps(owner) + "\n")
            return Lease(token, owner, lock)
        lock.release()  # another opener claimed it first: look again
        if time.monotonic() > deadline:  # pragma: no cover - endless contention
            raise SessionBusy(store.path, owner_info(now))


def release(store, held: Lease) -> None:
    """Give up ``held`` (its row, unless it was taken over) and unlock its sidecar."""
    try:
        if held.revoked_by is None and store.db is not None:
            with store.transaction() as db:
                db.execute("DELETE FROM lease WHERE token=?", (held.token,))
    finally:
        held.lock.release()

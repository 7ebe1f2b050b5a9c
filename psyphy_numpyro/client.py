"""A client of the session server (``psyphy-numpyro serve``), standard library only.

This module imports nothing outside Python's standard library (no NumPy, no
JAX), so it runs inside PsychoPy's bundled Python or any other: copy this one
file next to your experiment script if the package is not installed there.
NumPy arrays are accepted wherever lists are (anything with ``.tolist()``).

Examples
--------
>>> from psyphy_numpyro.client import Client                    # doctest: +SKIP
>>> c = Client("http://127.0.0.1:8765")                          # doctest: +SKIP
>>> s = c.session("obs1.sqlite", input_dim=2, seed=0)            # doctest: +SKIP
>>> ids, stimuli = s.ask(1)             # stimuli[i] = [reference, comparison]  # doctest: +SKIP
>>> s.tell(ids, [1])                    # 1 correct, 0 wrong    # doctest: +SKIP
>>> s.status()["told"]                                           # doctest: +SKIP
1

Retries
-------
Every call is safe to repeat, so a call that fails on the network (a refused
connection, a reset, a timeout) is sent again, ``retries`` times, ``backoff``
seconds apart (doubling): ``tell`` is idempotent on the server (a response
told twice is recorded once), and ``ask`` carries a request id (a retried
ask gets the same trials). A session the server does not hold open (it was
restarted) is reopened with the settings first given, and the call repeated,
by ``ask`` and ``tell`` only, and only for a session this client opened
(:meth:`Client.session`) and has not closed: ``status``, ``thresholds`` or
``close`` of a session the server does not hold raise :class:`SessionNotOpen`,
so they never create a session.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
import uuid

__all__ = ["Client", "SessionClient", "ServerError", "SessionBusy", "SessionNotOpen",
           "ServerUnavailable"]


class ServerError(RuntimeError):
    """The server answered with an error.

    Attributes
    ----------
    status : int
        The HTTP status (400 bad input, 401 no or a wrong token, 404 unknown
        session, 409 session busy, 422 malformed request, 500 a bug).
    message : str
        The server's message.
    body : dict
        The whole JSON reply.
    """

    def __init__(self, status: int, message: str, body: dict | None = None):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message, self.body = status, message, body or {}


class SessionBusy(ServerError):
    """HTTP 409: another live process owns the session (``owner``: pid, host, since)."""

    @property
    def owner(self) -> dict:
        return self.body.get("owner", {})


class SessionNotOpen(ServerError):
    """HTTP 404: the server does not hold this session open."""


class ServerUnavailable(ConnectionError):
    """No answer from the server after every retry (it is down or unreachable)."""


def _plain(x):
    """NumPy arrays and scalars (anything with ``.tolist()``) as plain Python."""
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


_RETRY_ON = (ConnectionError, TimeoutError, http.client.HTTPException, OSError)
_REOPEN_ON = ("ask", "tell")  # the calls that reopen a session this client opened


class Client:
    """A connection to a session server.

    Parameters
    ----------
    url : str
        The server's address, e.g. ``"http://127.0.0.1:8765"`` (what
        ``psyphy-numpyro serve`` prints).
    token : str, optional
        The server's ``--token`` (sent as ``Authorization: Bearer <token>``).
    timeout : float
        Seconds to wait for each answer (default 10).
    retries : int
        How many times a call that failed on the network is sent again
        (default 5).
    backoff : float
        Seconds before the first retry, doubling after each (default 0.2).
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 10.0,
                 retries: int = 5, backoff: float = 0.2):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must look like http://HOST:PORT, got {url!r}")
        self.url = url.rstrip("/")
        self._scheme, self._host = parts.scheme, parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._prefix = parts.path.rstrip("/")
        self.token, self.timeout = token, float(timeout)
        self.retries, self.backoff = int(retries), float(backoff)
        self._local = threading.local()  # one keep-alive connection per thread

    # -- transport ---------------------------------------------------------------------
    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = (http.client.HTTPSConnection if self._scheme == "https"
                   else http.client.HTTPConnection)
            conn = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def _once(self, method, path, body):
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = self._connection()
        try:
            conn.request(method, self._prefix + path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except BaseException:
            self._drop()
            raise
        try:
            obj = json.loads(raw.decode() or "{}")
        except ValueError:
            obj = {"error": raw.decode(errors="replace")[:500]}
        if resp.status >= 400:
            message = obj.get("error") or obj.get("detail") or resp.reason
            cls = {409: SessionBusy, 404: SessionNotOpen}.get(resp.status, ServerError)
            raise cls(resp.status, str(message), obj)
        return obj

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        """One call to the server, sent again on network errors (see the module).

        Returns
        -------
        dict
            The server's JSON reply.

        Raises
        ------
        ServerError
            The server answered with an error (its message included).
        ServerUnavailable
            No answer after every retry.
        """
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return self._once(method, path, body)
            except _RETRY_ON as exc:
                if attempt == self.retries:
                    raise ServerUnavailable(f"{method} {self.url}{path}: no answer after "
                                            f"{attempt + 1} tries ({exc})") from exc
                time.sleep(delay)
                delay = min(2 * delay, 5.0)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- sessions ----------------------------------------------------------------------
    def session(self, name: str, *, takeover: bool = False, prior: str | None = None,
                **settings) -> SessionClient:
        """Create or open session ``name`` (a file path relative to the server's root).

        Parameters
        ----------
        name : str
            e.g. ``"obs1.sqlite"`` or ``"lab/obs1.sqlite"``.
        takeover : bool
            Take the session over from another live owner.
        prior : str, optional
            Warm-start a new observer from a population: a file under the
            server's root (a relative path, like ``name``) holding a population
            fit (``PopulationFit.save``) or a weight prior (``WeightPrior.save``).
            An existing session must have been created with the same prior.
        **settings
            ``input_dim``, ``seed``, ``num_initial``, ``refit_every``,
            ``distances``, ``fit_options``, ``model`` (a dict of WPPM settings),
            ``space`` (the lab's stimulus units: a dict as
            ``StimulusSpace.to_dict()`` gives it, or any object with a
            ``to_dict()`` method, e.g. a :class:`~psyphy_numpyro.StimulusSpace`;
            ``ask`` then returns stimuli in those units), ``region`` (where the
            user looks, in the session's units: a box as a tuple ``(lo, hi)``,
            reference points as an ``(R, d)`` array or list, or the dicts
            ``{"box": [lo, hi]}`` / ``{"points": [...]}``), ``validation``
            (held-out MOCS trials: ``{"fraction": F, "references": R, "levels": L,
            "repeats": k}`` or a bare fraction, as :class:`~psyphy_numpyro.Experiment`
            takes it), ``stop`` (stop rules, e.g. ``{"trials": 3000, "seconds": 3600,
            "precision": 10.0}``: status's ``progress`` says when one is met): for a new
            session; for an existing one they must match the stored ones.

        Returns
        -------
        SessionClient

        Raises
        ------
        SessionBusy
            Another live process owns the file (pass ``takeover=True``).
        """
        s = SessionClient(self, name, takeover=takeover, settings={**settings, "prior": prior})
        s.open()
        return s

    def sessions(self) -> list[str]:
        """The names of the sessions open in the server."""
        return self.request("GET", "/sessions")["sessions"]

    def close(self) -> None:
        """Close this thread's connection (the sessions stay open in the server)."""
        self._drop()


class SessionClient:
    """One session on the server (made by :meth:`Client.session`)."""

    def __init__(self, client: Client, name: str, *, takeover: bool, settings: dict):
        self.client, self.name = client, name
        self.takeover = takeover
        if hasattr(settings.get("space"), "to_dict"):  # a StimulusSpace (no import here)
            settings["space"] = settings["space"].to_dict()
        region = settings.get("region")
        if isinstance(region, tuple):  # a box (lo, hi), as Experiment takes it
            settings["region"] = {"box": list(region)}
        elif region is not None and not isinstance(region, dict):  # reference points
            settings["region"] = {"points": region}
        self.settings = {k: _plain(v) for k, v in settings.items() if v is not None}
        self._path = "/sessions/" + urllib.parse.quote(name, safe="/")
        self.info: dict = {}
        self.opened = False  # by this object (open), until its close

    def open(self) -> dict:
        """Create or open the session on the server (done by :meth:`Client.session`)."""
        self.info = self.client.request("POST", "/sessions", {
            "name": self.name, "takeover": self.takeover, **self.settings})
        self.opened = True
        return self.info

    def _call(self, method, action, body=None):
        """``method`` on the session's ``action``; on HTTP 404 (the server does not hold
        the session) ``ask`` and ``tell`` of a session this object opened reopen it (the
        server was restarted, or someone closed it) and call again; anything else raises
        :class:`SessionNotOpen` (a status never creates a session)."""
        try:
            return self.client.request(method, f"{self._path}/{action}", body)
        except SessionNotOpen as exc:
            if not (self.opened and action in _REOPEN_ON):
                raise self._not_open(action, exc) from None  # never creates a session
        self.open()
        return self.client.request(method, f"{self._path}/{action}", body)

    def _not_open(self, action, exc, opened=None) -> SessionNotOpen:
        """The 404 of ``action``, with why it was not reopened."""
        if opened if opened is not None else self.opened:
            why = (f"the server no longer holds it (restarted, or someone closed it); {action} "
                   "does not reopen it (ask and tell do)")
        elif self.info:
            why = "this client closed it (open() reopens it)"
        else:
            why = "this client never opened it (Client.session(name) opens it)"
        return SessionNotOpen(exc.status, f"session {self.name!r} is not open in the server: "
                              f"{why}; server: {exc.message}", exc.body)

    def ask(self, n: int = 1):
        """The next ``n`` trials.

        Returns
        -------
        ids : list of int
        stimuli : list ``(n, 2, d)`` of float
            ``stimuli[i][0]`` the reference (shown twice in the oddity task),
            ``stimuli[i][1]`` the comparison.
        """
        reply = self.ask_reply(n)
        return reply["ids"], reply["stimuli"]

    def ask_reply(self, n: int = 1) -> dict:
        """The whole ``ask`` reply (``ids``, ``stimuli``, ``sources``, ``refit`` ...)."""
        return self._call("POST", "ask", {"n": int(n), "request_id": uuid.uuid4().hex})

    def tell(self, ids, responses) -> dict:
        """Record responses (1 or ``True`` correct, 0 or ``False`` wrong) of asked trials.

        Safe to repeat: responses already recorded with the same values are not
        recorded again. Returns the server's reply (``recorded``, ``total_told``,
        ``pending``, ``refit``).
        """
        ids = [int(i) for i in _plain(ids)] if isinstance(_plain(ids), list) else [int(ids)]
        responses = _plain(responses)
        responses = responses if isinstance(responses, list) else [responses]
        responses = [int(r) for r in responses]
        return self._call("POST", "tell", {"ids": ids, "responses": responses})

    def status(self) -> dict:
        """Counts, fits, the refit state and the progress (``told``, ``pending``,
        ``refit``, ``progress`` with ``stop`` and ``reason`` ...)."""
        return self._call("GET", "status")

    def thresholds(self) -> dict:
        """The latest fit's thresholds: ``{"state": ..., "thresholds": {...} or None}``
        (``state``: ``none`` before the first fit, ``computing``, ``ready``, ``failed``)."""
        return self._call("GET", "thresholds")

    def live_url(self) -> str:
        """The address of the session's live page (open it in a browser)."""
        url = f"{self.client.url}{self._path}/live"
        return url + (f"?token={urllib.parse.quote(self.client.token)}"
                      if self.client.token else "")

    def close(self) -> dict:
        """Close the session on the server (it waits for a running refit); afterwards
        no call reopens it (:meth:`open` does)."""
        opened, self.opened = self.opened, False
        try:
            return self.client.request("DELETE", self._path)
        except SessionNotOpen as exc:
            raise self._not_open("close", exc, opened) from None

    def __repr__(self):
        return f"SessionClient({self.name!r} on {self.client.url})"

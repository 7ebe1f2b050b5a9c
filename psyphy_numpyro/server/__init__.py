"""The session server: many adaptive sessions over HTTP/JSON (``psyphy-numpyro serve``).

A FastAPI application on uvicorn hosts the session files under one folder
(``--root``): create or open a session, ask for trials, tell responses (a
repeated tell records nothing twice), read the status and the latest fit's
thresholds, watch a live page, close. Each open session is an
:class:`~psyphy_numpyro.Experiment` held in the server's process with
``live=True``: refits run in the background (a worker process of lower
priority by default, ``Registry(refit_in=...)``) and requests never wait for
them. The replies have the schema of the command line's ``experiment``
JSON (:mod:`psyphy_numpyro.protocol`); ``docs/server.md`` documents both.

Layout: :mod:`.sessions` holds the open sessions, :mod:`.names` resolves their
names to files, :mod:`.replies` builds the thresholds' JSON, :mod:`.warmup` does the
start-up imports, :mod:`.app` the routes, :mod:`.live` the live page; :func:`serve`
runs it all.
"""

from __future__ import annotations

import ipaddress

__all__ = ["create_app", "serve", "is_loopback", "check_bind"]

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, ``localhost``)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen on another interface than the loopback without a token.

    Raises
    ------
    ValueError
        ``host`` is not a loopback address and ``token`` is empty.
    """
    if not is_loopback(host) and not token:
        raise ValueError(f"--host {host} makes the sessions reachable from other machines; "
                         "give --token SECRET too (clients then send 'Authorization: Bearer "
                         "SECRET'), or bind to 127.0.0.1")


def create_app(root, *, token=None, monitor_every: float = 0.25, durability: str = "process"):
    """The FastAPI application (see :func:`psyphy_numpyro.server.app.create_app`)."""
    from .app import create_app as _create

    return _create(root, token=token, monitor_every=monitor_every, durability=durability)


def serve(root=".", *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
          log_level: str = "warning", ready=None, switch_interval: float | None = 0.0005,
          durability: str = "process") -> None:
    """Run the server until interrupted (Ctrl-C closes the sessions cleanly).

    Parameters
    ----------
    root : str or os.PathLike
        The folder of the session files.
    host : str
        The interface to listen on (default ``127.0.0.1``: this machine only).
        Any other needs ``token``.
    port : int
        The TCP port (0: any free one).
    token : str, optional
        The secret every request must carry as ``Authorization: Bearer <token>``.
    log_level : str
        uvicorn's log level (default ``"warning"``; the access log is off).
    ready : callable, optional
        Called with the URL once the server listens.
    switch_interval : float, optional
        Python's thread switch interval in seconds (``sys.setswitchinterval``)
        while the server runs; default 0.5 ms (Python's is 5 ms). A refit's
        tracing and compiling holds Python's lock for long stretches, and a
        request thread waits up to one interval each time it takes the lock
        back (after every disk write and socket call); ``None`` leaves it.
    durability : {"process", "power"}
        ``"process"`` (default): a reply is sent once its change is committed (it
        survives the server's end, ``kill -9`` included) and the sessions are synced
        to the disk about once a second, so a power cut may undo the last second;
        ``"power"``: once it is synced to the disk (one flush per request).
    """
    import asyncio

    import uvicorn

    check_bind(host, token)
    if switch_interval is not None:
        import sys

        sys.setswitchinterval(switch_interval)
    app = create_app(root, token=token, durability=durability)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)

    async def main():
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                return await task
            await asyncio.sleep(0.02)
        if ready is not None:
            sock = server.servers[0].sockets[0].getsockname()
            h = f"[{host}]" if ":" in host else host
            ready(f"http://{h}:{sock[1]}")
        await task

    # uvicorn's own loop choice (uvloop where installed, else asyncio's), which
    # ``asyncio.run`` would bypass
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(main())

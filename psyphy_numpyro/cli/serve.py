"""``psyphy-numpyro serve``: the session server (HTTP/JSON) for experiment programs.

FastAPI and uvicorn are imported only when the command runs, so the rest of
the command line starts without them.
"""

from __future__ import annotations

import os
import sys

from ._common import PROG, CLIError, wrap

__all__ = ["add_parser", "run"]

_EPILOG = """\
examples:
  psyphy-numpyro serve --port 8765 --root sessions/
  psyphy-numpyro serve --host 0.0.0.0 --port 8765 --token "$(openssl rand -hex 16)"

Then, from PsychoPy, MATLAB or any HTTP client:
  POST /sessions {"name": "obs1.sqlite", "seed": 0}   create or open a session
  POST /sessions/obs1.sqlite/ask {"n": 1}             the next trials
  POST /sessions/obs1.sqlite/tell {"ids": [1], "responses": [1]}
  GET  /sessions/obs1.sqlite/status                   counts and the refit state
  GET  /sessions/obs1.sqlite/live                     a live page (browser)
  GET  /docs                                          every endpoint (OpenAPI)
Python: from psyphy_numpyro.client import Client (standard library only).
See docs/server.md.
"""


def add_parser(sub, raw) -> None:
    """Add ``serve`` to the top-level subcommands ``sub``."""
    p = sub.add_parser(
        "serve", help="serve session files over HTTP/JSON (ask/tell per trial, live page)",
        description=wrap("Run the session server: many session files under --root, driven "
                         "per trial over HTTP/JSON (ask, tell, status, thresholds, a live "
                         "page). Refits run in the background; Ctrl-C closes the sessions."),
        epilog=_EPILOG, formatter_class=raw)
    p.add_argument("--port", type=int, default=8765,
                   help="TCP port (default: 8765; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default: 127.0.0.1, this machine only; any "
                   "other needs --token)")
    p.add_argument("--token", default=None,
                   help="secret every request must send as 'Authorization: Bearer TOKEN' "
                   "(default: $PSYPHY_NUMPYRO_TOKEN if set)")
    p.add_argument("--root", default=".",
                   help="folder of the session files; names are paths relative to it "
                   "(default: the current folder)")
    p.add_argument("--log-level", default="warning",
                   choices=("critical", "error", "warning", "info", "debug"),
                   help="server log level (default: warning)")
    p.add_argument("--durability", default="process", choices=("process", "power"),
                   help="process (default): a reply is sent once its change is committed: "
                   "it survives the server's end (kill -9 included); the sessions are synced "
                   "to the disk about once a second, so a power cut may undo the last second. "
                   "power: once it is synced to the disk (one disk flush per request, slower)")


def run(args) -> int:
    """Run ``serve`` until interrupted; exit status 0 (2: bad options)."""
    token = args.token or os.environ.get("PSYPHY_NUMPYRO_TOKEN") or None
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be in 0..65535, got {args.port}")
    if not os.path.isdir(args.root):
        raise CLIError(f"--root {args.root}: no such folder")
    from ..server import check_bind, serve

    try:
        check_bind(args.host, token)
    except ValueError as exc:
        raise CLIError(str(exc)) from None

    def ready(url):
        auth = " (token required)" if token else ""
        print(f"{PROG}: serving {os.path.abspath(args.root)} at {url}{auth}", flush=True)
        print(f"{PROG}: API {url}/docs; Ctrl-C stops the server", flush=True)

    try:
        serve(args.root, host=args.host, port=args.port, token=token,
              log_level=args.log_level, ready=ready, durability=args.durability)
    except KeyboardInterrupt:  # pragma: no cover - uvicorn handles SIGINT itself
        pass
    print(f"{PROG}: stopped; sessions closed", file=sys.stderr, flush=True)
    return 0

"""The HTTP routes of the session server (FastAPI).

Every reply is one JSON object: ``"ok": true`` and the result (the same
schema as the command line's ``experiment ask/tell/status``, built by
:mod:`psyphy_numpyro.protocol`), or ``"ok": false``, ``"error"`` (the
message) and ``"status"`` (the HTTP status). See ``docs/server.md``.
"""

from __future__ import annotations

import json
import secrets
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from .. import errors
from .._version import __version__
from .live import LIVE_PAGE
from .sessions import Registry, UnknownSession

__all__ = ["create_app"]


class OpenRequest(BaseModel):
    """Create or open a session (settings left out: the stored ones, or the defaults)."""

    name: str = Field(description="the session file, a path relative to the server's root",
                      examples=["obs1.sqlite"])
    input_dim: int | None = Field(None, description="stimulus dimension, 1 to 3 (default 2)")
    seed: int | None = Field(None, description="seeds the design, fits and proposals")
    num_initial: int | None = Field(None, description="space-filling trials before the "
                                    "first refit (default 150 * input_dim)")
    refit_every: int | None = Field(None, description="responses between refits (default 200)")
    distances: tuple[float, float] | None = Field(None, description="distance range of the "
                                                  "space-filling trials")
    fit_options: dict | None = Field(None, description="map_steps, warm_steps, num_draws, "
                                     "criterion")
    model: dict | None = Field(None, description="WPPM settings (basis_degree, num_samples, "
                               "estimator, ...); left out: chosen from the data")
    space: dict | None = Field(None, description="the lab's stimulus units, as "
                               "StimulusSpace.to_dict() gives them (or a hand-written box, "
                               "colour or affine description): ask, status, the thresholds "
                               "and the live page then speak them; left out: the stored "
                               "space, or the model's box [-1, 1]^d",
                               examples=[{"kind": "box", "lo": [0.24, 0.26],
                                          "hi": [0.38, 0.40],
                                          "axis_labels": ["CIE x", "CIE y"]}])
    prior: str | None = Field(None, description="warm-start a new observer from a "
                              "population: a file under the server's root (a relative path, "
                              "like name) holding a population fit (PopulationFit.save, "
                              "NetCDF) or a weight prior (WeightPrior.save, JSON); the model "
                              "is then the population's (model settings change it) and the "
                              "first refit comes after 20 * input_dim trials; an existing "
                              "session must have been created with the same prior",
                              examples=["population.nc"])
    region: dict | list[list[float]] | None = Field(
        None, description="where the user looks, in the session's units (the space's, "
        "else the model's box): {\"box\": [lo, hi]} (every reference inside it) or "
        "{\"points\": [[...], ...]} (or a bare list of points: every reference one of "
        "them); criterion global integrates over it; left out: the stored region, or "
        "the whole domain", examples=[{"box": [[-0.5, 0.0], [0.0, 0.5]]}])
    validation: dict | float | None = Field(
        None, description="held-out MOCS validation trials interleaved with the adaptive "
        "ones (labelled validation, never fitted): {\"fraction\": F, \"references\": R "
        "(a count or [[...], ...] in the session's units), \"levels\": L (a count or "
        "distances in model units), \"repeats\": k} or a bare fraction; left out: the "
        "stored one, or none", examples=[{"fraction": 0.2, "references": 8, "levels": 6,
                                          "repeats": 10}])
    stop: dict | None = Field(
        None, description="stop rules, any of: trials (trials told), seconds (wall clock "
        "since the first ask), precision (the median width of the latest fit's 90% "
        "threshold intervals over the region, in % of the threshold); status reports "
        "progress.stop once one is met (ask still hands out trials); left out: the stored "
        "rules, or none", examples=[{"trials": 3000, "precision": 10.0}])
    takeover: bool = Field(False, description="take the session over from another live owner")


class AskRequest(BaseModel):
    n: int = Field(1, ge=1, le=10_000, description="number of trials")
    request_id: str | None = Field(None, max_length=200, description="a retried ask with the "
                                   "same id gets the same trials")


class TellRequest(BaseModel):
    ids: list[int] = Field(description="trial ids from ask")
    responses: list[int | bool] = Field(description="1 (or true) correct, 0 (or false) wrong")


class _Reply(Response):
    """A JSON reply written by ``json.dumps`` (the replies are plain JSON already)."""

    media_type = "application/json"

    def render(self, content) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message, "status": status, **extra},
                        status_code=status)


def _message(exc) -> str:
    text = str(exc)
    if isinstance(exc, KeyError | LookupError) and text.startswith(("'", '"')):
        text = text[1:-1]
    return text


def create_app(root, *, token: str | None = None, monitor_every: float = 0.25,
               durability: str = "process") -> FastAPI:
    """The server's FastAPI application, hosting the sessions under ``root``.

    Parameters
    ----------
    root : str or os.PathLike
        The folder the session files live in (session names are paths relative to it).
    token : str, optional
        When given, every request must carry ``Authorization: Bearer <token>``
        (the live page: ``?token=<token>``).
    monitor_every : float
        Seconds between the monitor's looks at the sessions (refit state, thresholds).
    durability : {"process", "power"}
        ``"process"`` (default): every ``ask`` and ``tell`` is committed before its
        reply (it survives the server's end, ``kill -9`` included) and the sessions
        are synced to the disk about once a second; ``"power"``: each is synced to
        the disk before its reply (one disk flush per request). See ``docs/server.md``.

    Returns
    -------
    fastapi.FastAPI
        ``app.state.registry`` holds the open sessions; they are closed when
        the application shuts down.
    """
    registry = Registry(root, monitor_every=monitor_every, durability=durability)

    @asynccontextmanager
    async def lifespan(app):
        yield
        registry.close_all()

    app = FastAPI(title="psyphy_numpyro session server", version=__version__,
                  lifespan=lifespan,
                  description="Adaptive psychophysics sessions (WPPM) over HTTP/JSON: "
                  "create or open a session file, ask for trials, tell responses, read the "
                  "status, the latest fit's thresholds and a live page.")
    app.state.registry = registry

    deps = [Depends(_token_check(token))] if token is not None else []  # no work without one
    _handle_errors(app)
    _add_routes(app, registry, deps)
    return app


def _token_check(token: str):
    """The dependency that checks a request's token (header, or ``?token=``)."""

    async def auth(request: Request,
                   token_q: Annotated[str | None, Query(alias="token",
                                                        include_in_schema=False)] = None):
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else token_q
        if given is None or not secrets.compare_digest(given.encode(), token.encode()):
            raise PermissionError("a valid token is needed (Authorization: Bearer <token>)")

    return auth


def _handle_errors(app: FastAPI) -> None:
    """Every error answers ``{"ok": false, "error", "status"}`` with its HTTP status."""

    @app.exception_handler(PermissionError)
    async def _denied(request, exc):
        return _error(401, str(exc))

    @app.exception_handler(UnknownSession)
    async def _unknown(request, exc):
        return _error(404, _message(exc))

    @app.exception_handler(errors.SessionBusy)
    async def _busy(request, exc):
        return _error(409, str(exc), owner=exc.owner)

    @app.exception_handler(ValueError)
    async def _bad(request, exc):
        return _error(400, str(exc))

    @app.exception_handler(TypeError)
    async def _bad_type(request, exc):
        return _error(422, str(exc))

    @app.exception_handler(Exception)
    async def _bug(request, exc):  # logged by uvicorn with its traceback too
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc):
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return _error(422, "; ".join(parts), detail=jsonable(exc.errors()))


def _add_routes(app: FastAPI, registry: Registry, deps: list) -> None:
    """The session routes."""

    # -- routes: each runs its session work in one hop to the thread pool (the file's
    # fsync must not hold up the event loop) and answers with json.dumps directly
    async def run(fn, *args):
        reply = await run_in_threadpool(fn, *args)
        return _Reply({"ok": True, **reply})

    @app.get("/", dependencies=deps, summary="the server and its open sessions")
    async def index():
        return {"ok": True, "server": "psyphy_numpyro", "version": __version__,
                "root": str(registry.root), "sessions": sorted(registry.sessions)}

    @app.get("/sessions", dependencies=deps, summary="the open sessions")
    async def list_sessions():
        return {"ok": True, "sessions": sorted(registry.sessions)}

    @app.post("/sessions", dependencies=deps, summary="create or open a session")
    async def open_session(body: OpenRequest):
        settings = body.model_dump(exclude={"name", "takeover"})

        def work():
            hosted, created = registry.open(body.name, takeover=body.takeover, **settings)
            return {"created": created, **hosted.status()}

        return await run(work)

    @app.post("/sessions/{name:path}/ask", dependencies=deps,
              summary="the next trials: ids and stimuli (n, 2, d)")
    async def ask(name: str, body: AskRequest):
        return await run(registry.get(name).ask, body.n, body.request_id)

    @app.post("/sessions/{name:path}/tell", dependencies=deps,
              summary="record responses (idempotent: a repeated tell records nothing twice)")
    async def tell(name: str, body: TellRequest):
        if len(body.ids) != len(body.responses):
            raise errors.InvalidInput(f"{len(body.ids)} ids but {len(body.responses)} "
                                      "responses")
        return await run(registry.get(name).tell, body.ids, [int(r) for r in body.responses])

    @app.get("/sessions/{name:path}/status", dependencies=deps,
             summary="counts, fits and the refit state")
    async def status(name: str):
        return await run(registry.get(name).status)

    @app.get("/sessions/{name:path}/thresholds", dependencies=deps,
             summary="the latest fit's thresholds (computed in the background, once per fit)")
    async def thresholds(name: str):
        hosted = registry.get(name)
        return _Reply({"ok": True, "state": hosted.thresholds_state,
                       "thresholds": hosted.thresholds})

    @app.get("/sessions/{name:path}/live.json", dependencies=deps,
             summary="what the live page draws (trials told from number `since` on)")
    async def live_json(name: str, since: Annotated[int, Query(ge=0)] = 0):
        return await run(registry.get(name).live, since)

    @app.get("/sessions/{name:path}/live", dependencies=deps, response_class=HTMLResponse,
             summary="a live page of the session (refreshes itself)")
    async def live(name: str):
        registry.get(name)
        return HTMLResponse(LIVE_PAGE)

    @app.delete("/sessions/{name:path}", dependencies=deps,
                summary="close a session (waits for a running refit)")
    async def close(name: str):
        await run_in_threadpool(registry.close, name)
        return {"ok": True, "closed": name}


def jsonable(x):
    from fastapi.encoders import jsonable_encoder

    try:
        return jsonable_encoder(x)
    except Exception:  # noqa: BLE001
        return str(x)

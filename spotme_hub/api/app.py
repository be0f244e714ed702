"""FastAPI application factory: the feed, device health, operations and the admin dashboard,
plus the routes each part brings (`HasRoutes`: the ingest API, the ADMS endpoints, forwarding),
mounted generically. Each part lives in its own module; this file only wires them."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import HubConfig
from ..contract import HasRoutes, RouteContext
from ..store import Store
from .auth import ADMIN, FEED_READ, PUNCHES_WRITE, TokenAuth
from .dashboard import dashboard_router
from .devices import admin_router, devices_router
from .disk import DiskFloor
from .docs import docs_router
from .feed import CommitSignal, feed_router
from .metrics import RequestMetrics, new_registry, ops_router

if TYPE_CHECKING:
    from ..pipeline.runtime import Hub


def create_app(
    cfg: HubConfig,
    store: Store,
    hub: Hub | None = None,
    parts: Sequence[type[HasRoutes]] = (),
) -> FastAPI:
    """The hub's own routes plus those of `parts` (kinds and features with `HasRoutes`; the
    composition root passes them)."""
    app = FastAPI(
        title="spotme-hub",
        version="1",
        description="Device and system integration hub for SPOT-Me attendance. "
        "Bearer tokens from `api.tokens`; scopes feed:read, punches:write, facts:write, admin.",
        docs_url=None,  # served by `docs_router`, with its assets from the hub (no CDN)
        redoc_url=None,
    )
    app.add_exception_handler(StarletteHTTPException, _one_error_shape)
    auth = TokenAuth(cfg)
    read, write, admin = auth.require(FEED_READ), auth.require(PUNCHES_WRITE), auth.require(ADMIN)
    registry, latency = new_registry(cfg, store, hub)
    app.add_middleware(RequestMetrics, histogram=latency, max_body=cfg.api.max_body_bytes)
    app.add_middleware(DiskFloor, cfg=cfg)
    app.include_router(ops_router(store, registry, read, hub))
    app.state.streams = CommitSignal()  # wakes event streams on commits; closed by `serve`
    app.include_router(feed_router(store, hub, cfg.api.max_page, read, app.state.streams))
    app.include_router(devices_router(cfg, store, hub, read))
    app.include_router(admin_router(cfg, store, admin))
    contexts = hub.contexts if hub is not None else {}
    ctx = RouteContext(cfg, store, contexts.get, read, write, admin, auth.require)
    for part in parts:
        app.include_router(part.routes(ctx))
    app.include_router(dashboard_router(cfg, store, hub, admin))
    app.include_router(docs_router(app.title, app.openapi_url or "/openapi.json"))
    _document_refusals(app)
    return app


def _document_refusals(app: FastAPI) -> None:
    """Publish the answers every route may give besides its own: 401/403 where a token is
    needed (the operations with a security requirement), 404 where the path names something
    (a device, a fact, an item) that may not exist — so the schema says what the API does (a
    schemathesis run with every check holds it to that)."""

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            published = FastAPI.openapi(app)
            for path, operations in published.get("paths", {}).items():
                for op in operations.values():
                    answers = op.setdefault("responses", {})
                    if op.get("security"):
                        answers.setdefault("401", {"description": "No token, or not a known one"})
                        answers.setdefault("403", {"description": "The token lacks the scope"})
                    if "{" in path:
                        answers.setdefault("404", {"description": "No such thing (the path's id)"})
            app.openapi_schema = published
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]


async def _one_error_shape(request: Request, exc: Exception) -> Response:
    """Every 422 in the published shape (`HTTPValidationError`: a list of {loc, msg, type}),
    whichever route refused the request and however it said so; other errors as FastAPI
    answers them."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 422 and not isinstance(exc.detail, list):
        detail = [{"loc": [], "msg": str(exc.detail), "type": "value_error"}]
        return JSONResponse({"detail": detail}, 422, headers=exc.headers)
    return await http_exception_handler(request, exc)


class ListenError(Exception):
    """The API's address cannot be listened on (in use, not this host's, not allowed)."""


def listen_socket(listen: str) -> socket.socket:
    """A socket bound to `listen` (HOST:PORT), before anything says the API is there: a busy
    port is one clear ListenError, not uvicorn's traceback after the hub announced itself."""
    host, _, port = listen.rpartition(":")
    try:
        infos = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _name, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ListenError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        why = "the port is in use (another hub or program)" if exc.errno == errno.EADDRINUSE else (
            exc.strerror or str(exc))  # fmt: skip
        raise ListenError(f"cannot listen on {listen}: {why}; free it or choose another port "
                          "(api.listen, or --port for the demo)") from None  # fmt: skip
    return sock


async def serve(
    app: FastAPI, listen: str, stop: asyncio.Event, sock: socket.socket | None = None
) -> None:
    """Run uvicorn inside the current event loop until `stop` is set (on `sock` when given:
    `listen_socket`'s)."""
    import uvicorn

    host, _, port = listen.rpartition(":")
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=int(port),
            log_level="warning",
            lifespan="off",
            ws="none",  # the API streams with server-sent events; no websocket stack to load
            timeout_graceful_shutdown=3,  # open event streams must not hold the hub's shutdown
        )  # fmt: skip
    )
    # The hub owns SIGINT/SIGTERM (it stops devices and flushes writes first); uvicorn must not.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None))
    await stop.wait()
    app.state.streams.close()
    server.should_exit = True
    await task

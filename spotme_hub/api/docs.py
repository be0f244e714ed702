"""`/docs` (Swagger UI) and `/redoc` with their scripts and styles served by the hub itself, from
the `fastapi-offline` package that ships them: FastAPI's own pages load them from a CDN, so on
an office network without internet they were blank."""

from __future__ import annotations

import functools
from importlib.resources import files

from fastapi import APIRouter, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

ASSETS = "/docs-assets"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@functools.cache
def _assets() -> dict[str, tuple[str, bytes]]:
    """The package's files (about 2.5 MB), read at the first request for one, not at start."""
    static = files("fastapi_offline") / "static"
    out = {}
    for p in static.iterdir():
        media = _TYPES.get(p.name[p.name.rfind(".") :])
        if media:
            out[p.name] = (media, p.read_bytes())
    return out


def docs_router(title: str, openapi_url: str) -> APIRouter:
    """The two pages and their assets (open, like the schema they show)."""
    r = APIRouter(include_in_schema=False)

    @r.get("/docs", response_class=HTMLResponse)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{title} — API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )  # fmt: skip

    @r.get("/redoc", response_class=HTMLResponse)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url, title=f"{title} — API",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png", with_google_fonts=False,
        )  # fmt: skip

    @r.get(ASSETS + "/{name}")
    async def asset(name: str) -> Response:
        found = _assets().get(name)
        if found is None:
            return Response("not found", 404)
        media, body = found
        return Response(body, media_type=media, headers={"Cache-Control": "max-age=86400"})

    return r

"""Below `hub.disk_floor_mb` of free space under the data directory, every write request is
refused with 503 and Retry-After (push clients retry) rather than filling the disk until SQLite
or PostgreSQL fail; reads go on (`pipeline.disk` measures)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import HubConfig
from ..pipeline.disk import free_bytes

WRITES = ("POST", "PUT", "PATCH", "DELETE")


class DiskFloor:
    """ASGI middleware: while the free space is under `hub.disk_floor_mb`, write requests get
    503 with Retry-After (reads go on)."""

    def __init__(self, app: ASGIApp, cfg: HubConfig):
        self.app, self.cfg = app, cfg

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        full = (
            scope["type"] == "http"
            and scope.get("method") in WRITES
            and (free_bytes(self.cfg) < self.cfg.hub.disk_floor_mb * 1e6)
        )
        if not full:
            await self.app(scope, receive, send)
            return
        body = (b'{"detail":[{"loc":[],"msg":"the hub is out of disk space (under '
                b'hub.disk_floor_mb free): try again later","type":"disk_full"}]}')  # fmt: skip
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/json"), (b"retry-after", b"60")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

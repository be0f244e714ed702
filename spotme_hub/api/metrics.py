"""Operations: `/healthz` (process alive), `/readyz` (store reachable), `/metrics` (Prometheus
text), the request-latency histogram and the request body size limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import HubConfig
from ..pipeline.disk import disk_status
from ..store import Store
from .devices import forwarding_status
from .models import Status

STATES = ("UNKNOWN", "STARTING", "UP", "DEGRADED", "DOWN", "DISABLED")


class HubCollector:
    """Reads the hub and the store at scrape time (no second set of counters to keep in sync)."""

    def __init__(self, cfg: HubConfig, store: Store, hub: Any):
        self.cfg, self.store, self.hub = cfg, store, hub

    def collect(self) -> Iterator[Any]:
        punches = CounterMetricFamily(
            "spotme_punches", "New records committed since start, by device and source kind.",
            labels=["device", "source"],
        )  # fmt: skip
        if self.hub is not None:
            for (device, kind), n in sorted(self.hub.metrics.items()):
                punches.add_metric([device, kind], n)
        yield punches
        quarantine = GaugeMetricFamily(
            "spotme_quarantine_open", "Open quarantine items by device.", labels=["device"]
        )
        for device, n in sorted(self.store.quarantine_counts_by_device().items()):
            quarantine.add_metric([device], n)
        yield quarantine
        state = GaugeMetricFamily(
            "spotme_device_state", "1 for the device's current state.", labels=["device", "state"]
        )
        up = GaugeMetricFamily("spotme_device_up", "1 when the device is UP.", labels=["device"])
        for row in self.store.health() if self.hub is None else self._live_health():
            for s in STATES:
                state.add_metric([row["device_id"], s], 1.0 if row["state"] == s else 0.0)
            up.add_metric([row["device_id"]], 1.0 if row["state"] == "UP" else 0.0)
        yield state
        yield up
        disk = disk_status(self.cfg, self.store)
        yield GaugeMetricFamily(
            "spotme_store_bytes", "The store's size on disk.", disk["store_bytes"]
        )
        yield GaugeMetricFamily("spotme_data_free_bytes", "Free space under the data directory.",
                                disk["free_bytes"])  # fmt: skip
        if disk["oldest_age_s"] is not None:
            yield GaugeMetricFamily("spotme_oldest_record_age_seconds",
                                    "Age of the oldest record kept.", disk["oldest_age_s"])  # fmt: skip
        yield GaugeMetricFamily("spotme_disk_alert", "1 below hub.disk_alert_mb free.",
                                float(disk["alert"]))  # fmt: skip
        fwd = forwarding_status(self.cfg, self.store)
        if fwd is not None:
            for key in ("backlog", "dead_letters"):
                if isinstance(fwd.get(key), int | float):
                    yield GaugeMetricFamily(f"spotme_forward_{key}", f"Forwarding {key}.", fwd[key])

    def _live_health(self) -> list[dict[str, Any]]:
        return [{"device_id": h.device_id, "state": h.state} for h in self.hub.health.values()]


class RequestMetrics:
    """ASGI middleware: latency histogram by route template, and the body size limit (413)."""

    def __init__(self, app: ASGIApp, histogram: Histogram, max_body: int):
        self.app = app
        self.histogram = histogram
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}
        declared = _content_length(scope)
        if scope.get("path", "").startswith("/iclock/"):
            declared = 0  # the ADMS routes enforce the limit themselves, in the terminals' words
        elif declared is not None and declared > self.max_body:
            await _too_large(send, self.max_body)
            self._observe(scope, 413, started)
            return
        if declared is None and _chunked(scope):
            # No length given: read the body here (up to the limit) and hand it on.
            body, total, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                total += len(message.get("body", b""))
                if total > self.max_body:
                    await _too_large(send, self.max_body)
                    self._observe(scope, 413, started)
                    return
                body.append(message.get("body", b""))
                more = message.get("more_body", False)
            buffered = [{"type": "http.request", "body": b"".join(body), "more_body": False}]

            async def replay() -> Message:
                return buffered.pop() if buffered else await receive()

            receive = replay

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._observe(scope, status["code"], started)

    def _observe(self, scope: Scope, code: int, started: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "other"
        self.histogram.labels(scope.get("method", ""), path, str(code)).observe(
            time.perf_counter() - started
        )


def _chunked(scope: Scope) -> bool:
    return any(
        name == b"transfer-encoding" and b"chunked" in value.lower()
        for name, value in scope.get("headers", ())
    )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int) -> None:
    body = b'{"detail":"request body larger than %d bytes"}' % limit
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }  # fmt: skip
    )
    await send({"type": "http.response.body", "body": body})


def new_registry(cfg: HubConfig, store: Store, hub: Any) -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(HubCollector(cfg, store, hub))
    latency = Histogram(
        "spotme_http_request_duration_seconds", "API request latency.",
        ["method", "route", "status"], registry=registry,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )  # fmt: skip
    return registry, latency


def ops_router(store: Store, registry: CollectorRegistry, read: Any, hub: Any = None) -> APIRouter:
    r = APIRouter(tags=["operations"])

    @r.get("/healthz", response_model=Status, summary="The process is alive (open)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @r.get(
        "/readyz",
        response_model=Status,
        summary="The store answers and no device is still starting (open)",
        responses={503: {"description": "Store not reachable, or devices still starting"}},
    )
    async def readyz() -> dict[str, str]:
        try:
            await asyncio.to_thread(store.ping)
        except Exception as exc:
            raise HTTPException(503, f"store not reachable: {exc}") from exc
        starting = hub.starting() if hub is not None else {}
        if starting:
            what = ", ".join(f"{d} ({phase})" for d, phase in sorted(starting.items()))
            raise HTTPException(503, f"devices still starting: {what}")
        return {"status": "ready"}

    @r.get(
        "/metrics",
        summary="Prometheus metrics",
        dependencies=[Depends(read)],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics() -> Response:
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return r

"""Adapters by kind: the built-in ones plus any installed under the entry-point group
``spotme_hub.adapters`` (``mykind = "mypkg.module:MyAdapter"``)."""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)

#: kind → "module:Class" for the adapters shipped with the hub (imported on first use).
BUILTIN: dict[str, str] = {
    "simulated": "spotme_hub.adapters.simulated:SimulatedAdapter",
    "zkteco_adms": "spotme_hub.adapters.zkteco_adms:ZktecoAdmsAdapter",
    "mqtt": "spotme_hub.adapters.mqtt:MqttAdapter",
    "zkteco": "spotme_hub.adapters.zkteco:ZKTecoAdapter",
    "serial": "spotme_hub.adapters.serial:SerialAdapter",
    "csv": "spotme_hub.adapters.csv:CsvAdapter",
    "http": "spotme_hub.adapters.http_ingest:HttpIngestAdapter",
}

_loaded: dict[str, type[Any]] = {}
_scanned = False


def register(cls: type[Any]) -> type[Any]:
    """Register an adapter class (also usable as a decorator)."""
    _loaded[cls.kind] = cls
    return cls


def _import(target: str) -> type[Any]:
    module, _, attr = target.partition(":")
    cls: type[Any] = getattr(importlib.import_module(module), attr)
    return cls


def _scan() -> None:
    global _scanned
    if _scanned:
        return
    _scanned = True
    for ep in entry_points(group="spotme_hub.adapters"):
        if ep.name in BUILTIN or ep.name in _loaded:
            continue
        try:
            _loaded[ep.name] = ep.load()
        except Exception as exc:  # a broken plug-in must not take the hub down
            log.error("adapter plug-in %s (%s) failed to load: %s", ep.name, ep.value, exc)


def kinds() -> list[str]:
    _scan()
    return sorted(set(BUILTIN) | set(_loaded))


def get(kind: str) -> type[Any]:
    if kind in _loaded:
        return _loaded[kind]
    if kind in BUILTIN:
        _loaded[kind] = _import(BUILTIN[kind])
        return _loaded[kind]
    _scan()
    return _loaded[kind]


def load_builtin() -> None:
    """Import every built-in adapter (their modules may declare tables)."""
    for kind in BUILTIN:
        get(kind)

"""Device kinds: the built-in adapters plus any installed under the entry-point group
``spotme_hub.adapters`` (``mykind = "mypkg.module:MyAdapter"``).

Every class is checked against the contract (`contract.check_adapter`) when it is registered or
first loaded: a class that names an ability without its method is refused with that method's
name. Built-in kinds are imported on first use, so a command pays only for the kinds it needs.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .contract import Adapter

log = logging.getLogger(__name__)

#: kind → "module:Class" for the adapters shipped with the hub (imported on first use).
BUILTIN: dict[str, str] = {
    "simulated": "spotme_hub.adapters.simulated.adapter:SimulatedAdapter",
    "zkteco_adms": "spotme_hub.adapters.zkteco_adms.adapter:ZktecoAdmsAdapter",
    "mqtt": "spotme_hub.adapters.mqtt.adapter:MqttAdapter",
    "zkteco": "spotme_hub.adapters.zkteco.adapter:ZKTecoAdapter",
    "serial": "spotme_hub.adapters.serial.adapter:SerialAdapter",
    "csv": "spotme_hub.adapters.csv.adapter:CsvAdapter",
    "http": "spotme_hub.adapters.http.adapter:HttpIngestAdapter",
}

_loaded: dict[str, type[Adapter]] = {}
_broken: dict[str, str] = {}
_scanned = False


def register(cls: type[Adapter]) -> type[Adapter]:
    """Register an adapter class (also usable as a decorator); ContractError if it does not
    keep the contract."""
    from .contract import check_adapter

    check_adapter(cls)
    _loaded[cls.kind] = cls
    return cls


def _import(target: str) -> type[Adapter]:
    module, _, attr = target.partition(":")
    cls: type[Adapter] = getattr(importlib.import_module(module), attr)
    return cls


def _scan() -> None:
    global _scanned
    if _scanned:
        return
    _scanned = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="spotme_hub.adapters"):
        if ep.name in BUILTIN or ep.name in _loaded:
            continue
        from .contract import ContractError, check_adapter

        try:
            cls = ep.load()
            check_adapter(cls)
            if cls.kind != ep.name:
                raise ContractError(f"entry point {ep.name!r} names a class of kind {cls.kind!r}")
            _loaded[ep.name] = cls
        except Exception as exc:  # a broken plug-in must not take the hub down
            _broken[ep.name] = f"{type(exc).__name__}: {exc}"
            log.error("adapter plug-in %s (%s) failed to load: %s", ep.name, ep.value, exc)


def kinds() -> list[str]:
    _scan()
    return sorted(set(BUILTIN) | set(_loaded))


def get(kind: str) -> type[Adapter]:
    """The adapter class of a kind; KeyError (naming a broken plug-in's error) if none."""
    if kind in _loaded:
        return _loaded[kind]
    if kind in BUILTIN:
        from .contract import check_adapter

        cls = _import(BUILTIN[kind])
        check_adapter(cls)
        _loaded[kind] = cls
        return cls
    _scan()
    if kind in _broken:
        raise KeyError(f"{kind} (its plug-in failed to load: {_broken[kind]})")
    return _loaded[kind]


def options_model(kind: str) -> type[BaseModel]:
    """The options model of a kind (what `config` validates a device's own keys with)."""
    return get(kind).options_model


def plugins() -> list[type[Adapter]]:
    """The installed plug-ins' classes (no built-in kind is imported)."""
    _scan()
    return [cls for kind, cls in sorted(_loaded.items()) if kind not in BUILTIN]


def all_adapters() -> list[type[Adapter]]:
    """Every kind's class, built-in and installed (for mounting tables, routes, commands)."""
    return [get(kind) for kind in kinds() if kind not in _broken]

"""The facts the days use, from three places: the configuration's `facts`, `facts_file` (re-read
when it changes) and those the core pushes over the API (`POST /api/v1/facts`, kept in the
`attendance_facts` table).

Ids are unique across all three. A fact that comes, changes or goes marks the days it covers
(before and after) to be worked out again, in the same transaction that stores it: the ledger
picks them up from `attendance_dirty`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import orjson
from sqlalchemy import Connection, delete, select

from ..clock import now_z_ms
from ..config import HubConfig, load_facts_file
from ..schedule import Fact
from ..store import Store
from .tables import DIRTY, FACTS

log = logging.getLogger("spotme_hub.attendance")

Source = Literal["config", "file", "api"]
#: the last date of an open-ended fact, as a dirty range stores it
OPEN_END = "9999-12-31"


@dataclass(frozen=True, slots=True)
class KnownFact:
    fact: Fact
    source: Source

    def to_dict(self) -> dict[str, object]:
        return {**fact_doc(self.fact), "source": self.source}


class FactRefused(Exception):
    """A fact the API cannot take: `status` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def fact_doc(fact: Fact) -> dict[str, object]:
    """A fact as written in a file or posted (`from`, not `from_`; unset keys left out)."""
    return fact.model_dump(mode="json", by_alias=True, exclude_none=True)


def span(fact: Fact) -> tuple[str, str]:
    """The dates a fact covers, as a dirty range."""
    last = fact.last
    return fact.first.isoformat(), last.isoformat() if last is not None else OPEN_END


def mark_dirty(
    conn: Connection, facts: Iterable[Fact], reason: str, now: str | None = None
) -> None:
    """Queue the days these facts cover to be worked out again (in the caller's transaction)."""
    stamp = now or now_z_ms()
    rows = [
        {"employee_id": f.employee, "first": a, "last": b, "reason": reason, "created_at": stamp}
        for f in facts
        for a, b in [span(f)]
    ]
    if rows:
        conn.execute(DIRTY.insert(), rows)


class FactBook:
    """Every fact the days use, and the API's writes."""

    def __init__(self, cfg: HubConfig, store: Store):
        self.cfg = cfg
        self.store = store
        self.file_facts: list[Fact] = list(cfg.file_facts)
        self._file_stamp = self._stamp()

    # -- reading -----------------------------------------------------------------------------
    def api_facts(self) -> list[Fact]:
        with self.store.engine.connect() as conn:
            docs = conn.execute(select(FACTS.c.doc).order_by(FACTS.c.id)).scalars().all()
        return [Fact.model_validate(orjson.loads(doc)) for doc in docs]

    def known(self) -> list[KnownFact]:
        return [
            *(KnownFact(f, "config") for f in self.cfg.facts),
            *(KnownFact(f, "file") for f in self.file_facts),
            *(KnownFact(f, "api") for f in self.api_facts()),
        ]

    def facts(self) -> list[Fact]:
        return [k.fact for k in self.known()]

    # -- the facts file ----------------------------------------------------------------------
    def _stamp(self) -> tuple[int, int] | None:
        if not self.cfg.facts_file:
            return None
        try:
            st = self.cfg.resolve_path(self.cfg.facts_file).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def reload_file(self) -> list[Fact]:
        """Read `facts_file` again if it changed; returns the facts that came, changed or went
        (both versions of a changed one). A file with problems is logged and not used: the
        facts read before stay."""
        stamp = self._stamp()
        if stamp == self._file_stamp:
            return []
        self._file_stamp = stamp
        facts, issues = load_facts_file(self.cfg)
        if issues:
            for issue in issues:
                log.error("facts file not reloaded: %s", issue)
            return []
        before = {f.id: f for f in self.file_facts}
        after = {f.id: f for f in facts}
        changed = [f for fid, f in before.items() if after.get(fid) != f]
        changed += [f for fid, f in after.items() if before.get(fid) != f]
        self.file_facts = facts
        if changed:
            log.info("facts file re-read: %d fact(s) changed", len(changed))
        return changed

    # -- the API's writes --------------------------------------------------------------------
    def put(self, fact: Fact) -> bool:
        """Store a pushed fact (a new one, or a new version of one pushed before); returns
        whether it replaced one. The days it covers, before and after, are queued."""
        if fact.employee not in {e.id for e in self.cfg.employees}:
            raise FactRefused(422, f"unknown employee {fact.employee!r}")
        if any(f.id == fact.id for f in [*self.cfg.facts, *self.file_facts]):
            raise FactRefused(
                409, f"fact {fact.id!r} is defined in the configuration: edit it there"
            )
        stamp = now_z_ms()
        with self.store.write() as conn:
            old = conn.execute(select(FACTS.c.doc).where(FACTS.c.id == fact.id)).scalar()
            previous = Fact.model_validate(orjson.loads(old)) if old is not None else None
            doc = orjson.dumps(fact_doc(fact)).decode()
            if previous is None:
                conn.execute(
                    FACTS.insert().values(
                        id=fact.id,
                        employee_id=fact.employee,
                        doc=doc,
                        created_at=stamp,
                        updated_at=stamp,
                    )  # fmt: skip
                )
            else:
                conn.execute(
                    FACTS.update()
                    .where(FACTS.c.id == fact.id)
                    .values(employee_id=fact.employee, doc=doc, updated_at=stamp)
                )
            mark_dirty(conn, [fact, *([previous] if previous else [])], f"fact {fact.id}", stamp)
        return previous is not None

    def delete(self, fact_id: str) -> Fact:
        """Remove a pushed fact; its days are queued."""
        if any(f.id == fact_id for f in [*self.cfg.facts, *self.file_facts]):
            raise FactRefused(
                409, f"fact {fact_id!r} is defined in the configuration: edit it there"
            )
        with self.store.write() as conn:
            old = conn.execute(select(FACTS.c.doc).where(FACTS.c.id == fact_id)).scalar()
            if old is None:
                raise FactRefused(404, f"no fact {fact_id!r}")
            fact = Fact.model_validate(orjson.loads(old))
            conn.execute(delete(FACTS).where(FACTS.c.id == fact_id))
            mark_dirty(conn, [fact], f"fact {fact_id} withdrawn")
        return fact

"""Per-tenant usage accounting: requests and tokens per service and UTC day, kept in the registry.

Every record goes two ways at once: into the ``lorag_usage_*`` Prometheus counters and into an
in-memory tally that a background thread adds to the ``usage_counters`` table every
``LORAG_USAGE_FLUSH_S`` seconds (one upsert per tenant, service and day, so any number of
processes add to the same rows). ``AdminService.GetUsage`` reads the table; the numbers agree
with the counters (which additionally bound the tenant label, see :mod:`lorag.common.metrics`).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from lorag.common.db import Base, Database, utcnow
from lorag.common.logging import log_context
from lorag.common.metrics import USAGE_REQUESTS, USAGE_TOKENS, tenant_label

log = logging.getLogger("lorag.usage")

_FIELDS = ("requests", "errors", "input_tokens", "output_tokens")


class UsageRow(Base):
    __tablename__ = "usage_counters"

    tenant_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True
    )
    service: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class UsageRecord:
    """Usage of one tenant in one service on one UTC day (``day`` None for a total)."""

    service: str
    day: dt.date | None
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int


def current_tenant() -> str:
    """The tenant of the request being handled (from the RPC or the caller's trace context)."""
    return (log_context.get() or {}).get("tenant", "")


class UsageRecorder:
    """Counts usage in memory and adds it to the registry in the background."""

    def __init__(self, db: Database, *, flush_interval_s: float = 5.0) -> None:
        self.db = db
        self.flush_interval_s = flush_interval_s
        self._pending: dict[tuple[str, str, dt.date], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- recording (any thread; cheap) ------------------------------------------------------
    def request(self, tenant_id: str, service: str, *, ok: bool) -> None:
        if not tenant_id:
            return
        USAGE_REQUESTS.labels(service, tenant_label(tenant_id)).inc()
        self._add(tenant_id, service, 0, 1)
        if not ok:
            self._add(tenant_id, service, 1, 1)

    def tokens(self, tenant_id: str, service: str, *, input_tokens: int = 0, output_tokens: int = 0) -> None:
        if not tenant_id:
            return
        label = tenant_label(tenant_id)
        if input_tokens > 0:
            USAGE_TOKENS.labels(service, label, "input").inc(input_tokens)
            self._add(tenant_id, service, 2, input_tokens)
        if output_tokens > 0:
            USAGE_TOKENS.labels(service, label, "output").inc(output_tokens)
            self._add(tenant_id, service, 3, output_tokens)

    def _add(self, tenant_id: str, service: str, index: int, amount: int) -> None:
        key = (tenant_id, service, dt.datetime.now(dt.UTC).date())
        with self._lock:
            self._pending[key][index] += int(amount)
        self._ensure_thread()

    # -- persistence ------------------------------------------------------------------------
    def flush(self) -> None:
        """Add the tally to the registry now (also done every ``flush_interval_s``)."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, defaultdict(lambda: [0, 0, 0, 0])
            if not pending:
                return
            try:
                with self.db.session.begin() as s:
                    for (tenant, service, day), values in pending.items():
                        s.execute(self._upsert(tenant, service, day, values))
            except Exception:
                with self._lock:  # keep the counts for the next attempt
                    for key, values in pending.items():
                        mine = self._pending[key]
                        for i, v in enumerate(values):
                            mine[i] += v
                raise

    def _upsert(self, tenant: str, service: str, day: dt.date, values: list[int]):
        dialect = self.db.engine.dialect.name
        insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
        if insert is None:
            raise NotImplementedError(f"usage accounting supports SQLite and Postgres, not {dialect}")
        row = dict(zip(_FIELDS, values, strict=True))
        stmt = insert(UsageRow).values(tenant_id=tenant, service=service, day=day, updated_at=utcnow(), **row)
        table = UsageRow.__table__
        return stmt.on_conflict_do_update(
            index_elements=["tenant_id", "service", "day"],
            set_={
                **{f: table.c[f] + stmt.excluded[f] for f in _FIELDS},
                "updated_at": stmt.excluded.updated_at,
            },
        )

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._flush_lock:
                if self._thread is None or not self._thread.is_alive():
                    self._stop.clear()
                    self._thread = threading.Thread(target=self._loop, name="lorag-usage-flush", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - retried at the next interval
                log.warning("writing usage counters failed; retrying", exc_info=True)

    def close(self) -> None:
        """Stop the background thread after a last flush."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - the registry may already be gone at shutdown
            log.warning("final usage flush failed", exc_info=True)

    # -- reading ----------------------------------------------------------------------------
    def query(self, tenant_id: str, *, start: dt.date, end: dt.date) -> list[UsageRecord]:
        """Per-day usage of ``tenant_id`` in [start, end], ordered by day and service."""
        self.flush()
        with self.db.session() as s:
            rows = s.scalars(
                select(UsageRow)
                .where(UsageRow.tenant_id == tenant_id, UsageRow.day >= start, UsageRow.day <= end)
                .order_by(UsageRow.day, UsageRow.service)
            ).all()
        return [
            UsageRecord(r.service, r.day, r.requests, r.errors, r.input_tokens, r.output_tokens) for r in rows
        ]


def totals(records: list[UsageRecord]) -> list[UsageRecord]:
    """Per-service sums of ``records`` (``day`` None), ordered by service."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in records:
        for i, f in enumerate(_FIELDS):
            sums[r.service][i] += getattr(r, f)
    return [UsageRecord(svc, None, *v) for svc, v in sorted(sums.items())]

"""Registry tables of adapters, immutable versions, aliases and revision events (SQLAlchemy 2).

The schema is created by the Alembic migration ``0002_adapters``; tenants and the append-only audit
log live in :mod:`lorag.common.tenancy`. Version rows are immutable (a database trigger refuses
updates); aliases move, and every move bumps the single registry revision counter.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lorag.common.db import Base, utcnow


class AdapterRow(Base):
    __tablename__ = "adapters"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_adapters_tenant_name"),)

    adapter_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    base_model: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AdapterVersionRow(Base):
    """An immutable version; ``blob_path`` is its prefix in the blob store."""

    __tablename__ = "adapter_versions"
    __table_args__ = (
        UniqueConstraint("adapter_id", "version", name="uq_adapter_versions_number"),
        Index("ix_adapter_versions_sha", "adapter_id", "sha256"),
    )

    version_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    adapter_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("adapters.adapter_id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[str] = mapped_column(String(63), index=True)
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    rank: Mapped[int] = mapped_column(Integer)
    alpha: Mapped[float] = mapped_column(Float)
    target_modules: Mapped[list[str]] = mapped_column(JSON)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    parent_version_id: Mapped[str] = mapped_column(String(40), default="")
    metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    training_job_id: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(String(1000), default="")
    state: Mapped[str] = mapped_column(String(16), default="READY")
    blob_path: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AdapterAliasRow(Base):
    __tablename__ = "adapter_aliases"
    __table_args__ = (UniqueConstraint("adapter_id", "name", name="uq_adapter_aliases_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    adapter_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("adapters.adapter_id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(32))
    version_id: Mapped[str] = mapped_column(String(40), ForeignKey("adapter_versions.version_id"))
    traffic_weight: Mapped[int] = mapped_column(Integer, default=0)
    previous_version_id: Mapped[str] = mapped_column(String(40), default="")
    updated_by: Mapped[str] = mapped_column(String(128), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RegistryRevisionRow(Base):
    """The one registry-wide revision counter (a single row, id 1).

    Internal: it orders every change (and serialises writers); replicas follow it. Tenants only
    ever see their own counter (:class:`TenantRevisionRow`), so nothing tells one tenant how often
    the others change their registries.
    """

    __tablename__ = "registry_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


class TenantRevisionRow(Base):
    """A tenant's own registry revision: one more with each change of that tenant's registry."""

    __tablename__ = "tenant_registry_revisions"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


class AdapterEventRow(Base):
    """One registry change, keyed by the revision it produced (watch streams replay these)."""

    __tablename__ = "adapter_events"
    __table_args__ = (
        Index("ix_adapter_events_tenant_revision", "tenant_id", "revision"),
        Index("ix_adapter_events_tenant_tenant_revision", "tenant_id", "tenant_revision"),
    )

    revision: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    tenant_id: Mapped[str] = mapped_column(String(63))
    #: The tenant's own revision after this change (what the tenant is shown).
    tenant_revision: Mapped[int] = mapped_column(BigInteger, default=0)
    type: Mapped[str] = mapped_column(String(32))
    adapter_name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    alias: Mapped[str] = mapped_column(String(32), default="")
    version_id: Mapped[str] = mapped_column(String(40), default="")
    version: Mapped[int] = mapped_column(Integer, default=0)
    traffic_weight: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

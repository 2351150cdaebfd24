"""Registry tables of datasets, training jobs and their progress events (SQLAlchemy 2).

Created by the Alembic migration ``0006_training``. Dataset rows are immutable versions (like
adapter versions); the file lives in the adapter blob store under ``<tenant>/_datasets/<name>/``.
A job row is the job's current state; its events are an append-only log WatchTrainingJob replays.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lorag.common.db import Base, utcnow


class DatasetRow(Base):
    __tablename__ = "training_datasets"
    __table_args__ = (Index("uq_training_datasets_version", "tenant_id", "name", "version", unique=True),)

    dataset_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(16), default="jsonl")
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    record_count: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(16))  # READY | INVALID
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(String(1000), default="")
    source: Mapped[str] = mapped_column(String(32), default="upload")  # upload | feedback
    blob_path: Mapped[str] = mapped_column(String(1024))
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrainingJobRow(Base):
    __tablename__ = "training_jobs"
    __table_args__ = (Index("ix_training_jobs_tenant_created", "tenant_id", "created_at"),)

    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), index=True
    )
    adapter_name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    base_model: Mapped[str] = mapped_column(String(200))
    dataset_id: Mapped[str] = mapped_column(String(40), ForeignKey("training_datasets.dataset_id"))
    dataset_name: Mapped[str] = mapped_column(String(64))
    dataset_version: Mapped[int] = mapped_column(Integer)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    phase: Mapped[str] = mapped_column(String(16), index=True)
    parent_version_id: Mapped[str] = mapped_column(String(40), default="")
    set_canary: Mapped[bool] = mapped_column(Boolean, default=False)
    canary_weight: Mapped[int] = mapped_column(Integer, default=0)
    canary_set: Mapped[bool] = mapped_column(Boolean, default=False)
    result_version_id: Mapped[str] = mapped_column(String(40), default="")
    result_version: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    error_message: Mapped[str] = mapped_column(String(2000), default="")
    description: Mapped[str] = mapped_column(String(1000), default="")
    created_by: Mapped[str] = mapped_column(String(128), default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TrainingEventRow(Base):
    __tablename__ = "training_job_events"
    __table_args__ = (Index("uq_training_job_events_seq", "job_id", "sequence", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("training_jobs.job_id", ondelete="CASCADE"), index=True
    )
    sequence: Mapped[int] = mapped_column(BigInteger)
    phase: Mapped[str] = mapped_column(String(16))
    step: Mapped[int] = mapped_column(BigInteger, default=0)
    total_steps: Mapped[int] = mapped_column(BigInteger, default=0)
    loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    eval_metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    eta_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

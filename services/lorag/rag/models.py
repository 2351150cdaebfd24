"""Registry tables of the orchestrator: answers kept for feedback, and feedback (SQLAlchemy 2).

Created by the Alembic migration ``0003_rag``. Feedback rows are the training data of continuous
training: a corrected answer is a generation example (question + contexts -> corrected answer),
relevant/irrelevant chunk ids are reranker pairs (question, chunk text, label).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lorag.common.db import Base, utcnow


class AnswerRow(Base):
    """One answer of Ask; ``contexts`` holds the passages put in the prompt (chunk id, doc id,
    score, text, cited flag)."""

    __tablename__ = "rag_answers"
    __table_args__ = (Index("ix_rag_answers_tenant_created", "tenant_id", "created_at"),)

    answer_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), index=True
    )
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    rejected: Mapped[bool] = mapped_column(Boolean, default=False)
    adapter_version_id: Mapped[str] = mapped_column(String(40), default="")
    reranker_adapter_version_id: Mapped[str] = mapped_column(String(40), default="")
    template: Mapped[str] = mapped_column(String(64), default="")
    contexts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    trace_id: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FeedbackRow(Base):
    """Feedback on one answer of the same tenant."""

    __tablename__ = "rag_feedback"
    __table_args__ = (Index("ix_rag_feedback_tenant_created", "tenant_id", "created_at"),)

    feedback_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), index=True
    )
    answer_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("rag_answers.answer_id", ondelete="CASCADE"), index=True
    )
    rating: Mapped[str] = mapped_column(String(16), default="")  # "up" | "down" | ""
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    corrected_answer: Mapped[str] = mapped_column(Text, default="")
    relevant_chunk_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    irrelevant_chunk_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

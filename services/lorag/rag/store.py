"""Answers and feedback in the registry database, always inside one tenant.

An answer is kept so feedback can refer to it and so feedback becomes training data with the
passages the model actually saw. A foreign, unknown or expired answer id is NOT_FOUND with the same
message, so ids of other tenants cannot be probed.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from lorag.common.db import Database, utcnow
from lorag.common.errors import InvalidArgument, NotFound
from lorag.rag.models import AnswerRow, FeedbackRow

MAX_COMMENT = 4096
MAX_CORRECTED = 16384
MAX_CHUNK_IDS = 200


@dataclass(frozen=True)
class FeedbackInput:
    answer_id: str
    rating: str = ""  # "up" | "down" | ""
    score: float | None = None
    comment: str = ""
    corrected_answer: str = ""
    relevant_chunk_ids: list[str] = field(default_factory=list)
    irrelevant_chunk_ids: list[str] = field(default_factory=list)


class AnswerStore:
    def __init__(self, db: Database, *, retention_days: int = 30) -> None:
        self.db = db
        self.retention = dt.timedelta(days=retention_days)

    def save_answer(
        self,
        tenant_id: str,
        *,
        question: str,
        answer: str,
        rejected: bool,
        contexts: list[dict[str, Any]],
        adapter_version_id: str = "",
        reranker_adapter_version_id: str = "",
        template: str = "",
        trace_id: str = "",
    ) -> str:
        answer_id = "ans_" + secrets.token_hex(16)
        with self.db.session.begin() as s:
            s.add(
                AnswerRow(
                    answer_id=answer_id,
                    tenant_id=tenant_id,
                    question=question,
                    answer=answer,
                    rejected=rejected,
                    contexts=contexts,
                    adapter_version_id=adapter_version_id,
                    reranker_adapter_version_id=reranker_adapter_version_id,
                    template=template,
                    trace_id=trace_id[:32],
                    created_at=utcnow(),
                )
            )
        return answer_id

    def get_answer(self, tenant_id: str, answer_id: str) -> AnswerRow:
        with self.db.session() as s:
            row = s.get(AnswerRow, answer_id) if answer_id else None
        if row is None or row.tenant_id != tenant_id or _aware(row.created_at) < utcnow() - self.retention:
            raise NotFound(f"answer {answer_id!r} not found (unknown, expired or not yours)")
        return row

    def add_feedback(self, tenant_id: str, fb: FeedbackInput, *, created_by: str = "") -> str:
        if not fb.rating and fb.score is None:
            raise InvalidArgument("give a rating (thumbs up/down) or a score", field="rating")
        if fb.score is not None and not (0.0 <= fb.score <= 1.0):
            raise InvalidArgument(f"must be in [0, 1] (got {fb.score})", field="score")
        if len(fb.comment) > MAX_COMMENT:
            raise InvalidArgument(f"at most {MAX_COMMENT} characters", field="comment")
        if len(fb.corrected_answer) > MAX_CORRECTED:
            raise InvalidArgument(f"at most {MAX_CORRECTED} characters", field="corrected_answer")
        relevant, irrelevant = set(fb.relevant_chunk_ids), set(fb.irrelevant_chunk_ids)
        for name, ids in (("relevant_chunk_ids", relevant), ("irrelevant_chunk_ids", irrelevant)):
            if len(ids) > MAX_CHUNK_IDS:
                raise InvalidArgument(f"at most {MAX_CHUNK_IDS} ids", field=name)
        if relevant & irrelevant:
            raise InvalidArgument(
                f"chunk ids in both lists: {', '.join(sorted(relevant & irrelevant)[:5])}",
                field="irrelevant_chunk_ids",
            )
        answer = self.get_answer(tenant_id, fb.answer_id)
        known = {c.get("chunk_id") for c in answer.contexts}
        for name, ids in (("relevant_chunk_ids", relevant), ("irrelevant_chunk_ids", irrelevant)):
            unknown = sorted(ids - known)
            if unknown:
                raise InvalidArgument(f"not passages of this answer: {', '.join(unknown[:5])}", field=name)
        feedback_id = "fb_" + secrets.token_hex(16)
        with self.db.session.begin() as s:
            s.add(
                FeedbackRow(
                    feedback_id=feedback_id,
                    tenant_id=tenant_id,
                    answer_id=answer.answer_id,
                    rating=fb.rating,
                    score=fb.score,
                    comment=fb.comment,
                    corrected_answer=fb.corrected_answer,
                    relevant_chunk_ids=sorted(relevant),
                    irrelevant_chunk_ids=sorted(irrelevant),
                    created_by=created_by,
                    created_at=utcnow(),
                )
            )
        return feedback_id

    def feedback_for(self, tenant_id: str, answer_id: str) -> list[FeedbackRow]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(FeedbackRow)
                    .where(FeedbackRow.tenant_id == tenant_id, FeedbackRow.answer_id == answer_id)
                    .order_by(FeedbackRow.created_at)
                )
            )


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes for timezone columns; they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

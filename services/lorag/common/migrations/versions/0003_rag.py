"""RAG answers (kept for feedback) and per-tenant feedback, the training data of continuous training.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _tenant_column() -> sa.Column:
    return sa.Column(
        "tenant_id",
        sa.String(63),
        sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


def upgrade() -> None:
    op.create_table(
        "rag_answers",
        sa.Column("answer_id", sa.String(40), primary_key=True),
        _tenant_column(),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("rejected", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("adapter_version_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("reranker_adapter_version_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("template", sa.String(64), nullable=False, server_default=""),
        sa.Column("contexts", sa.JSON, nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_rag_answers_tenant_created", "rag_answers", ["tenant_id", "created_at"])
    op.create_table(
        "rag_feedback",
        sa.Column("feedback_id", sa.String(40), primary_key=True),
        _tenant_column(),
        sa.Column(
            "answer_id",
            sa.String(40),
            sa.ForeignKey("rag_answers.answer_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("rating", sa.String(16), nullable=False, server_default=""),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("corrected_answer", sa.Text, nullable=False, server_default=""),
        sa.Column("relevant_chunk_ids", sa.JSON, nullable=False),
        sa.Column("irrelevant_chunk_ids", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_rag_feedback_tenant_created", "rag_feedback", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_rag_feedback_tenant_created", table_name="rag_feedback")
    op.drop_table("rag_feedback")
    op.drop_index("ix_rag_answers_tenant_created", table_name="rag_answers")
    op.drop_table("rag_answers")

"""Training datasets (immutable versions), training jobs and their progress events.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
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
        "training_datasets",
        sa.Column("dataset_id", sa.String(40), primary_key=True),
        _tenant_column(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("format", sa.String(16), nullable=False, server_default="jsonl"),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("record_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("description", sa.String(1000), nullable=False, server_default=""),
        sa.Column("source", sa.String(32), nullable=False, server_default="upload"),
        sa.Column("blob_path", sa.String(1024), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "uq_training_datasets_version", "training_datasets", ["tenant_id", "name", "version"], unique=True
    )
    op.create_table(
        "training_jobs",
        sa.Column("job_id", sa.String(40), primary_key=True),
        _tenant_column(),
        sa.Column("adapter_name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("base_model", sa.String(200), nullable=False),
        sa.Column("dataset_id", sa.String(40), sa.ForeignKey("training_datasets.dataset_id"), nullable=False),
        sa.Column("dataset_name", sa.String(64), nullable=False),
        sa.Column("dataset_version", sa.Integer, nullable=False),
        sa.Column("hyperparameters", sa.JSON, nullable=False),
        sa.Column("phase", sa.String(16), nullable=False, index=True),
        sa.Column("parent_version_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("set_canary", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("canary_weight", sa.Integer, nullable=False, server_default="0"),
        sa.Column("canary_set", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("result_version_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("result_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("error_message", sa.String(2000), nullable=False, server_default=""),
        sa.Column("description", sa.String(1000), nullable=False, server_default=""),
        sa.Column("created_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_sequence", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_training_jobs_tenant_created", "training_jobs", ["tenant_id", "created_at"])
    op.create_table(
        "training_job_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "job_id",
            sa.String(40),
            sa.ForeignKey("training_jobs.job_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("total_steps", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("loss", sa.Float, nullable=True),
        sa.Column("eval_metrics", sa.JSON, nullable=False),
        sa.Column("eta_seconds", sa.Float, nullable=True),
        sa.Column("message", sa.String(2000), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("uq_training_job_events_seq", "training_job_events", ["job_id", "sequence"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_training_job_events_seq", table_name="training_job_events")
    op.drop_table("training_job_events")
    op.drop_index("ix_training_jobs_tenant_created", table_name="training_jobs")
    op.drop_table("training_jobs")
    op.drop_index("uq_training_datasets_version", table_name="training_datasets")
    op.drop_table("training_datasets")

"""Adapters, immutable versions, aliases, revision counter and events; audit log trace ids.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_IMMUTABLE = {
    # table -> operations refused by a trigger
    "adapter_versions": ("UPDATE",),
    "audit_events": ("UPDATE", "DELETE"),
}


def upgrade() -> None:
    op.create_table(
        "adapters",
        sa.Column("adapter_id", sa.String(40), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(63),
            sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("base_model", sa.String(200), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False, server_default=""),
        sa.Column("latest_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_adapters_tenant_name"),
    )
    op.create_table(
        "adapter_versions",
        sa.Column("version_id", sa.String(40), primary_key=True),
        sa.Column(
            "adapter_id",
            sa.String(40),
            sa.ForeignKey("adapters.adapter_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("tenant_id", sa.String(63), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("alpha", sa.Float, nullable=False),
        sa.Column("target_modules", sa.JSON, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("parent_version_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("training_job_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("description", sa.String(1000), nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False, server_default="READY"),
        sa.Column("blob_path", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("adapter_id", "version", name="uq_adapter_versions_number"),
    )
    op.create_index("ix_adapter_versions_sha", "adapter_versions", ["adapter_id", "sha256"])
    op.create_table(
        "adapter_aliases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "adapter_id",
            sa.String(40),
            sa.ForeignKey("adapters.adapter_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("version_id", sa.String(40), sa.ForeignKey("adapter_versions.version_id"), nullable=False),
        sa.Column("traffic_weight", sa.Integer, nullable=False, server_default="0"),
        sa.Column("previous_version_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("updated_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("adapter_id", "name", name="uq_adapter_aliases_name"),
    )
    op.create_table(
        "registry_revision",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        sa.table("registry_revision", sa.column("id", sa.Integer), sa.column("revision", sa.BigInteger)),
        [{"id": 1, "revision": 0}],
    )
    op.create_table(
        "adapter_events",
        sa.Column("revision", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("adapter_name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False, server_default=""),
        sa.Column("version_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("traffic_weight", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_adapter_events_tenant_revision", "adapter_events", ["tenant_id", "revision"])
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("trace_id", sa.String(32), nullable=False, server_default=""))
        batch.alter_column("actor_key_id", type_=sa.String(128), existing_type=sa.String(32))
    _create_immutability_triggers()


def _create_immutability_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION lorag_refuse_change() RETURNS trigger AS $$
            BEGIN
              RAISE EXCEPTION '% on % is not allowed: rows are immutable', TG_OP, TG_TABLE_NAME;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        for table, ops in _IMMUTABLE.items():
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE {' OR '.join(ops)} ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION lorag_refuse_change()"
            )
    elif dialect == "sqlite":
        for table, ops in _IMMUTABLE.items():
            for operation in ops:
                op.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{operation} on {table} refused: rows are immutable'); "
                    "END"
                )


def _drop_immutability_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for table in _IMMUTABLE:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}")
        op.execute("DROP FUNCTION IF EXISTS lorag_refuse_change()")
    elif dialect == "sqlite":
        for table, ops in _IMMUTABLE.items():
            for operation in ops:
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation.lower()}")


def downgrade() -> None:
    _drop_immutability_triggers()
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("actor_key_id", type_=sa.String(32), existing_type=sa.String(128))
        batch.drop_column("trace_id")
    op.drop_index("ix_adapter_events_tenant_revision", table_name="adapter_events")
    op.drop_table("adapter_events")
    op.drop_table("registry_revision")
    op.drop_table("adapter_aliases")
    op.drop_index("ix_adapter_versions_sha", table_name="adapter_versions")
    op.drop_table("adapter_versions")
    op.drop_table("adapters")

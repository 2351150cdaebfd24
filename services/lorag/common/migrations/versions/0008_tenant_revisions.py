"""Per-tenant registry revisions: each tenant sees its own counter, never the registry-wide one.

The registry-wide revision stays (it orders all changes and is what replicas follow); every event
also records the tenant's own revision after it. Existing events are numbered 1, 2, … per tenant
in their global order, and each tenant's counter starts at its last event's number.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_registry_revisions",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    with op.batch_alter_table("adapter_events") as batch:
        batch.add_column(sa.Column("tenant_revision", sa.BigInteger, nullable=False, server_default="0"))
    # One pass with a window function (UPDATE … FROM: Postgres, SQLite ≥ 3.33), not a count per row.
    op.execute(
        "UPDATE adapter_events SET tenant_revision = numbered.n FROM ("
        "SELECT revision, ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY revision) AS n "
        "FROM adapter_events) AS numbered WHERE numbered.revision = adapter_events.revision"
    )
    op.execute(
        "INSERT INTO tenant_registry_revisions (tenant_id, revision) "
        "SELECT tenant_id, MAX(tenant_revision) FROM adapter_events GROUP BY tenant_id"
    )
    op.create_index(
        "ix_adapter_events_tenant_tenant_revision", "adapter_events", ["tenant_id", "tenant_revision"]
    )


def downgrade() -> None:
    op.drop_index("ix_adapter_events_tenant_tenant_revision", table_name="adapter_events")
    with op.batch_alter_table("adapter_events") as batch:
        batch.drop_column("tenant_revision")
    op.drop_table("tenant_registry_revisions")

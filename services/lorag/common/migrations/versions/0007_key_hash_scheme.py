"""API keys: the scheme of each stored hash (plain SHA-256 before, HMAC-SHA256 under the server
secret from now on). Existing rows keep the old scheme and are rehashed on their next use.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("hash_scheme", sa.String(16), nullable=False, server_default="sha256"),
    )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("hash_scheme")

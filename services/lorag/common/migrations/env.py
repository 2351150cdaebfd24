"""Alembic environment: runs on the connection handed over by :func:`lorag.common.db.migrate`."""

from alembic import context

from lorag.common.db import Base
from lorag.common import tenancy  # noqa: F401  (registers the tables on Base.metadata)
from lorag.adapters import models as adapter_models  # noqa: F401  (adapter registry tables)
from lorag.common import usage  # noqa: F401  (usage counters)

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

"""Runtime.close: usage counted since the last flush reaches the registry, and the flusher stops."""

import datetime as dt

from lorag.common.db import Database
from lorag.common.rpc import Runtime
from lorag.common.settings import LoragSettings
from lorag.common.tenancy import TenantStore
from lorag.common.usage import UsageRecorder


def test_close_writes_pending_usage_and_stops_the_flusher(tmp_path):
    runtime = Runtime.build(LoragSettings(data_dir=tmp_path, usage_flush_s=3600))
    TenantStore(runtime.db).create_tenant(tenant_id="acme", actor="test")
    runtime.usage.request("acme", "generation", ok=True)
    runtime.usage.request("acme", "generation", ok=False)
    runtime.usage.tokens("acme", "generation", input_tokens=12, output_tokens=5)
    flusher = runtime.usage._thread
    assert flusher is not None and flusher.is_alive()  # nothing written yet: the interval is an hour
    runtime.close()
    assert not flusher.is_alive()

    db = Database(runtime.settings.resolved_registry_url)
    try:
        today = dt.datetime.now(dt.UTC).date()
        (row,) = UsageRecorder(db).query("acme", start=today, end=today)
        assert (row.service, row.requests, row.errors, row.input_tokens, row.output_tokens) == (
            "generation",
            2,
            1,
            12,
            5,
        )
    finally:
        db.dispose()

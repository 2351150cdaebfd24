"""Faults under the registry: the Postgres server under a running host is stopped and started again.

While it is down, calls that need the registry fail fast with UNAVAILABLE (never INTERNAL, never a
hang) — retried ones after the SDK's bounded retries, the others at once. Once it is back, the
same host (no lorag restart) serves again: the pool replaces the connections the restart cut
(pre-ping), so the very first call after the restart succeeds, writes included, also when the
restart happened between two calls. The long variant
repeats the outage (marker ``fault_long``).
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from lorag.adapters.v1 import adapters_pb2 as apb
from lorag.admin.v1 import admin_pb2 as pb
from lorag.apps import APPS_BY_NAME
from lorag.client import AsyncClient
from lorag.common.hosts import start_inprocess
from lorag.common.rpc import Runtime
from lorag.common.settings import LoragSettings
from tests.support.postgres import start_postgres

#: What "fails fast" means here: the SDK's retries of an idempotent call take about 1.4 s of
#: backoff; the bound is loose so that a busy machine does not fail the test.
FAIL_FAST_S = 5.0


@pytest.fixture
def postgres():
    server = start_postgres("lorag_faults")
    yield server
    server.stop()


@pytest.fixture
async def platform(postgres, tmp_path):
    # auth_cache_ttl_s=0: every call looks its key up in the registry (the outage is not hidden)
    settings = LoragSettings(
        data_dir=tmp_path, registry_url=postgres.url, auth_cache_ttl_s=0, max_message_bytes=256 * 1024
    )
    runtime = Runtime.build(settings)
    operator_key = runtime.tenants.bootstrap()
    host = await start_inprocess(runtime, apps=(APPS_BY_NAME["adapters"],))
    operator = AsyncClient(host.target, operator_key, timeout=20)
    created = await operator.admin.CreateTenant(
        pb.CreateTenantRequest(tenant_id="pg-faults", create_admin_key=True)
    )
    admin_key = created.admin_api_key
    admin = AsyncClient(host.target, admin_key, timeout=20)
    try:
        yield operator, admin
    finally:
        await operator.close()
        await admin.close()
        await host.stop(0)
        runtime.usage.close()
        runtime.close()


def calls(operator: AsyncClient, admin: AsyncClient):
    """(name, retried by the SDK, coroutine factory): reads and writes on both services."""
    return [
        ("ListTenants", True, lambda: operator.admin.ListTenants(pb.ListTenantsRequest())),
        ("WhoAmI", True, lambda: admin.admin.WhoAmI(pb.WhoAmIRequest())),
        ("ListAdapters", True, lambda: admin.adapters.ListAdapters(apb.ListAdaptersRequest())),
        ("CreateApiKey", False, lambda: admin.admin.CreateApiKey(pb.CreateApiKeyRequest(role=pb.ROLE_USER))),
    ]


async def expect_unavailable_fast(name: str, factory) -> float:
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await asyncio.wait_for(factory(), timeout=30)
    took = time.monotonic() - started
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, (name, info.value.code(), info.value.details())
    assert "registry database is unavailable" in info.value.details(), name
    assert took < FAIL_FAST_S, f"{name} took {took:.2f}s to fail"
    return took


async def outage_and_recovery(postgres, operator, admin) -> dict[str, float]:
    for _, _, factory in calls(operator, admin):  # warm: the pool holds live connections
        await factory()
    postgres.stop_server()
    took = {name: await expect_unavailable_fast(name, f) for name, _, f in calls(operator, admin)}
    postgres.start_server()
    # the very first call of each kind after the restart succeeds (stale connections replaced)
    for _, _, factory in reversed(calls(operator, admin)):  # the non-retried write goes first
        await asyncio.wait_for(factory(), timeout=30)
    return took


async def test_postgres_restart_fails_fast_and_recovers_without_restarting_lorag(postgres, platform):
    operator, admin = platform
    took = await outage_and_recovery(postgres, operator, admin)
    print("seconds to fail while Postgres is down:", {k: round(v, 3) for k, v in took.items()})
    # the non-retried call fails at once; the retried ones only after the SDK's backoff
    assert took["CreateApiKey"] < 1.0, took

    # a restart between requests (no call saw it): every pooled connection is stale, and still
    # the first call, a write the SDK does not retry, succeeds
    for _, _, factory in calls(operator, admin):
        await factory()
    postgres.restart()
    await asyncio.wait_for(admin.admin.CreateApiKey(pb.CreateApiKeyRequest(role=pb.ROLE_USER)), timeout=30)
    keys = await admin.admin.ListApiKeys(pb.ListApiKeysRequest())
    assert len(keys.keys) == 5  # the admin key, one per CreateApiKey above
    who = await admin.admin.WhoAmI(pb.WhoAmIRequest())
    assert who.tenant_id == "pg-faults"


@pytest.mark.fault_long
@pytest.mark.timeout(600)
async def test_repeated_postgres_restarts(postgres, platform):
    operator, admin = platform
    for _ in range(10):
        await outage_and_recovery(postgres, operator, admin)
    keys = await admin.admin.ListApiKeys(pb.ListApiKeysRequest())
    assert len(keys.keys) == 21  # the admin key and two per round

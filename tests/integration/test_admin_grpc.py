"""The admin slice over real gRPC: auth, roles, tenancy, bad input, revocation."""

import asyncio
import itertools
import time

import grpc
import pytest
from prometheus_client import REGISTRY

from lorag.admin.v1 import admin_pb2 as pb
from lorag.common.tenancy import DEFAULT_TENANT

from .conftest import expect_status

_ids = itertools.count()


async def new_tenant(operator, client_for):
    tid = f"it-{next(_ids)}-{int(time.time() * 1000) % 100000}"
    resp = await operator.admin.CreateTenant(pb.CreateTenantRequest(tenant_id=tid, create_admin_key=True))
    assert resp.admin_api_key.startswith("lrg_")
    return tid, client_for(resp.admin_api_key)


async def test_whoami_resolves_tenant_and_role_from_the_key(operator):
    who = await operator.admin.WhoAmI(pb.WhoAmIRequest())
    assert who.tenant_id == DEFAULT_TENANT and who.role == pb.ROLE_OPERATOR


async def test_tenant_lifecycle_and_key_management(operator, client_for):
    tid, admin = await new_tenant(operator, client_for)
    listed = await operator.admin.ListTenants(pb.ListTenantsRequest())
    assert tid in [t.tenant_id for t in listed.tenants]

    created = await admin.admin.CreateApiKey(pb.CreateApiKeyRequest(role=pb.ROLE_USER, description="bot"))
    user = client_for(created.api_key)
    who = await user.admin.WhoAmI(pb.WhoAmIRequest())
    assert (who.tenant_id, who.role, who.key_id) == (tid, pb.ROLE_USER, created.key.key_id)

    keys = await admin.admin.ListApiKeys(pb.ListApiKeysRequest())
    assert created.key.key_id in [k.key_id for k in keys.keys]
    assert all(not k.HasField("revoke_time") for k in keys.keys)


async def test_revoked_key_is_rejected_within_one_second(operator, client_for):
    _, admin = await new_tenant(operator, client_for)
    created = await admin.admin.CreateApiKey(pb.CreateApiKeyRequest(role=pb.ROLE_USER))
    user = client_for(created.api_key)
    await user.admin.WhoAmI(pb.WhoAmIRequest())  # warm the auth cache
    await admin.admin.RevokeApiKey(pb.RevokeApiKeyRequest(key_id=created.key.key_id))
    revoked_at = time.monotonic()
    while True:
        try:
            await user.admin.WhoAmI(pb.WhoAmIRequest())
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
            break
        await asyncio.sleep(0.05)
    assert time.monotonic() - revoked_at < 1.0
    listed = await admin.admin.ListApiKeys(pb.ListApiKeysRequest(include_revoked=True))
    assert [k.HasField("revoke_time") for k in listed.keys if k.key_id == created.key.key_id] == [True]


@pytest.mark.parametrize("metadata_key", [None, "lrg_0000_forged", "Basic abc"])
async def test_missing_unknown_or_malformed_keys_are_unauthenticated(host, client_for, metadata_key):
    c = client_for(None)
    md = (
        ()
        if metadata_key is None
        else (("authorization", metadata_key if " " in metadata_key else f"Bearer {metadata_key}"),)
    )
    details = await expect_status(
        c.admin.WhoAmI(pb.WhoAmIRequest(), metadata=md), grpc.StatusCode.UNAUTHENTICATED
    )
    assert "key" in details.lower()


async def test_wrong_role_is_permission_denied_and_writes_nothing(operator, client_for, runtime):
    tid, admin = await new_tenant(operator, client_for)
    user_key = (await admin.admin.CreateApiKey(pb.CreateApiKeyRequest(role=pb.ROLE_USER))).api_key
    user = client_for(user_key)
    before = len(runtime.tenants.audit_events(tid))
    await expect_status(
        user.admin.CreateApiKey(pb.CreateApiKeyRequest(role=pb.ROLE_USER)), grpc.StatusCode.PERMISSION_DENIED
    )
    await expect_status(
        admin.admin.CreateTenant(pb.CreateTenantRequest(tenant_id="x-new")), grpc.StatusCode.PERMISSION_DENIED
    )
    await expect_status(admin.admin.ListTenants(pb.ListTenantsRequest()), grpc.StatusCode.PERMISSION_DENIED)
    assert len(runtime.tenants.audit_events(tid)) == before
    await expect_status(
        operator.admin.GetTenant(pb.GetTenantRequest(tenant_id="x-new")), grpc.StatusCode.NOT_FOUND
    )


async def test_foreign_tenant_and_keys_are_not_found(operator, client_for):
    tid_a, admin_a = await new_tenant(operator, client_for)
    tid_b, admin_b = await new_tenant(operator, client_for)
    key_a = (await admin_a.admin.CreateApiKey(pb.CreateApiKeyRequest(role=pb.ROLE_USER))).key.key_id
    await expect_status(
        admin_b.admin.RevokeApiKey(pb.RevokeApiKeyRequest(key_id=key_a)), grpc.StatusCode.NOT_FOUND
    )
    await expect_status(
        admin_b.admin.GetTenant(pb.GetTenantRequest(tenant_id=tid_a)), grpc.StatusCode.NOT_FOUND
    )
    keys_b = await admin_b.admin.ListApiKeys(pb.ListApiKeysRequest(include_revoked=True))
    assert key_a not in [k.key_id for k in keys_b.keys]
    keys_a = await admin_a.admin.ListApiKeys(pb.ListApiKeysRequest())
    assert key_a in [k.key_id for k in keys_a.keys]  # still valid


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.CreateTenantRequest(tenant_id="Bad Id"), "tenant_id"),
        (pb.CreateTenantRequest(tenant_id="ok-id", display_name="x" * 201), "display_name"),
        (
            pb.CreateTenantRequest(tenant_id="ok-id2", quota=pb.TenantQuota(max_documents=-5)),
            "quota.max_documents",
        ),
    ],
)
async def test_malformed_fields_are_invalid_argument_naming_the_field(operator, request_, field):
    details = await expect_status(operator.admin.CreateTenant(request_), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith(field)
    await expect_status(
        operator.admin.GetTenant(pb.GetTenantRequest(tenant_id=request_.tenant_id)), grpc.StatusCode.NOT_FOUND
    )


async def test_oversize_message_is_rejected_with_the_limit_named(operator):
    request = pb.CreateTenantRequest(tenant_id="huge", display_name="x" * (300 * 1024))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await operator.admin.CreateTenant(request)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(256 * 1024) in info.value.details()
    await expect_status(
        operator.admin.GetTenant(pb.GetTenantRequest(tenant_id="huge")), grpc.StatusCode.NOT_FOUND
    )


async def test_slow_handler_is_cut_at_the_client_deadline(operator, host, monkeypatch):
    admin = host.servicers["adapters"].admin

    def slow(*args, **kwargs):
        time.sleep(1.0)
        return []

    monkeypatch.setattr(admin.store, "list_tenants", slow)
    started = time.monotonic()
    labels = {"service": "admin", "method": "ListTenants", "code": "DEADLINE_EXCEEDED"}
    before = REGISTRY.get_sample_value("lorag_rpc_requests_total", labels) or 0.0
    await expect_status(
        operator.admin.ListTenants(pb.ListTenantsRequest(), timeout=0.3), grpc.StatusCode.DEADLINE_EXCEEDED
    )
    assert time.monotonic() - started < 0.9
    # the server stopped waiting at the client's deadline too, and counted it
    for _ in range(40):
        if (REGISTRY.get_sample_value("lorag_rpc_requests_total", labels) or 0.0) > before:
            break
        await asyncio.sleep(0.05)
    assert REGISTRY.get_sample_value("lorag_rpc_requests_total", labels) == before + 1


async def test_unknown_errors_are_generic_internal_with_trace_id(operator, host, monkeypatch):
    admin = host.servicers["adapters"].admin

    def boom(*args, **kwargs):
        raise RuntimeError("connection string postgres://secret@db")

    monkeypatch.setattr(admin.store, "list_tenants", boom)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    md = (("traceparent", f"00-{trace}-00f067aa0ba902b7-01"),)
    details = await expect_status(
        operator.admin.ListTenants(pb.ListTenantsRequest(), metadata=md), grpc.StatusCode.INTERNAL
    )
    assert "secret" not in details and "Traceback" not in details
    assert trace in details


async def test_rpc_metrics_count_calls_by_code(operator, client_for):
    def count(code):
        return (
            REGISTRY.get_sample_value(
                "lorag_rpc_requests_total", {"service": "admin", "method": "WhoAmI", "code": code}
            )
            or 0.0
        )

    ok, unauth = count("OK"), count("UNAUTHENTICATED")
    await operator.admin.WhoAmI(pb.WhoAmIRequest())
    await expect_status(
        client_for("wrong-key-0123456789").admin.WhoAmI(pb.WhoAmIRequest()), grpc.StatusCode.UNAUTHENTICATED
    )
    assert count("OK") == ok + 1 and count("UNAUTHENTICATED") == unauth + 1
    assert (
        REGISTRY.get_sample_value("lorag_rpc_latency_seconds_count", {"service": "admin", "method": "WhoAmI"})
        >= 2
    )


async def test_operator_sets_quota_and_the_tenant_reads_it(operator, client_for):
    tid, admin = await new_tenant(operator, client_for)
    quota = pb.TenantQuota(max_documents=1000, max_adapters=5, max_requests_per_minute=600)
    resp = await operator.admin.SetTenantQuota(pb.SetTenantQuotaRequest(tenant_id=tid, quota=quota))
    assert resp.tenant.quota == quota
    assert (await admin.admin.GetTenant(pb.GetTenantRequest())).tenant.quota == quota
    await expect_status(
        admin.admin.SetTenantQuota(pb.SetTenantQuotaRequest(tenant_id=tid, quota=pb.TenantQuota())),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await expect_status(
        operator.admin.SetTenantQuota(pb.SetTenantQuotaRequest(tenant_id="no-such-tenant", quota=quota)),
        grpc.StatusCode.NOT_FOUND,
    )

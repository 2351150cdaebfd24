"""lorag.admin.v1 servicer: proto <-> AdminCore. No business logic here."""

from __future__ import annotations

import asyncio

from lorag.admin.core import AdminCore
from lorag.admin.v1 import admin_pb2 as pb
from lorag.common.convert import timestamp_pb
from lorag.common.rpc import Call, ServicerBase, rpc
from lorag.common.tenancy import ApiKeyRow, Quota, Role, TenantRow
from lorag.common.usage import UsageRecord
from lorag.common.v1 import common_pb2

_ROLE_TO_PB = {Role.USER: pb.ROLE_USER, Role.ADMIN: pb.ROLE_ADMIN, Role.OPERATOR: pb.ROLE_OPERATOR}
_ROLE_FROM_PB = {v: k for k, v in _ROLE_TO_PB.items()}


def _quota(q: pb.TenantQuota) -> Quota:
    return Quota(
        max_documents=q.max_documents,
        max_adapters=q.max_adapters,
        max_requests_per_minute=q.max_requests_per_minute,
        max_storage_bytes=q.max_storage_bytes,
    )


def tenant_pb(row: TenantRow) -> pb.Tenant:
    q = row.quota
    return pb.Tenant(
        tenant_id=row.tenant_id,
        display_name=row.display_name,
        quota=pb.TenantQuota(
            max_documents=q.max_documents,
            max_adapters=q.max_adapters,
            max_requests_per_minute=q.max_requests_per_minute,
            max_storage_bytes=q.max_storage_bytes,
        ),
        create_time=timestamp_pb(row.created_at),
    )


def key_pb(row: ApiKeyRow) -> pb.ApiKey:
    return pb.ApiKey(
        key_id=row.key_id,
        role=_ROLE_TO_PB[Role[row.role]],
        description=row.description,
        create_time=timestamp_pb(row.created_at),
        revoke_time=timestamp_pb(row.revoked_at),
        created_by=row.created_by,
    )


def usage_pb(r: UsageRecord) -> pb.UsageRecord:
    return pb.UsageRecord(
        service=r.service,
        date=r.day.isoformat() if r.day else "",
        requests=r.requests,
        errors=r.errors,
        input_tokens=r.input_tokens,
        output_tokens=r.output_tokens,
    )


class AdminServicer(ServicerBase):
    """Tenants, API keys and quotas. Registry calls run in a thread (they are synchronous)."""

    SERVICES = (pb.DESCRIPTOR.services_by_name["AdminService"],)

    def __init__(self, runtime=None) -> None:
        super().__init__(runtime)
        self.admin = AdminCore(self.runtime.tenants)

    @rpc(Role.OPERATOR)
    async def CreateTenant(self, request: pb.CreateTenantRequest, call: Call):
        tenant, key, secret = await asyncio.to_thread(
            self.admin.create_tenant,
            call.principal,
            tenant_id=request.tenant_id,
            display_name=request.display_name,
            quota=_quota(request.quota) if request.HasField("quota") else None,
            create_admin_key=request.create_admin_key,
        )
        return pb.CreateTenantResponse(
            tenant=tenant_pb(tenant),
            admin_key=key_pb(key) if key else None,
            admin_api_key=secret,
        )

    @rpc(Role.USER)
    async def GetTenant(self, request: pb.GetTenantRequest, call: Call):
        row = await asyncio.to_thread(self.admin.get_tenant, call.principal, tenant_id=request.tenant_id)
        return pb.GetTenantResponse(tenant=tenant_pb(row))

    @rpc(Role.OPERATOR)
    async def ListTenants(self, request: pb.ListTenantsRequest, call: Call):
        page = await asyncio.to_thread(
            self.admin.list_tenants,
            call.principal,
            size=request.page.page_size,
            token=request.page.page_token,
        )
        return pb.ListTenantsResponse(
            tenants=[tenant_pb(t) for t in page.items],
            page=common_pb2.PageResponse(next_page_token=page.next_token),
        )

    @rpc(Role.OPERATOR)
    async def SetTenantQuota(self, request: pb.SetTenantQuotaRequest, call: Call):
        row = await asyncio.to_thread(
            self.admin.set_quota, call.principal, tenant_id=request.tenant_id, quota=_quota(request.quota)
        )
        return pb.SetTenantQuotaResponse(tenant=tenant_pb(row))

    @rpc(Role.ADMIN)
    async def CreateApiKey(self, request: pb.CreateApiKeyRequest, call: Call):
        key, secret = await asyncio.to_thread(
            self.admin.create_key,
            call.principal,
            role=_ROLE_FROM_PB.get(request.role),
            description=request.description,
        )
        return pb.CreateApiKeyResponse(key=key_pb(key), api_key=secret)

    @rpc(Role.ADMIN)
    async def ListApiKeys(self, request: pb.ListApiKeysRequest, call: Call):
        page = await asyncio.to_thread(
            self.admin.list_keys,
            call.principal,
            include_revoked=request.include_revoked,
            size=request.page.page_size,
            token=request.page.page_token,
        )
        return pb.ListApiKeysResponse(
            keys=[key_pb(k) for k in page.items],
            page=common_pb2.PageResponse(next_page_token=page.next_token),
        )

    @rpc(Role.ADMIN)
    async def RevokeApiKey(self, request: pb.RevokeApiKeyRequest, call: Call):
        row = await asyncio.to_thread(self.admin.revoke_key, call.principal, key_id=request.key_id)
        return pb.RevokeApiKeyResponse(key=key_pb(row))

    @rpc(Role.USER)
    async def WhoAmI(self, request: pb.WhoAmIRequest, call: Call):
        p = call.principal
        return pb.WhoAmIResponse(tenant_id=p.tenant_id, role=_ROLE_TO_PB[p.role], key_id=p.key_id)

    @rpc(Role.ADMIN)
    async def GetUsage(self, request: pb.GetUsageRequest, call: Call):
        report = await asyncio.to_thread(
            self.admin.get_usage,
            call.principal,
            self.runtime.usage,
            tenant_id=request.tenant_id,
            start_date=request.start_date,
            end_date=request.end_date,
        )
        return pb.GetUsageResponse(
            tenant_id=report.tenant_id,
            start_date=report.start.isoformat(),
            end_date=report.end.isoformat(),
            days=[usage_pb(r) for r in report.days],
            totals=[usage_pb(r) for r in report.totals],
        )

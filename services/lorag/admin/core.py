"""Admin logic on plain Python types: who may manage tenants and keys, and how."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from lorag.common.auth import require_role
from lorag.common.errors import InvalidArgument, NotFound
from lorag.common.paging import decode_token, next_token, page_size
from lorag.common.tenancy import ApiKeyRow, Principal, Quota, Role, TenantRow, TenantStore
from lorag.common.usage import UsageRecord, UsageRecorder, totals

MAX_USAGE_DAYS = 366
DEFAULT_USAGE_DAYS = 30


@dataclass(frozen=True)
class UsageReport:
    tenant_id: str
    start: dt.date
    end: dt.date
    days: list[UsageRecord]
    totals: list[UsageRecord]


def _date(value: str, *, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f"must be a date YYYY-MM-DD (got {value[:32]!r})", field=field) from None


@dataclass(frozen=True)
class Page:
    items: list
    next_token: str


class AdminCore:
    def __init__(self, store: TenantStore) -> None:
        self.store = store

    def create_tenant(
        self,
        principal: Principal,
        *,
        tenant_id: str,
        display_name: str,
        quota: Quota | None,
        create_admin_key: bool,
    ) -> tuple[TenantRow, ApiKeyRow | None, str]:
        require_role(principal, Role.OPERATOR)
        tenant = self.store.create_tenant(
            tenant_id=tenant_id, display_name=display_name, quota=quota, actor=principal.key_id
        )
        if not create_admin_key:
            return tenant, None, ""
        key, secret = self.store.create_key(
            tenant_id=tenant.tenant_id,
            role=Role.ADMIN,
            description="first admin key",
            actor=principal.key_id,
        )
        return tenant, key, secret

    def get_tenant(self, principal: Principal, *, tenant_id: str) -> TenantRow:
        tenant_id = tenant_id or principal.tenant_id
        if tenant_id != principal.tenant_id and not principal.has(Role.OPERATOR):
            # Never reveal whether another tenant exists.
            raise NotFound(f"tenant {tenant_id!r} not found")
        return self.store.get_tenant(tenant_id)

    def get_usage(
        self,
        principal: Principal,
        usage: UsageRecorder,
        *,
        tenant_id: str,
        start_date: str,
        end_date: str,
        today: dt.date | None = None,
    ) -> UsageReport:
        """Per-day and total usage of a tenant (the caller's own unless it is an operator)."""
        require_role(principal, Role.ADMIN)
        tenant = self.get_tenant(principal, tenant_id=tenant_id).tenant_id
        end = _date(end_date, field="end_date") or today or dt.datetime.now(dt.UTC).date()
        start = _date(start_date, field="start_date") or end - dt.timedelta(days=DEFAULT_USAGE_DAYS)
        if start > end:
            raise InvalidArgument("must not be after end_date", field="start_date")
        if (end - start).days > MAX_USAGE_DAYS:
            raise InvalidArgument(f"the range may span at most {MAX_USAGE_DAYS} days", field="start_date")
        days = usage.query(tenant, start=start, end=end)
        return UsageReport(tenant, start, end, days, totals(days))

    def list_tenants(self, principal: Principal, *, size: int, token: str) -> Page:
        require_role(principal, Role.OPERATOR)
        limit = page_size(size)
        rows = self.store.list_tenants(after=decode_token(token), limit=limit)
        return Page(rows, next_token(rows, limit, "tenant_id"))

    def set_quota(self, principal: Principal, *, tenant_id: str, quota: Quota) -> TenantRow:
        require_role(principal, Role.OPERATOR)
        if not tenant_id:
            raise InvalidArgument("is required", field="tenant_id")
        return self.store.set_quota(
            tenant_id=tenant_id, quota=quota, actor_tenant=principal.tenant_id, actor=principal.key_id
        )

    def create_key(
        self, principal: Principal, *, role: Role | None, description: str
    ) -> tuple[ApiKeyRow, str]:
        require_role(principal, Role.ADMIN)
        if role is None:
            raise InvalidArgument("must be ROLE_USER, ROLE_ADMIN or ROLE_OPERATOR", field="role")
        if role > principal.role:
            raise InvalidArgument(
                f"cannot exceed the caller's role ({principal.role.name.lower()})", field="role"
            )
        return self.store.create_key(
            tenant_id=principal.tenant_id, role=role, description=description, actor=principal.key_id
        )

    def list_keys(self, principal: Principal, *, include_revoked: bool, size: int, token: str) -> Page:
        require_role(principal, Role.ADMIN)
        limit = page_size(size)
        rows = self.store.list_keys(
            tenant_id=principal.tenant_id,
            include_revoked=include_revoked,
            after=decode_token(token),
            limit=limit,
        )
        return Page(rows, next_token(rows, limit, "key_id"))

    def revoke_key(self, principal: Principal, *, key_id: str) -> ApiKeyRow:
        require_role(principal, Role.ADMIN)
        if not key_id or len(key_id) > 32:
            raise InvalidArgument("must be a key id of 1-32 characters", field="key_id")
        return self.store.revoke_key(tenant_id=principal.tenant_id, key_id=key_id, actor=principal.key_id)

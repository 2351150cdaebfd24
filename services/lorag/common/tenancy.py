"""Tenants, API keys and principals: the tenancy invariant lives here.

A request's tenant is the tenant of its API key, never a field of the request body. Keys are
random tokens stored as HMAC-SHA256 digests under the server secret (:class:`KeyHasher`); the
plaintext is shown once when the key is created. Rows written before the server secret existed
hold a plain SHA-256 digest (``hash_scheme = "sha256"``): they keep verifying and are rehashed
under the secret on their first successful use, as are rows hashed under the previous secret
after a rotation.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import logging
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from lorag.common.db import Base, Database, utcnow
from lorag.common.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated

KEY_PREFIX = "lrg_"
TENANT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
DEFAULT_TENANT = "default"
MIN_KEY_LENGTH = 20
MAX_KEY_LENGTH = 256
#: ``api_keys.hash_scheme`` values: HMAC-SHA256 under the server secret, and the older plain SHA-256.
SCHEME_HMAC = "hmac-sha256"
SCHEME_SHA256 = "sha256"
#: Shortest server secret accepted, in bytes.
MIN_SECRET_BYTES = 32

log = logging.getLogger("lorag.tenancy")


class Role(enum.IntEnum):
    """Roles in increasing power; a higher role includes every right of a lower one."""

    USER = 1
    ADMIN = 2
    OPERATOR = 3


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved from the API key by the server, never from the request body."""

    tenant_id: str
    role: Role
    key_id: str

    def has(self, role: Role) -> bool:
        return self.role >= role


@dataclass(frozen=True, slots=True)
class Quota:
    max_documents: int = 0
    max_adapters: int = 0
    max_requests_per_minute: int = 0
    max_storage_bytes: int = 0


class TenantRow(Base):
    __tablename__ = "tenants"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    max_documents: Mapped[int] = mapped_column(BigInteger, default=0)
    max_adapters: Mapped[int] = mapped_column(BigInteger, default=0)
    max_requests_per_minute: Mapped[int] = mapped_column(BigInteger, default=0)
    max_storage_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def quota(self) -> Quota:
        return Quota(
            max_documents=self.max_documents,
            max_adapters=self.max_adapters,
            max_requests_per_minute=self.max_requests_per_minute,
            max_storage_bytes=self.max_storage_bytes,
        )


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), index=True
    )
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash_scheme: Mapped[str] = mapped_column(String(16), default=SCHEME_HMAC)
    role: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEventRow(Base):
    """Append-only log of who did what, when."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(63), index=True)
    actor_key_id: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    trace_id: Mapped[str] = mapped_column(String(32), default="")


def legacy_hash(api_key: str) -> str:
    """The plain SHA-256 digest rows created before the server secret hold (verify-only)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


class KeyHasher:
    """HMAC-SHA256 of API keys under the server secret; verifies the older forms too.

    ``previous`` are secrets before a rotation: digests under them (and plain SHA-256 digests)
    still match, and :meth:`TenantStore.find_key` rewrites such rows under ``secret``.
    """

    def __init__(self, secret: bytes, previous: Sequence[bytes] = ()) -> None:
        for s in (secret, *previous):
            if len(s) < MIN_SECRET_BYTES:
                raise ValueError(f"the server secret must have at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self._previous = tuple(p for p in previous if p != secret)

    def __repr__(self) -> str:
        return f"KeyHasher(previous={len(self._previous)})"

    def digest(self, api_key: str) -> str:
        """The digest a key is stored and cached under."""
        return hmac.new(self._secret, api_key.encode("utf-8"), hashlib.sha256).hexdigest()

    def candidates(self, api_key: str) -> list[tuple[str, str]]:
        """``(scheme, digest)`` pairs a stored row may hold for ``api_key``, the current one first."""
        key = api_key.encode("utf-8")
        out = [(SCHEME_HMAC, self.digest(api_key))]
        out += [(SCHEME_HMAC, hmac.new(p, key, hashlib.sha256).hexdigest()) for p in self._previous]
        out.append((SCHEME_SHA256, legacy_hash(api_key)))
        return out


_process_hasher: KeyHasher | None = None
_process_hasher_lock = threading.Lock()


def process_hasher() -> KeyHasher:
    """A hasher with a random secret of this process only: for stores that are given none (tests,
    tools). Servers pass :func:`lorag.common.auth.load_key_hasher` so keys verify everywhere."""
    global _process_hasher
    with _process_hasher_lock:
        if _process_hasher is None:
            _process_hasher = KeyHasher(secrets.token_bytes(MIN_SECRET_BYTES))
        return _process_hasher


def new_api_key() -> tuple[str, str]:
    """A fresh ``(key_id, api_key)`` pair; the key embeds its id for operators' convenience."""
    key_id = secrets.token_hex(8)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def validate_tenant_id(tenant_id: str) -> str:
    if not TENANT_ID_RE.fullmatch(tenant_id or ""):
        raise InvalidArgument(
            "must be 2-63 characters of lower-case letters, digits and '-', starting with a letter or digit",
            field="tenant_id",
        )
    return tenant_id


def validate_text(value: str, *, field: str, max_len: int = 200) -> str:
    if len(value) > max_len:
        raise InvalidArgument(f"at most {max_len} characters (got {len(value)})", field=field)
    if any(ord(ch) < 32 and ch not in "\t" for ch in value):
        raise InvalidArgument("control characters are not allowed", field=field)
    return value


class TenantStore:
    """Registry operations on tenants, keys and the audit log (synchronous; call off the loop)."""

    def __init__(self, db: Database, hasher: KeyHasher | None = None) -> None:
        self.db = db
        self.hasher = hasher or process_hasher()

    # -- tenants ---------------------------------------------------------------------------
    def create_tenant(
        self, *, tenant_id: str, display_name: str = "", quota: Quota | None = None, actor: str
    ) -> TenantRow:
        validate_tenant_id(tenant_id)
        validate_text(display_name, field="display_name")
        quota = quota or Quota()
        _check_quota(quota)
        row = TenantRow(tenant_id=tenant_id, display_name=display_name, **_quota_cols(quota))
        with self.db.session.begin() as s:
            if s.get(TenantRow, tenant_id) is not None:
                raise AlreadyExists(f"tenant {tenant_id!r} already exists")
            s.add(row)
            s.add(_audit(tenant_id, actor, "tenant.create", tenant_id))
            try:
                s.flush()
            except IntegrityError as exc:
                raise AlreadyExists(f"tenant {tenant_id!r} already exists") from exc
        return row

    def get_tenant(self, tenant_id: str) -> TenantRow:
        with self.db.session() as s:
            row = s.get(TenantRow, tenant_id)
        if row is None:
            raise NotFound(f"tenant {tenant_id!r} not found")
        return row

    def list_tenants(self, *, after: str, limit: int) -> list[TenantRow]:
        with self.db.session() as s:
            q = select(TenantRow).where(TenantRow.tenant_id > after)
            return list(s.scalars(q.order_by(TenantRow.tenant_id).limit(limit)))

    def set_quota(self, *, tenant_id: str, quota: Quota, actor_tenant: str, actor: str) -> TenantRow:
        _check_quota(quota)
        with self.db.session.begin() as s:
            row = s.get(TenantRow, tenant_id)
            if row is None:
                raise NotFound(f"tenant {tenant_id!r} not found")
            for name, value in _quota_cols(quota).items():
                setattr(row, name, value)
            s.add(_audit(actor_tenant, actor, "tenant.set_quota", tenant_id, _quota_cols(quota)))
        return row

    # -- keys ------------------------------------------------------------------------------
    def create_key(
        self,
        *,
        tenant_id: str,
        role: Role,
        description: str = "",
        actor: str,
        api_key: str | None = None,
    ) -> tuple[ApiKeyRow, str]:
        """Create a key; ``api_key`` imports a given secret (bootstrap), else one is generated."""
        validate_text(description, field="description")
        if api_key is None:
            key_id, api_key = new_api_key()
        else:
            if not MIN_KEY_LENGTH <= len(api_key) <= MAX_KEY_LENGTH or not api_key.isprintable():
                raise InvalidArgument(
                    f"must be {MIN_KEY_LENGTH}-{MAX_KEY_LENGTH} printable characters",
                    field="api_key",
                )
            key_id = secrets.token_hex(8)
        row = ApiKeyRow(
            key_id=key_id,
            tenant_id=tenant_id,
            key_hash=self.hasher.digest(api_key),
            hash_scheme=SCHEME_HMAC,
            role=role.name,
            description=description,
            created_by=actor,
        )
        with self.db.session.begin() as s:
            if s.get(TenantRow, tenant_id) is None:
                raise NotFound(f"tenant {tenant_id!r} not found")
            s.add(row)
            s.add(_audit(tenant_id, actor, "api_key.create", key_id, {"role": role.name}))
        return row, api_key

    def list_keys(self, *, tenant_id: str, include_revoked: bool, after: str, limit: int) -> list[ApiKeyRow]:
        with self.db.session() as s:
            q = select(ApiKeyRow).where(ApiKeyRow.tenant_id == tenant_id, ApiKeyRow.key_id > after)
            if not include_revoked:
                q = q.where(ApiKeyRow.revoked_at.is_(None))
            return list(s.scalars(q.order_by(ApiKeyRow.key_id).limit(limit)))

    def revoke_key(self, *, tenant_id: str, key_id: str, actor: str) -> ApiKeyRow:
        with self.db.session.begin() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"API key {key_id!r} not found")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                s.add(_audit(tenant_id, actor, "api_key.revoke", key_id))
        return row

    def find_key(self, api_key: str) -> ApiKeyRow | None:
        """The valid (not revoked) key row for a presented key string.

        A row stored under an older scheme (plain SHA-256, or the secret before a rotation) is
        rewritten under the current secret here, on its first successful use.
        """
        candidates = self.hasher.candidates(api_key)
        with self.db.session() as s:
            q = select(ApiKeyRow).where(ApiKeyRow.key_hash.in_([d for _, d in candidates]))
            rows = list(s.scalars(q))
        match: tuple[ApiKeyRow, int] | None = None
        for row in rows:
            for i, (scheme, digest) in enumerate(candidates):
                # The lookup already matched; compare in constant time for defence in depth, and
                # only against the scheme the row says it holds.
                if row.hash_scheme == scheme and hmac.compare_digest(row.key_hash, digest):
                    match = (row, i)
        if match is None or match[0].revoked_at is not None:
            return None
        row, index = match
        if index:
            self._rehash(row, old=candidates[index][1], new=candidates[0][1])
        return row

    def _rehash(self, row: ApiKeyRow, *, old: str, new: str) -> None:
        with self.db.session.begin() as s:
            current = s.get(ApiKeyRow, row.key_id)
            if current is None or current.key_hash != old:  # revoked, deleted or done elsewhere
                return
            current.key_hash, current.hash_scheme = new, SCHEME_HMAC
        log.info("API key %s rehashed under the current server secret", row.key_id)

    def authenticate(self, api_key: str) -> Principal:
        if not api_key:
            raise Unauthenticated("missing API key: send 'authorization: Bearer <key>' metadata")
        row = self.find_key(api_key)
        if row is None:
            raise Unauthenticated("invalid or revoked API key")
        return Principal(tenant_id=row.tenant_id, role=Role[row.role], key_id=row.key_id)

    def audit_events(self, tenant_id: str) -> list[AuditEventRow]:
        with self.db.session() as s:
            q = select(AuditEventRow).where(AuditEventRow.tenant_id == tenant_id)
            return list(s.scalars(q.order_by(AuditEventRow.id)))

    # -- bootstrap ---------------------------------------------------------------------------
    def bootstrap(self, api_key: str | None = None) -> str | None:
        """Create the ``default`` tenant and an operator key on first run.

        Returns the new key's plaintext when one was created, else None. A given ``api_key`` is
        imported (idempotently) instead of generating one.
        """
        with self.db.session.begin() as s:
            if s.get(TenantRow, DEFAULT_TENANT) is None:
                s.add(TenantRow(tenant_id=DEFAULT_TENANT, display_name="Default tenant"))
                s.add(_audit(DEFAULT_TENANT, "bootstrap", "tenant.create", DEFAULT_TENANT))
            has_operator = s.scalars(
                select(ApiKeyRow.key_id).where(ApiKeyRow.role == Role.OPERATOR.name)
            ).first()
        if api_key is not None:
            if self.find_key(api_key) is not None:
                return None
            self.create_key(
                tenant_id=DEFAULT_TENANT,
                role=Role.OPERATOR,
                description="bootstrap operator key (from environment)",
                actor="bootstrap",
                api_key=api_key,
            )
            return None
        if has_operator:
            return None
        _, plaintext = self.create_key(
            tenant_id=DEFAULT_TENANT,
            role=Role.OPERATOR,
            description="bootstrap operator key",
            actor="bootstrap",
        )
        return plaintext


def _quota_cols(q: Quota) -> dict[str, int]:
    return {
        "max_documents": q.max_documents,
        "max_adapters": q.max_adapters,
        "max_requests_per_minute": q.max_requests_per_minute,
        "max_storage_bytes": q.max_storage_bytes,
    }


def _check_quota(q: Quota) -> None:
    for name, value in _quota_cols(q).items():
        if value < 0:
            raise InvalidArgument(f"must be >= 0 (got {value})", field=f"quota.{name}")


def _audit(
    tenant_id: str, actor: str, action: str, target: str, details: dict | None = None, trace_id: str = ""
) -> AuditEventRow:
    return AuditEventRow(
        tenant_id=tenant_id,
        actor_key_id=actor,
        action=action,
        target=target,
        details=details or {},
        trace_id=trace_id,
    )

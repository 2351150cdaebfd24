"""Authentication of gRPC calls: ``authorization: Bearer <key>`` metadata -> :class:`Principal`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from lorag.common.errors import PermissionDenied, Unauthenticated
from lorag.common.ratelimit import AuthFailures
from lorag.common.tenancy import Principal, Role, TenantStore, hash_key

_CACHE_LIMIT = 10_000


def bearer_token(metadata: Iterable[tuple[str, str | bytes]]) -> str:
    """The API key from call metadata; raises Unauthenticated when absent or malformed."""
    for key, value in metadata:
        if key.lower() != "authorization":
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("malformed authorization metadata: expected 'Bearer <api key>'")
        return token.strip()
    raise Unauthenticated("missing API key: send 'authorization: Bearer <key>' metadata")


class Authenticator:
    """Resolves keys to principals with a short positive cache.

    The cache TTL stays below one second, so a revoked key is rejected by every replica within a
    second of its revocation. Database work runs in a thread to keep the event loop free.
    """

    def __init__(
        self, store: TenantStore, *, ttl_s: float = 0.5, failures: AuthFailures | None = None
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.failures = failures if failures is not None else AuthFailures(limit=0)  # lockout per peer
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def authenticate(
        self, metadata: Iterable[tuple[str, str | bytes]], *, peer: str = "", service: str = ""
    ) -> Principal:
        token = bearer_token(metadata)
        digest = hash_key(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        self.failures.check(peer, service=service)  # a locked-out peer never reaches the registry
        try:
            principal = await asyncio.to_thread(self.store.authenticate, token)
        except Unauthenticated:
            self.failures.failed(peer)
            raise
        if self.ttl_s > 0:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[digest] = (now + self.ttl_s, principal)
        return principal


def require_role(principal: Principal, role: Role) -> None:
    if not principal.has(role):
        raise PermissionDenied(
            f"this call needs the {role.name.lower()} role; the key has {principal.role.name.lower()}"
        )

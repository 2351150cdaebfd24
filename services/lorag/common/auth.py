"""Authentication of gRPC calls: ``authorization: Bearer <key>`` metadata -> :class:`Principal`,
and the server secret API keys are hashed under."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from lorag.common.errors import FailedPrecondition, PermissionDenied, Unauthenticated
from lorag.common.ratelimit import AuthFailures
from lorag.common.tenancy import MIN_SECRET_BYTES, KeyHasher, Principal, Role, TenantStore

if TYPE_CHECKING:
    from lorag.common.settings import LoragSettings

_CACHE_LIMIT = 10_000
#: The embedded default's server secret, under the data dir (mode 0600).
SECRET_FILE = "auth-secret"

log = logging.getLogger("lorag.auth")


def load_key_hasher(settings: LoragSettings) -> KeyHasher:
    """The hasher of this deployment: ``LORAG_AUTH_SECRET`` (and ``LORAG_AUTH_PREVIOUS_SECRET``),
    else the secret kept in ``<data dir>/auth-secret``, created on first use."""
    if settings.auth_secret is not None:
        secret = settings.auth_secret.get_secret_value().encode("utf-8")
        source = "LORAG_AUTH_SECRET"
    else:
        secret = embedded_secret(settings.data_dir)
        source = str(settings.data_dir / SECRET_FILE)
    previous = ()
    if settings.auth_previous_secret is not None:
        previous = (settings.auth_previous_secret.get_secret_value().encode("utf-8"),)
    try:
        return KeyHasher(secret, previous)
    except ValueError:
        raise FailedPrecondition(
            f"the server secret from {source} (or LORAG_AUTH_PREVIOUS_SECRET) is shorter than "
            f"{MIN_SECRET_BYTES} bytes"
        ) from None


def embedded_secret(data_dir: Path) -> bytes:
    """The secret in ``data_dir/auth-secret``; created once (mode 0600) when absent.

    Processes starting together agree on one secret: each writes a private temporary file and
    hard-links it into place, which only the first one succeeds at; the others read the winner's.
    """
    path = Path(data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
                log.info("created the server secret of API key hashes in %s", path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        log.warning("%s was readable by others (mode %o); now 0600", path, mode)
    secret = path.read_bytes().strip()
    if not secret:
        raise FailedPrecondition(f"{path} is empty: remove it to create a new server secret")
    return secret


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
        digest = self.store.hasher.digest(token)
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

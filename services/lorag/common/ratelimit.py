"""Per-tenant request limits and the failed-authentication lockout, applied to every RPC.

:class:`TenantLimits` keeps, per tenant, a token bucket (requests per second with a burst) and a
count of requests in progress. :class:`AuthFailures` counts failed authentications per peer
address in a fixed window and, past the limit, refuses that peer's next authentications without
asking the registry until the window has passed. Both answer ``RESOURCE_EXHAUSTED``
(:class:`~lorag.common.errors.ResourceExhausted`) with a message naming the limit and its
setting, and a retry hint (``retry_after_s``) that :mod:`lorag.common.status` sends to the client
as trailing metadata.

State lives in the process: the in-process host enforces a limit for the whole platform, a Ray
Serve replica for itself (see README, "Load and quotas"). Memory is bounded: entries of idle
tenants and of peers whose window has passed expire, and neither table grows past its cap.
This module imports nothing from grpc.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from lorag.common import metrics
from lorag.common.errors import ResourceExhausted

log = logging.getLogger("lorag.ratelimit")

#: Retry hint of a request refused by the concurrency limit (no request's end can be predicted).
CONCURRENCY_RETRY_S = 0.1
#: Expired entries dropped per admitted request (amortises the sweep).
_SWEEP_STEPS = 4

RATE_SETTINGS = "LORAG_RATE_LIMIT_REQUESTS_PER_S / LORAG_RATE_LIMIT_BURST"
CONCURRENCY_SETTING = "LORAG_RATE_LIMIT_MAX_CONCURRENT"
AUTH_SETTINGS = "LORAG_RATE_LIMIT_AUTH_FAILURES / LORAG_RATE_LIMIT_AUTH_WINDOW_S"


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A tenant's effective request rate: ``rate`` tokens per second, ``burst`` at most.

    ``rate == 0`` means unlimited. ``source`` names where the limit comes from (for messages).
    """

    rate: float
    burst: int
    source: str = RATE_SETTINGS

    @classmethod
    def of(cls, *, rate: float, burst: int) -> RateLimit:
        """The platform default: ``burst == 0`` means one second's worth (at least one request)."""
        return cls(rate=rate, burst=burst if burst > 0 else max(1, math.ceil(rate)))

    def for_quota(self, requests_per_minute: int, *, burst_setting: int) -> RateLimit:
        """The limit of a tenant whose quota sets ``max_requests_per_minute`` (> 0).

        Its burst keeps the platform's burst-to-rate ratio when both are set, else it is one
        second's worth of the tenant's own rate (at least one request).
        """
        rate = requests_per_minute / 60.0
        if burst_setting > 0 and self.rate > 0:
            burst = max(1, round(rate * burst_setting / self.rate))
        else:
            burst = max(1, math.ceil(rate))
        return RateLimit(
            rate=rate, burst=burst, source=f"the tenant's quota max_requests_per_minute={requests_per_minute}"
        )


class TokenBucket:
    """A token bucket: ``capacity`` tokens, refilled at ``rate`` per second; one per request."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, *, rate: float, capacity: int, now: float) -> None:
        self.rate = rate
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 when taken, else the seconds until one is available."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def full_at(self) -> float:
        """When the bucket is full again if nothing is taken (a forgotten bucket restarts full)."""
        return self.updated + (self.capacity - self.tokens) / self.rate

    def reshape(self, *, rate: float, capacity: int, now: float) -> None:
        """Apply a changed limit: the headroom grows or shrinks by the change of capacity."""
        self._refill(now)
        self.tokens = min(float(capacity), max(0.0, self.tokens + capacity - self.capacity))
        self.rate = rate
        self.capacity = float(capacity)


class _Tenant:
    __slots__ = ("bucket", "inflight", "quota_at", "quota_rpm", "refreshing", "seen")

    def __init__(self, now: float) -> None:
        self.bucket: TokenBucket | None = None
        self.inflight = 0
        self.seen = now
        self.quota_rpm: int | None = None  # None: not read from the registry yet
        self.quota_at = 0.0
        self.refreshing = False


class Slot:
    """A request's place in its tenant's concurrency limit; :meth:`release` is idempotent."""

    __slots__ = ("_limits", "_state", "_tenant")

    def __init__(self, limits: TenantLimits, tenant_id: str, state: _Tenant) -> None:
        self._limits = limits
        self._tenant = tenant_id
        self._state: _Tenant | None = state

    def release(self) -> None:
        state, self._state = self._state, None
        if state is not None:
            self._limits._leave(self._tenant, state)


class TenantLimits:
    """Token-bucket rate and concurrency limits per tenant, in this process.

    ``quota_lookup(tenant_id)`` returns the tenant's ``max_requests_per_minute`` from the
    registry (0: the platform default); it is called in a thread, at most once per
    ``quota_ttl_s`` per tenant: a tenant's first request waits for it, later re-reads run in the
    background while requests keep using the value read before. Entries of
    tenants idle for ``idle_s`` (and whose bucket has refilled, so forgetting it changes nothing)
    expire; at most ``max_tenants`` are kept, least recently used first out.
    """

    def __init__(
        self,
        *,
        rate: float = 0.0,
        burst: int = 0,
        max_concurrent: int = 0,
        idle_s: float = 300.0,
        max_tenants: int = 10_000,
        quota_ttl_s: float = 10.0,
        quota_lookup: Callable[[str], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default = RateLimit.of(rate=rate, burst=burst)
        self.burst_setting = burst
        self.max_concurrent = max_concurrent
        self.idle_s = idle_s
        self.max_tenants = max(1, max_tenants)
        self.quota_ttl_s = quota_ttl_s
        self.quota_lookup = quota_lookup
        self.clock = clock
        self._tenants: OrderedDict[str, _Tenant] = OrderedDict()
        self._lock = threading.Lock()
        self._background: set[asyncio.Task] = set()

    @classmethod
    def from_settings(cls, settings, *, quota_lookup: Callable[[str], int] | None = None) -> TenantLimits:
        return cls(
            rate=settings.rate_limit_requests_per_s,
            burst=settings.rate_limit_burst,
            max_concurrent=settings.rate_limit_max_concurrent,
            idle_s=settings.rate_limit_idle_s,
            max_tenants=settings.rate_limit_max_tenants,
            quota_ttl_s=settings.rate_limit_quota_ttl_s,
            quota_lookup=quota_lookup,
        )

    def __len__(self) -> int:
        return len(self._tenants)

    # -- rate ------------------------------------------------------------------------------------
    def limit_of(self, tenant_id: str) -> RateLimit:
        """The tenant's effective rate limit as last read (quota override or platform default)."""
        return self._limit(self._tenants.get(tenant_id))

    def _limit(self, state: _Tenant | None) -> RateLimit:
        rpm = state.quota_rpm if state is not None else None
        if rpm:
            return self.default.for_quota(rpm, burst_setting=self.burst_setting)
        return self.default

    async def admit(self, tenant_id: str, *, service: str = "") -> None:
        """Count one request against the tenant's rate; RESOURCE_EXHAUSTED when over it."""
        now = self.clock()
        with self._lock:
            state = self._touch(tenant_id, now)
            refresh = self._claim_refresh(state, now)
        if refresh and state.quota_rpm is None:
            await self._refresh(tenant_id, state)  # the tenant's first request: read its quota
        elif refresh:  # a stale quota: read it again in the background, use the old value meanwhile
            task = asyncio.get_running_loop().create_task(self._refresh(tenant_id, state))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        limit = self._limit(state)
        if limit.rate <= 0:
            return
        with self._lock:
            bucket = state.bucket
            if bucket is None:
                bucket = state.bucket = TokenBucket(rate=limit.rate, capacity=limit.burst, now=now)
            elif bucket.rate != limit.rate or bucket.capacity != limit.burst:
                bucket.reshape(rate=limit.rate, capacity=limit.burst, now=now)
            wait = bucket.take(now)
        if wait > 0:
            metrics.RATE_LIMIT_REJECTIONS.labels(
                service, metrics.tenant_label(tenant_id), "requests_per_s"
            ).inc()
            raise ResourceExhausted(
                f"tenant {tenant_id!r} is over its rate limit of {limit.rate:g} requests/s "
                f"(burst {limit.burst}; {limit.source}); retry in {_ms(wait)} ms",
                retry_after_s=wait,
            )

    def _claim_refresh(self, state: _Tenant, now: float) -> bool:
        """Whether this request reads the tenant's quota (one reader at a time per tenant)."""
        if self.quota_lookup is None or state.refreshing:
            return False
        if state.quota_rpm is not None and now - state.quota_at < self.quota_ttl_s:
            return False
        state.refreshing = True
        return True

    async def _refresh(self, tenant_id: str, state: _Tenant) -> None:
        assert self.quota_lookup is not None
        try:
            rpm = int(await asyncio.to_thread(self.quota_lookup, tenant_id))
        except Exception:  # noqa: BLE001 - a registry hiccup keeps the limit read before
            log.warning("could not read the quota of tenant %s; keeping the previous limit", tenant_id)
            rpm = state.quota_rpm if state.quota_rpm is not None else 0
        finally:
            state.refreshing = False
        state.quota_rpm = max(0, rpm)
        state.quota_at = self.clock()

    # -- concurrency -----------------------------------------------------------------------------
    def enter(self, tenant_id: str, *, service: str = "") -> Slot | None:
        """Take one of the tenant's concurrent places (None when unlimited); release it after."""
        if self.max_concurrent <= 0:
            return None
        with self._lock:
            state = self._touch(tenant_id, self.clock())
            inflight = state.inflight
            if inflight < self.max_concurrent:
                state.inflight += 1
                return Slot(self, tenant_id, state)
        metrics.RATE_LIMIT_REJECTIONS.labels(service, metrics.tenant_label(tenant_id), "concurrency").inc()
        raise ResourceExhausted(
            f"tenant {tenant_id!r} has {inflight} requests in progress; the limit is "
            f"{self.max_concurrent} ({CONCURRENCY_SETTING}); retry in {_ms(CONCURRENCY_RETRY_S)} ms",
            retry_after_s=CONCURRENCY_RETRY_S,
        )

    def inflight(self, tenant_id: str) -> int:
        state = self._tenants.get(tenant_id)
        return state.inflight if state is not None else 0

    def _leave(self, tenant_id: str, state: _Tenant) -> None:
        with self._lock:
            state.inflight = max(0, state.inflight - 1)
            state.seen = self.clock()
            if self._tenants.get(tenant_id) is state:
                self._tenants.move_to_end(tenant_id)

    # -- bounded memory --------------------------------------------------------------------------
    def _touch(self, tenant_id: str, now: float) -> _Tenant:
        """The tenant's entry, most recently used; sweeps a few expired ones (lock held)."""
        tenants = self._tenants
        state = tenants.get(tenant_id)
        if state is None:
            while len(tenants) >= self.max_tenants:
                tenants.popitem(last=False)
            state = tenants[tenant_id] = _Tenant(now)
        else:
            tenants.move_to_end(tenant_id)
        state.seen = now
        self._sweep(now)
        return state

    def _sweep(self, now: float) -> None:
        tenants = self._tenants
        for _ in range(_SWEEP_STEPS):
            if len(tenants) <= 1:
                return
            tenant_id, oldest = next(iter(tenants.items()))
            if not self._expired(oldest, now):
                return
            del tenants[tenant_id]

    def _expired(self, state: _Tenant, now: float) -> bool:
        if state.inflight > 0 or state.refreshing or now - state.seen < self.idle_s:
            return False
        return state.bucket is None or state.bucket.full_at() <= now

    def expire(self) -> int:
        """Drop every expired entry now (tests, diagnostics); the number dropped."""
        now = self.clock()
        with self._lock:
            expired = [t for t, s in self._tenants.items() if self._expired(s, now)]
            for tenant_id in expired:
                del self._tenants[tenant_id]
        return len(expired)


class AuthFailures:
    """Failed authentications per peer address in a fixed window of ``window_s`` seconds.

    After ``limit`` failures in one window, :meth:`check` refuses the peer until the window
    (started by its first failure) has passed; successful authentications neither count nor
    reset the count. At most ``max_peers`` windows are kept (oldest out); windows that have
    passed expire. ``limit == 0`` turns the lockout off.
    """

    def __init__(
        self,
        *,
        limit: int = 20,
        window_s: float = 60.0,
        max_peers: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_peers = max(1, max_peers)
        self.clock = clock
        self._peers: OrderedDict[str, list[float]] = OrderedDict()  # peer -> [window start, count]
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> AuthFailures:
        return cls(
            limit=settings.rate_limit_auth_failures,
            window_s=settings.rate_limit_auth_window_s,
            max_peers=settings.rate_limit_auth_max_peers,
        )

    def __len__(self) -> int:
        return len(self._peers)

    def check(self, peer: str, *, service: str = "") -> None:
        """RESOURCE_EXHAUSTED while ``peer`` is locked out; call before asking the registry."""
        if self.limit <= 0 or not peer:
            return
        now = self.clock()
        with self._lock:
            self._sweep(now)
            entry = self._peers.get(peer)
            if entry is None or entry[1] < self.limit:
                return
            wait = entry[0] + self.window_s - now
            count = int(entry[1])
        metrics.AUTH_LOCKOUT_REJECTIONS.labels(service).inc()
        raise ResourceExhausted(
            f"too many failed authentications from this address ({count} within "
            f"{self.window_s:g} s; {AUTH_SETTINGS}); retry in {_ms(wait)} ms",
            retry_after_s=wait,
            auto_retry=False,
        )

    def failed(self, peer: str) -> None:
        """Count one failed authentication of ``peer`` (a key the registry did not accept)."""
        if self.limit <= 0 or not peer:
            return
        now = self.clock()
        with self._lock:
            self._sweep(now)
            entry = self._peers.get(peer)
            if entry is None:
                while len(self._peers) >= self.max_peers:
                    self._peers.popitem(last=False)
                entry = self._peers[peer] = [now, 0]
            entry[1] += 1
            locked = entry[1] == self.limit
        if locked:
            metrics.AUTH_LOCKOUTS.inc()
            log.warning(
                "peer %s locked out for %g s after %d failed authentications", peer, self.window_s, self.limit
            )

    def _sweep(self, now: float) -> None:
        """Drop windows that have passed (ordered by start, so only the front needs looking at)."""
        peers = self._peers
        while peers:
            peer, (start, _count) = next(iter(peers.items()))
            if now - start < self.window_s:
                return
            del peers[peer]


def peer_address(peer: str | None) -> str:
    """The address part of a gRPC peer string: ``ipv4:10.0.0.7:51234`` -> ``ipv4:10.0.0.7``.

    The port is dropped so that new connections from one host share one count.
    """
    if not peer:
        return ""
    scheme, sep, rest = peer.partition(":")
    if not sep or scheme not in {"ipv4", "ipv6"}:
        return peer
    host, colon, port = rest.rpartition(":")
    return f"{scheme}:{host}" if colon and port.isdigit() and host else peer

"""Per-tenant rate and concurrency limits, the failed-authentication lockout, their bounds."""

import asyncio

import grpc
import pytest
from prometheus_client import REGISTRY

from lorag.common import metrics
from lorag.common.auth import Authenticator
from lorag.common.errors import ResourceExhausted, Unauthenticated
from lorag.common.ratelimit import AuthFailures, RateLimit, TenantLimits, TokenBucket, peer_address
from lorag.common.status import retry_metadata
from lorag.common.tenancy import MIN_SECRET_BYTES, KeyHasher, Principal, Role


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def rejections(tenant: str, limit: str, service: str = "svc") -> float:
    value = REGISTRY.get_sample_value(
        "lorag_rate_limit_rejections_total", {"service": service, "tenant": tenant, "limit": limit}
    )
    return value or 0.0


# -- token bucket -------------------------------------------------------------------------------
def test_bucket_allows_the_burst_then_names_the_wait_and_refills():
    bucket = TokenBucket(rate=2.0, capacity=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token every 1/rate seconds
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    assert bucket.full_at() == pytest.approx(0.5 + 3 / 2.0)
    bucket.take(100.0)  # a long pause refills up to the capacity, never above
    assert bucket.tokens == pytest.approx(2.0)


def test_platform_burst_defaults_to_one_second_and_quotas_keep_its_ratio():
    assert RateLimit.of(rate=2.5, burst=0).burst == 3
    assert RateLimit.of(rate=0.1, burst=0).burst == 1
    default = RateLimit.of(rate=10, burst=20)  # a burst of two seconds
    tenant = default.for_quota(300, burst_setting=20)  # 5 requests/s
    assert (tenant.rate, tenant.burst) == (5.0, 10)
    assert "max_requests_per_minute=300" in tenant.source
    assert RateLimit.of(rate=0, burst=0).for_quota(90, burst_setting=0).burst == 2


# -- tenant limits ------------------------------------------------------------------------------
async def test_rate_limit_refuses_with_the_setting_named_and_spares_other_tenants():
    clock = Clock()
    limits = TenantLimits(rate=1.0, burst=2, clock=clock)
    before = rejections("t-noisy", "requests_per_s")
    await limits.admit("t-noisy", service="svc")
    await limits.admit("t-noisy", service="svc")
    with pytest.raises(ResourceExhausted) as info:
        await limits.admit("t-noisy", service="svc")
    assert "LORAG_RATE_LIMIT_REQUESTS_PER_S" in info.value.message and "1 requests/s" in info.value.message
    assert info.value.retry_after_s == pytest.approx(1.0)
    assert "retry in 1000 ms" in info.value.message
    assert rejections("t-noisy", "requests_per_s") == before + 1
    await limits.admit("t-quiet", service="svc")  # another tenant has its own bucket
    clock.advance(1.0)
    await limits.admit("t-noisy", service="svc")


async def test_no_rate_means_unlimited():
    limits = TenantLimits(rate=0.0, clock=Clock())
    for _ in range(1000):
        await limits.admit("t-free")


async def test_a_tenant_quota_overrides_the_rate_and_is_reread_after_its_ttl():
    clock = Clock()
    reads = []
    quotas = {"t-small": 60, "t-default": 0}

    def lookup(tenant_id):
        reads.append(tenant_id)
        return quotas[tenant_id]

    limits = TenantLimits(rate=100.0, burst=0, quota_ttl_s=10.0, quota_lookup=lookup, clock=clock)
    await limits.admit("t-small")  # 60 per minute: 1/s, burst 1
    with pytest.raises(ResourceExhausted) as info:
        await limits.admit("t-small")
    assert "the tenant's quota max_requests_per_minute=60" in info.value.message
    for _ in range(50):
        await limits.admit("t-default")  # 0 in the quota: the platform default
    assert reads == ["t-small", "t-default"]  # read once per TTL, not per request
    quotas["t-small"] = 6000
    clock.advance(10.0)
    await limits.admit("t-small")  # one token earned at the old rate; the new quota is being read
    with pytest.raises(ResourceExhausted):  # the old quota holds meanwhile
        await limits.admit("t-small")
    for _ in range(100):
        if limits.limit_of("t-small").rate == 100.0:
            break
        await asyncio.sleep(0.01)
    assert reads[-1] == "t-small" and limits.limit_of("t-small").rate == 100.0
    for _ in range(20):
        await limits.admit("t-small")


async def test_a_failing_quota_lookup_keeps_the_previous_limit():
    clock = Clock()
    answers = [60]

    def lookup(tenant_id):
        if not answers:
            raise ConnectionError("registry unreachable")
        return answers.pop()

    limits = TenantLimits(rate=0.0, quota_ttl_s=1.0, quota_lookup=lookup, clock=clock)
    await limits.admit("t-a")
    clock.advance(2.0)
    await limits.admit("t-a")  # starts a re-read that fails
    await asyncio.gather(*limits._background)
    assert limits.limit_of("t-a").rate == 1.0


def test_concurrency_limit_counts_places_and_release_is_idempotent():
    limits = TenantLimits(max_concurrent=2, clock=Clock())
    before = rejections("t-busy", "concurrency")
    a = limits.enter("t-busy", service="svc")
    b = limits.enter("t-busy", service="svc")
    with pytest.raises(ResourceExhausted) as info:
        limits.enter("t-busy", service="svc")
    assert "2 requests in progress" in info.value.message
    assert "LORAG_RATE_LIMIT_MAX_CONCURRENT" in info.value.message
    assert info.value.retry_after_s is not None and info.value.retry_after_s > 0
    assert rejections("t-busy", "concurrency") == before + 1
    assert limits.enter("t-other", service="svc") is not None
    a.release()
    a.release()
    assert limits.inflight("t-busy") == 1
    c = limits.enter("t-busy", service="svc")
    assert limits.inflight("t-busy") == 2
    b.release()
    c.release()
    assert limits.inflight("t-busy") == 0


def test_no_concurrency_limit_takes_no_place():
    limits = TenantLimits(max_concurrent=0, clock=Clock())
    assert limits.enter("t-a") is None
    assert len(limits) == 0


# -- bounded memory -----------------------------------------------------------------------------
async def test_idle_tenants_expire_once_their_bucket_has_refilled():
    clock = Clock()
    limits = TenantLimits(rate=1.0, burst=100, idle_s=10.0, clock=clock)
    for i in range(50):
        await limits.admit(f"t-{i}")
    for _ in range(100):
        await limits.admit("t-empty")  # drains its bucket: refilled only after 100 s
    assert len(limits) == 51
    clock.advance(11.0)
    assert limits.expire() == 50  # idle and full again (a forgotten bucket restarts full)
    assert len(limits) == 1
    for _ in range(11):  # still remembered: 11 tokens earned, not a full bucket of 100
        await limits.admit("t-empty")
    with pytest.raises(ResourceExhausted):
        await limits.admit("t-empty")
    clock.advance(101.0)
    assert limits.expire() == 1 and len(limits) == 0


async def test_requests_sweep_expired_tenants_without_an_explicit_expire():
    clock = Clock()
    limits = TenantLimits(rate=10.0, burst=50, idle_s=5.0, clock=clock)
    for i in range(200):
        await limits.admit(f"t-old-{i}")
        clock.advance(0.001)
    clock.advance(10.0)
    for i in range(100):  # each request drops a few expired entries
        await limits.admit(f"t-new-{i % 3}")
    assert len(limits) == 3


def test_tenants_in_progress_do_not_expire():
    clock = Clock()
    limits = TenantLimits(max_concurrent=5, idle_s=1.0, clock=clock)
    slot = limits.enter("t-long")
    clock.advance(60.0)
    assert limits.expire() == 0 and limits.inflight("t-long") == 1
    slot.release()
    clock.advance(2.0)
    assert limits.expire() == 1


async def test_the_number_of_tenants_kept_is_capped():
    clock = Clock()
    limits = TenantLimits(rate=5.0, max_tenants=100, clock=clock)
    for i in range(5000):
        await limits.admit(f"t-{i}")
    assert len(limits) == 100
    await limits.admit("t-4999")  # the most recent ones are kept


# -- failed authentications ---------------------------------------------------------------------
def test_peers_are_locked_out_after_the_limit_until_the_window_passes():
    clock = Clock()
    failures = AuthFailures(limit=3, window_s=60.0, clock=clock)
    peer = "ipv4:10.0.0.7"
    for _ in range(3):
        failures.check(peer)
        failures.failed(peer)
    clock.advance(20.0)
    labels = {"service": "svc-auth"}
    refused = REGISTRY.get_sample_value("lorag_rate_limit_auth_lockout_rejections_total", labels) or 0.0
    with pytest.raises(ResourceExhausted) as info:
        failures.check(peer, service="svc-auth")
    assert REGISTRY.get_sample_value("lorag_rate_limit_auth_lockout_rejections_total", labels) == refused + 1
    assert "3 within 60 s" in info.value.message and "LORAG_RATE_LIMIT_AUTH_FAILURES" in info.value.message
    assert info.value.retry_after_s == pytest.approx(40.0)
    failures.check("ipv4:10.0.0.8")  # other peers are unaffected
    clock.advance(40.0)
    failures.check(peer)  # the window has passed: a fresh count
    failures.failed(peer)
    failures.check(peer)


def test_failures_spread_over_windows_do_not_lock_out():
    clock = Clock()
    failures = AuthFailures(limit=3, window_s=10.0, clock=clock)
    for _ in range(10):
        failures.failed("ipv4:10.0.0.9")
        failures.failed("ipv4:10.0.0.9")
        clock.advance(10.0)
        failures.check("ipv4:10.0.0.9")


def test_failure_counts_are_bounded_and_expire():
    clock = Clock()
    failures = AuthFailures(limit=5, window_s=10.0, max_peers=64, clock=clock)
    for i in range(10_000):
        failures.failed(f"ipv4:10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(failures) == 64
    clock.advance(10.0)
    failures.check("ipv4:10.0.0.1")
    assert len(failures) == 0


def test_lockout_off_and_unknown_peers_are_not_counted():
    failures = AuthFailures(limit=0, clock=Clock())
    for _ in range(100):
        failures.failed("ipv4:10.0.0.1")
    failures.check("ipv4:10.0.0.1")
    counted = AuthFailures(limit=1, clock=Clock())
    counted.failed("")
    counted.check("")
    assert len(counted) == 0


class _Store:
    """A registry stand-in that counts how often it is asked."""

    def __init__(self, good_key: str) -> None:
        self.good_key = good_key
        self.calls = 0
        self.hasher = KeyHasher(b"s" * MIN_SECRET_BYTES)  # the authenticator caches by digest

    def authenticate(self, api_key):
        self.calls += 1
        if api_key != self.good_key:
            raise Unauthenticated("invalid or revoked API key")
        return Principal(tenant_id="t-a", role=Role.USER, key_id="k1")


async def test_a_locked_out_peer_never_reaches_the_registry():
    good = "lrg_good_key_0123456789"
    store = _Store(good)
    clock = Clock()
    auth = Authenticator(store, ttl_s=0.5, failures=AuthFailures(limit=2, window_s=30.0, clock=clock))
    md = lambda key: [("authorization", f"Bearer {key}")]  # noqa: E731
    peer = "ipv4:192.0.2.1"
    assert (await auth.authenticate(md(good), peer=peer)).tenant_id == "t-a"  # success: not counted
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            await auth.authenticate(md("lrg_wrong_key_0000000000"), peer=peer)
    calls = store.calls
    for key in ("lrg_wrong_key_0000000000", "lrg_another_guess_000000"):
        with pytest.raises(ResourceExhausted):
            await auth.authenticate(md(key), peer=peer)
    assert store.calls == calls  # refused without a registry lookup
    assert (await auth.authenticate(md(good), peer="ipv4:192.0.2.2")).key_id == "k1"  # other peer
    auth._cache.clear()
    with pytest.raises(ResourceExhausted):  # a key not verified recently waits like any other
        await auth.authenticate(md(good), peer=peer)
    clock.advance(30.0)
    assert (await auth.authenticate(md(good), peer=peer)).key_id == "k1"


async def test_missing_or_malformed_keys_are_not_failed_authentications():
    store = _Store("lrg_good_key_0123456789")
    auth = Authenticator(store, failures=AuthFailures(limit=1, window_s=30.0, clock=Clock()))
    peer = "ipv4:192.0.2.3"
    for md in ([], [("authorization", "Basic abc")]) * 10:
        with pytest.raises(Unauthenticated):
            await auth.authenticate(md, peer=peer)  # refused before the registry: not counted
    assert store.calls == 0
    with pytest.raises(Unauthenticated):
        await auth.authenticate([("authorization", "Bearer lrg_wrong_key_0000000000")], peer=peer)
    with pytest.raises(ResourceExhausted):
        await auth.authenticate([("authorization", "Bearer lrg_wrong_key_0000000000")], peer=peer)


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:127.0.0.1:53422", "ipv4:127.0.0.1"),
        ("ipv6:[::1]:41000", "ipv6:[::1]"),
        ("ipv6:%5B::1%5D:41000", "ipv6:%5B::1%5D"),
        ("unix:/tmp/lorag.sock", "unix:/tmp/lorag.sock"),
        ("ipv4:10.1.2.3", "ipv4:10.1.2.3"),
        ("", ""),
        (None, ""),
    ],
)
def test_peer_address_drops_the_port(peer, address):
    assert peer_address(peer) == address


# -- what the client is told --------------------------------------------------------------------
def test_retry_hints_reach_grpc_retries_only_when_a_retry_can_succeed():
    limited = ResourceExhausted("over the rate", retry_after_s=0.25)
    assert retry_metadata(limited, remaining_s=5.0) == (
        ("retry-after-ms", "250"),
        ("grpc-retry-pushback-ms", "250"),
    )
    assert retry_metadata(limited, remaining_s=0.1) == (
        ("retry-after-ms", "250"),
        ("grpc-retry-pushback-ms", "-1"),
    )
    long_wait = ResourceExhausted("over the rate", retry_after_s=45.0)
    assert dict(retry_metadata(long_wait, remaining_s=300.0))["grpc-retry-pushback-ms"] == "-1"
    lockout = ResourceExhausted("locked out", retry_after_s=1.0, auto_retry=False)
    assert retry_metadata(lockout, remaining_s=300.0) == (
        ("retry-after-ms", "1000"),
        ("grpc-retry-pushback-ms", "-1"),
    )
    assert retry_metadata(ResourceExhausted("request is too large")) == (("grpc-retry-pushback-ms", "-1"),)
    assert retry_metadata(Unauthenticated("no key")) == ()


def test_the_sdk_exposes_the_retry_hint():
    from lorag.client.errors import LoragClientError, ResourceExhaustedError

    class _RpcError(grpc.RpcError):
        def __init__(self, trailing):
            self._trailing = trailing

        def code(self):
            return grpc.StatusCode.RESOURCE_EXHAUSTED

        def details(self):
            return "over the rate"

        def trailing_metadata(self):
            return self._trailing

    err = LoragClientError.from_rpc_error(_RpcError((("retry-after-ms", "1500"),)))
    assert isinstance(err, ResourceExhaustedError) and err.retry_after_s == 1.5
    assert LoragClientError.from_rpc_error(_RpcError(())).retry_after_s is None
    assert ResourceExhaustedError("too large").retry_after_s is None


def test_rejections_use_the_capped_tenant_label():
    metrics.configure_labels(tenants=("t-listed",))
    try:
        limits = TenantLimits(max_concurrent=1, clock=Clock())
        before = rejections("other", "concurrency", service="capped")
        limits.enter("t-unlisted", service="capped")
        with pytest.raises(ResourceExhausted):
            limits.enter("t-unlisted", service="capped")
        assert rejections("other", "concurrency", service="capped") == before + 1
        assert rejections("t-unlisted", "concurrency", service="capped") == 0
    finally:
        metrics.configure_labels()

"""Load and quotas over real gRPC: per-tenant rate and concurrency limits, failed-auth lockout.

Each test installs limits of its own on the session's runtime for its duration (every servicer
of the in-process host reads them from there) and restores the unlimited defaults after.
"""

import asyncio
import contextlib
import itertools
import time

import grpc
import pytest
from prometheus_client import REGISTRY

from lorag.admin.v1 import admin_pb2 as pb
from lorag.client.errors import ResourceExhaustedError
from lorag.common.ratelimit import AuthFailures, TenantLimits
from lorag.rag.v1 import rag_pb2

from .conftest import expect_status

_ids = itertools.count()


@contextlib.contextmanager
def limited(runtime, **settings):
    """The runtime enforces ``settings`` (``rate_limit_*`` fields) until the block ends."""
    saved = runtime.limits, runtime.auth.failures
    changed = runtime.settings.model_copy(update=settings)
    runtime.limits = TenantLimits.from_settings(changed, quota_lookup=saved[0].quota_lookup)
    runtime.auth.failures = AuthFailures.from_settings(changed)
    try:
        yield runtime.limits
    finally:
        runtime.limits, runtime.auth.failures = saved


async def tenant_keys(operator):
    """A fresh tenant: (tenant id, its admin key)."""
    tid = f"rl-{next(_ids)}-{int(time.time() * 1000) % 100000}"
    resp = await operator.admin.CreateTenant(pb.CreateTenantRequest(tenant_id=tid, create_admin_key=True))
    return tid, resp.admin_api_key


async def failure(awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await awaitable
    return info.value


def trailing(exc: grpc.aio.AioRpcError) -> dict:
    return dict(exc.trailing_metadata() or ())


def rpc_count(code: str, method: str = "WhoAmI") -> float:
    labels = {"service": "admin", "method": method, "code": code}
    return REGISTRY.get_sample_value("lorag_rpc_requests_total", labels) or 0.0


async def test_rate_limit_is_resource_exhausted_with_a_hint_and_spares_other_tenants(
    runtime, operator, client_for
):
    _, noisy_key = await tenant_keys(operator)
    _, quiet_key = await tenant_keys(operator)
    noisy, quiet = client_for(noisy_key), client_for(quiet_key)
    internal = rpc_count("INTERNAL")
    with limited(runtime, rate_limit_requests_per_s=0.01, rate_limit_burst=3):
        for _ in range(3):
            await noisy.admin.WhoAmI(pb.WhoAmIRequest())
        exc = await failure(noisy.admin.WhoAmI(pb.WhoAmIRequest()))
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.details()
        assert "LORAG_RATE_LIMIT_REQUESTS_PER_S" in exc.details() and "0.01 requests/s" in exc.details()
        hints = trailing(exc)
        assert 90_000 <= int(hints["retry-after-ms"]) <= 100_000  # the next token, 1/rate away
        assert hints["grpc-retry-pushback-ms"] == "-1"  # longer than the call has left: no auto retry
        for _ in range(3):  # the quiet tenant has a bucket of its own
            assert (await quiet.admin.WhoAmI(pb.WhoAmIRequest())).tenant_id
        await expect_status(quiet.admin.WhoAmI(pb.WhoAmIRequest()), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert rpc_count("INTERNAL") == internal


async def test_idempotent_calls_retry_after_the_hint_and_others_expose_it(runtime, operator, client_for):
    _, admin_key = await tenant_keys(operator)
    admin = client_for(admin_key)
    refused = rpc_count("RESOURCE_EXHAUSTED")
    with limited(runtime, rate_limit_requests_per_s=4.0, rate_limit_burst=1):
        for _ in range(20):  # back to back: the server refuses, gRPC waits the hint and retries
            await admin.admin.WhoAmI(pb.WhoAmIRequest())
            if rpc_count("RESOURCE_EXHAUSTED") > refused:
                break
        assert rpc_count("RESOURCE_EXHAUSTED") > refused  # refused at least once, retried to success
        await asyncio.sleep(0.3)  # one token earned
        await admin.admin.create_key(role="user")  # not idempotent: never retried by gRPC
        with pytest.raises(ResourceExhaustedError) as info:
            await admin.admin.create_key(role="user")
        assert 0 < info.value.retry_after_s <= 0.25
        await asyncio.sleep(info.value.retry_after_s)
        assert (await admin.admin.create_key(role="user")).api_key


async def test_a_hint_longer_than_the_deadline_is_not_retried_by_grpc(runtime, operator, client_for):
    _, key = await tenant_keys(operator)
    c = client_for(key)
    with limited(runtime, rate_limit_requests_per_s=0.5, rate_limit_burst=1):
        await c.admin.WhoAmI(pb.WhoAmIRequest())
        exc = await failure(c.admin.WhoAmI(pb.WhoAmIRequest(), timeout=1.0))
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # at once, not DEADLINE_EXCEEDED later
        assert 1000 < int(trailing(exc)["retry-after-ms"]) <= 2000
        assert trailing(exc)["grpc-retry-pushback-ms"] == "-1"


async def test_a_tenant_quota_sets_its_own_rate(runtime, operator, client_for):
    tid, key = await tenant_keys(operator)
    await operator.admin.SetTenantQuota(
        pb.SetTenantQuotaRequest(tenant_id=tid, quota=pb.TenantQuota(max_requests_per_minute=2))
    )
    c = client_for(key)
    with limited(runtime, rate_limit_quota_ttl_s=0.1):  # no platform rate: only the quota limits
        await c.admin.WhoAmI(pb.WhoAmIRequest())
        details = await expect_status(c.admin.WhoAmI(pb.WhoAmIRequest()), grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert "the tenant's quota max_requests_per_minute=2" in details
        for _ in range(5):
            await operator.admin.WhoAmI(pb.WhoAmIRequest())  # other tenants: unlimited


async def _held_ingest(client, release: asyncio.Event):
    """An Ingest stream that stays open (holding its place) until ``release`` is set."""

    async def requests():
        await release.wait()
        if False:  # pragma: no cover - an async generator that sends nothing
            yield rag_pb2.IngestRequest()

    call = client.service("rag").Ingest(requests())
    return call


async def _wait_for(predicate, what: str, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_concurrency_limit_is_resource_exhausted_and_frees_places(runtime, operator, client_for):
    tid, key = await tenant_keys(operator)
    _, other_key = await tenant_keys(operator)
    busy, other = client_for(key), client_for(other_key)
    release = asyncio.Event()
    with limited(runtime, rate_limit_max_concurrent=2) as limits:
        calls = [await _held_ingest(busy, release) for _ in range(2)]
        await _wait_for(lambda: limits.inflight(tid) == 2, "two streams in progress")
        exc = await failure(busy.admin.WhoAmI(pb.WhoAmIRequest()))
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.details()
        assert (
            "2 requests in progress" in exc.details() and "LORAG_RATE_LIMIT_MAX_CONCURRENT" in exc.details()
        )
        assert int(trailing(exc)["retry-after-ms"]) > 0
        for _ in range(3):
            await other.admin.WhoAmI(pb.WhoAmIRequest())  # another tenant is not affected
        release.set()  # both streams end (no documents): their places are given back
        for call in calls:
            await call.read()
            await call.code()
        await _wait_for(lambda: limits.inflight(tid) == 0, "places released")
        assert (await busy.admin.WhoAmI(pb.WhoAmIRequest())).tenant_id == tid


async def test_watch_streams_hold_no_concurrent_place(runtime, operator, client_for):
    from lorag.adapters.v1 import adapters_pb2 as apb

    tid, key = await tenant_keys(operator)
    c = client_for(key)
    with limited(runtime, rate_limit_max_concurrent=1) as limits:
        watch = c.service("adapters").WatchRevisions(apb.WatchRevisionsRequest())
        first = await watch.read()
        assert first.revision >= 0
        assert limits.inflight(tid) == 0
        assert (await c.admin.WhoAmI(pb.WhoAmIRequest())).tenant_id == tid
        watch.cancel()


async def test_failed_authentications_lock_the_peer_out_until_the_window_passes(
    runtime, operator, client_for, monkeypatch
):
    _, key = await tenant_keys(operator)  # not used yet: not in the verified-key cache
    lookups = []
    real = runtime.auth.store.authenticate
    monkeypatch.setattr(runtime.auth.store, "authenticate", lambda k: lookups.append(k) or real(k))
    bad = client_for("lrg_0000_not_a_key_of_anyone")
    with limited(runtime, rate_limit_auth_failures=3, rate_limit_auth_window_s=2.0):
        for _ in range(3):
            await expect_status(bad.admin.WhoAmI(pb.WhoAmIRequest()), grpc.StatusCode.UNAUTHENTICATED)
        asked = len(lookups)
        exc = await failure(bad.admin.WhoAmI(pb.WhoAmIRequest()))
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.details()
        assert "failed authentications" in exc.details() and "LORAG_RATE_LIMIT_AUTH_FAILURES" in exc.details()
        wait_ms = int(trailing(exc)["retry-after-ms"])
        assert 0 < wait_ms <= 2000 and trailing(exc)["grpc-retry-pushback-ms"] == "-1"
        good = client_for(key)  # the same peer with a valid key waits too: the registry is not asked
        await expect_status(good.admin.WhoAmI(pb.WhoAmIRequest()), grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert len(lookups) == asked
        await asyncio.sleep(wait_ms / 1000 + 0.05)
        assert (await good.admin.WhoAmI(pb.WhoAmIRequest())).tenant_id  # the window has passed
        await expect_status(bad.admin.WhoAmI(pb.WhoAmIRequest()), grpc.StatusCode.UNAUTHENTICATED)
        assert len(lookups) == asked + 2

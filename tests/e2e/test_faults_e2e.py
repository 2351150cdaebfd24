"""Faults in the Ray Serve tier: a generation replica is killed (SIGKILL, by the pid of a process
of the platform this session started) while it streams, and while it answers a unary call.

The streaming caller gets a clear UNAVAILABLE within seconds (never a hang, never INTERNAL with a
Ray traceback); a unary ``Generate`` (idempotent: the SDK retries it on UNAVAILABLE) succeeds
after Serve restarted the replica. The new replica starts with no adapter and loads the tenant's
adapter lazily on the first request that names it; the answer names the adapter version. The
long variant kills the replica repeatedly (marker ``fault_long``).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import grpc
import psutil
import pytest

from lorag.adapters.transfer import upload_requests
from lorag.adapters.v1 import adapters_pb2 as apb
from lorag.admin.v1 import admin_pb2
from lorag.client import Client
from lorag.common.v1 import common_pb2
from lorag.generation.v1 import generation_pb2 as pb
from tests.support.models import smollm2_adapter

PROMPT = "The best thing about the weekend is"
STREAM_TOKENS = 256  # long enough that the kill lands mid-stream
#: Sampled (seeded) so that a long generation does not stop early at an end-of-text token.
LONG = {"temperature": 1.0, "seed": 3}
FAIL_WITHIN_S = 30.0  # a streaming caller learns of the dead replica within this (loose) bound
RECOVER_WITHIN_S = 180.0  # Serve restarts the replica (model load on busy CPUs included)


def generation_replicas(platform) -> list[psutil.Process]:
    """The generation replica processes among the descendants of the `lorag serve` we started."""
    found = []
    for p in psutil.Process(platform.proc.pid).children(recursive=True):
        try:
            if "ServeReplica:generation" in " ".join(p.cmdline()):
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


def kill_replica(platform) -> int:
    replicas = generation_replicas(platform)
    assert len(replicas) == 1, [p.pid for p in replicas]
    pid = replicas[0].pid
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.fixture(scope="module")
def tenant(platform, tmp_path_factory):
    with Client(platform.target, platform.operator_key, timeout=120) as op:
        key = op.admin.CreateTenant(
            admin_pb2.CreateTenantRequest(tenant_id="e2e-faults", create_admin_key=True)
        ).admin_api_key
    with Client(platform.target, key, timeout=RECOVER_WITHIN_S) as c:
        adapter = smollm2_adapter(tmp_path_factory.mktemp("fault-adapter") / "a", seed=5)
        version = c.adapters.UploadAdapterVersion(
            upload_requests(adapter, adapter_name="bot", chunk_bytes=128 * 1024)
        ).version
        c.adapters.SetAlias(apb.SetAliasRequest(adapter_name="bot", alias="production", version=1))
        yield c, version


def stream_request(tokens: int = STREAM_TOKENS) -> pb.GenerateStreamRequest:
    return pb.GenerateStreamRequest(
        prompt=PROMPT,
        sampling=pb.SamplingParams(max_new_tokens=tokens, **LONG),
        adapter=common_pb2.AdapterRef(ref="bot"),
    )


def generate(c: Client, tokens: int = 4, **sampling) -> pb.GenerateResponse:
    return c.generation.Generate(
        pb.GenerateRequest(
            prompt=PROMPT,
            sampling=pb.SamplingParams(max_new_tokens=tokens, **(sampling or {"temperature": 0.0})),
            adapter=common_pb2.AdapterRef(ref="bot"),
        )
    )


def replica_state(c: Client) -> tuple[str, list[str]]:
    r = c.generation.GetLoadedAdapters(pb.GetLoadedAdaptersRequest())  # idempotent: retried
    return r.replica_id, [a.adapter_version_id for a in r.adapters]


def wait_for_new_replica(platform, c: Client, old_replica: str) -> str:
    deadline = time.monotonic() + RECOVER_WITHIN_S
    while True:
        try:
            replica, adapters = replica_state(c)
            if replica != old_replica:
                assert adapters == [], "a restarted replica starts without adapters"
                return replica
        except grpc.RpcError as exc:
            assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), (
                exc.code(),
                exc.details(),
            )
        assert time.monotonic() < deadline, "Serve did not bring a generation replica back"
        time.sleep(1)


def kill_during_stream(platform, c: Client) -> tuple[float, grpc.RpcError]:
    """Start a long stream, kill the replica after the first tokens; (seconds to fail, error)."""
    received = 0
    killed_at = None
    stream = c.generation.GenerateStream(stream_request(), timeout=FAIL_WITHIN_S + 60)
    try:
        for message in stream:
            received += 1
            assert not message.HasField("summary"), "the stream ended before the kill"
            if received == 3:
                kill_replica(platform)
                killed_at = time.monotonic()
    except grpc.RpcError as exc:
        assert killed_at is not None, (exc.code(), exc.details())
        return time.monotonic() - killed_at, exc
    raise AssertionError(f"the stream ended normally after {received} messages although its replica died")


@pytest.mark.timeout(900)
def test_replica_killed_mid_stream_and_mid_call_then_adapters_load_again(platform, tenant):
    c, version = tenant
    first = generate(c)
    assert first.summary.adapter_version_id == version.version_id
    old_replica, adapters = replica_state(c)
    assert version.version_id in adapters

    # 1. streaming: a clear UNAVAILABLE, quickly, no Ray internals in the message
    took, error = kill_during_stream(platform, c)
    print(f"stream failed {took:.2f}s after the kill: {error.code()} {error.details()!r}")
    assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
    assert took < FAIL_WITHIN_S
    assert "Traceback" not in (error.details() or "") and "ray." not in (error.details() or "")

    # 2. Serve restarts the replica; it loads the adapter again on the first request naming it
    new_replica = wait_for_new_replica(platform, c, old_replica)
    again = generate(c)
    assert (again.summary.adapter_version_id, again.text) == (version.version_id, first.text)
    assert replica_state(c) == (new_replica, [version.version_id])

    # 3. unary: killed while it runs, the SDK's retry lands on the restarted replica
    outcome: dict = {}

    def call() -> None:
        started = time.monotonic()
        try:
            outcome["response"] = generate(c, tokens=STREAM_TOKENS, **LONG)
        except grpc.RpcError as exc:
            outcome["error"] = exc
        outcome["took"] = time.monotonic() - started

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(2.0)  # the call is generating on the replica now
    kill_replica(platform)
    worker.join(RECOVER_WITHIN_S + 30)
    assert not worker.is_alive(), "the unary call hung after its replica died"
    print("unary call after a kill:", {k: v for k, v in outcome.items() if k != "response"})
    if "error" in outcome:  # the retries ran out before Serve restarted it: still a clear status
        error = outcome["error"]
        assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
        wait_for_new_replica(platform, c, new_replica)
    else:
        assert outcome["response"].summary.adapter_version_id == version.version_id
    final = generate(c)
    assert (final.summary.adapter_version_id, final.text) == (version.version_id, first.text)


@pytest.mark.fault_long
@pytest.mark.timeout(1800)
def test_repeated_replica_kills(platform, tenant):
    c, version = tenant
    expected = generate(c).text
    for _ in range(5):
        replica, _ = replica_state(c)
        _, error = kill_during_stream(platform, c)
        assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
        wait_for_new_replica(platform, c, replica)
        r = generate(c)
        assert (r.summary.adapter_version_id, r.text) == (version.version_id, expected)

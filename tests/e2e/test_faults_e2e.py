"""Faults in the Ray Serve tier: a generation replica is killed (SIGKILL, by the pid of a process
of the platform this session started) while it streams, and while it answers a unary call; a
retrieval replica (which holds the embedded Milvus Lite) is killed during an ingest.

The streaming caller gets a clear UNAVAILABLE within seconds (never a hang, never INTERNAL with a
Ray traceback); a unary ``Generate`` (idempotent: the SDK retries it on UNAVAILABLE) succeeds
after Serve restarted the replica. The new replica starts with no adapter and loads the tenant's
adapter lazily on the first request that names it; the answer names the adapter version. The
ingest ends UNAVAILABLE; after the restart what was reported indexed is there, and re-sending the
same documents gives exactly the chunker's chunks per document. The long variant kills the
generation replica repeatedly (marker ``fault_long``).
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
from lorag.retrieval.core import chunk_id
from lorag.retrieval.v1 import retrieval_pb2 as rpb
from tests.retrieval_helpers import (
    FAULT_CHUNK_TOKENS,
    FAULT_OVERLAP_TOKENS,
    expected_chunk_counts,
    fault_document,
    load_tokenizer,
)
from tests.support.models import smollm2_adapter
from tests.support.processes import serve_replicas

PROMPT = "The best thing about the weekend is"
STREAM_TOKENS = 256  # long enough that the kill lands mid-stream
#: Sampled (seeded) so that a long generation does not stop early at an end-of-text token.
LONG = {"temperature": 1.0, "seed": 3}
FAIL_WITHIN_S = 30.0  # a streaming caller learns of the dead replica within this (loose) bound
RECOVER_WITHIN_S = 180.0  # Serve restarts the replica (model load on busy CPUs included)


def replicas_of(platform, app: str) -> list[psutil.Process]:
    """The replica processes of ``app`` among the descendants of the `lorag serve` we started."""
    return serve_replicas(platform.proc.pid, app)


def kill_replica(platform, app: str = "generation") -> int:
    replicas = replicas_of(platform, app)
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
    if "error" in outcome:
        attempts = dict(outcome["error"].trailing_metadata() or ()).get("grpc-previous-rpc-attempts", "0")
        code, took = outcome["error"].code(), outcome["took"]
        print(f"unary call after a kill: {code} after {took:.2f}s, {attempts} retries")
    else:
        print(f"unary call after a kill: answered after {outcome['took']:.2f}s")
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


# -- retrieval: the replica holding the embedded Milvus Lite is killed during an ingest ------------
RET_TENANT = "e2e-ret-faults"
RET_DOCS = {f"doc-{i:03d}": fault_document(i) for i in range(100)}  # the most one request takes


def ingest(c: Client, doc_ids: list[str], on_result=None):
    request = rpb.UpsertRequest(
        documents=[rpb.DocumentInput(doc_id=d, text=RET_DOCS[d]) for d in doc_ids],
        chunking=rpb.ChunkingOptions(chunk_tokens=FAULT_CHUNK_TOKENS, overlap_tokens=FAULT_OVERLAP_TOKENS),
    )
    results = []
    try:
        for message in c.retrieval.Upsert(request, timeout=RECOVER_WITHIN_S):
            results.append(message.result)
            if on_result is not None:
                on_result(len(results))
    except grpc.RpcError as exc:
        return results, exc
    return results, None


def chunk_counts(c: Client) -> dict[str, int]:
    out = {}
    for doc_id in RET_DOCS:
        try:
            out[doc_id] = c.retrieval.GetDocument(rpb.GetDocumentRequest(doc_id=doc_id)).document.chunk_count
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND, (exc.code(), exc.details())
            out[doc_id] = 0
    return out


@pytest.mark.timeout(900)
def test_retrieval_replica_killed_during_an_ingest_then_reingest_is_exact(platform):
    expected = expected_chunk_counts(load_tokenizer(), RET_DOCS)
    with Client(platform.target, platform.operator_key, timeout=60) as op:
        key = op.admin.CreateTenant(
            admin_pb2.CreateTenantRequest(tenant_id=RET_TENANT, create_admin_key=True)
        ).admin_api_key
    with Client(platform.target, key, timeout=RECOVER_WITHIN_S) as c:
        c.retrieval.Stats(rpb.StatsRequest())  # the replica has opened Milvus Lite
        killed = []

        def kill_after_first(n: int) -> None:
            if n == 1:
                killed.append(kill_replica(platform, "retrieval"))

        results, error = ingest(c, list(RET_DOCS), on_result=kill_after_first)
        assert killed, "the ingest produced no result"
        assert error is not None, (
            f"the ingest ended OK after {len(results)} results although its replica died"
        )
        print(f"ingest after the kill: {len(results)} results, then {error.code()} {error.details()!r}")
        assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
        indexed = [r.doc_id for r in results if r.status == rpb.DOCUMENT_STATUS_INDEXED]
        assert indexed and len(indexed) < len(RET_DOCS)

        deadline = time.monotonic() + RECOVER_WITHIN_S
        while True:  # Serve restarts the replica; it reopens the same Milvus Lite data
            try:
                c.retrieval.Stats(rpb.StatsRequest())
                break
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE, (exc.code(), exc.details())
                assert time.monotonic() < deadline, "retrieval did not come back"
                time.sleep(1)
        counts = chunk_counts(c)
        for doc_id in indexed:  # reported indexed before the kill: durable, complete
            assert counts[doc_id] == expected[doc_id], doc_id

        results, error = ingest(c, list(RET_DOCS))
        assert error is None, (error.code(), error.details())
        assert [r.status for r in results] == [rpb.DOCUMENT_STATUS_INDEXED] * len(RET_DOCS)
        for r in results:
            assert list(r.chunk_ids) == [chunk_id(RET_TENANT, r.doc_id, i) for i in range(expected[r.doc_id])]
        assert chunk_counts(c) == expected  # none lost, none twice
        stats = c.retrieval.Stats(rpb.StatsRequest())
        assert (stats.document_count, stats.chunk_count) == (len(RET_DOCS), sum(expected.values()))

"""Faults under retrieval: the `milvus-lite server` process is killed (by the pid this test started)
during an ingest, then restarted on the same data; and a managed server (``lite_mode=server``)
that dies is started again by the retrieval process that uses it.

The ingest must end with UNAVAILABLE (not INTERNAL, not a hang); what was reported indexed before
the kill survives; after the restart the same servicer works again without being rebuilt, and
re-ingesting the same documents leaves exactly the chunker's chunks per document (none lost, none
duplicated). The long variant repeats kills at random moments (marker ``fault_long``).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from lorag.client import AsyncClient
from lorag.common import metrics
from lorag.retrieval.core import chunk_id
from lorag.retrieval.lite_server import LiteServer
from lorag.retrieval.servicer import RetrievalServicer
from lorag.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from lorag.retrieval.v1 import retrieval_pb2 as pb
from tests.retrieval_helpers import (
    FAULT_CHUNK_TOKENS,
    FAULT_OVERLAP_TOKENS,
    expected_chunk_counts,
    fault_document,
)

from .conftest import backend_settings

TENANT = "ret-alpha"
CHUNKING = pb.ChunkingOptions(chunk_tokens=FAULT_CHUNK_TOKENS, overlap_tokens=FAULT_OVERLAP_TOKENS)
MARKER = "zanzibarite"  # the word in the document whose embedding triggers the kill
DOCS = {f"doc-{i:02d}": fault_document(i, MARKER if i == 30 else "") for i in range(40)}


def expected_chunks(embedder, model: str) -> dict[str, int]:
    return expected_chunk_counts(embedder.tokenizer(model), DOCS)


class KillingEmbedder:
    """The real embedder; ``arm(pid)`` makes the next embedding of a text with MARKER first kill
    ``pid`` (SIGKILL) and wait until it is gone, so the write that follows meets a dead server."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.server: LiteServer | None = None
        self.kills = 0

    def arm(self, server: LiteServer) -> None:
        self.server = server

    async def default_model(self) -> str:
        return await self.inner.default_model()

    async def dimension(self, model: str) -> int:
        return await self.inner.dimension(model)

    def tokenizer(self, model: str):
        return self.inner.tokenizer(model)

    async def embed(self, texts, *, model, input_type):
        out = await self.inner.embed(texts, model=model, input_type=input_type)
        server, self.server = self.server, None
        if server is not None and any(MARKER in t for t in texts):
            kill_server(server)
            self.kills += 1
        elif server is not None:
            self.server = server  # not the marked document yet
        return out


def kill_server(server: LiteServer) -> None:
    """SIGKILL the server process this test started (by pid) and reap it."""
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    server.proc = None


def store_failures() -> float:
    """lorag_retrieval_store_failures_total, all operations together."""
    total = 0.0
    for family in REGISTRY.collect():
        if family.name == metrics.RETRIEVAL_STORE_FAILURES.name.removesuffix("_total"):
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


class Harness:
    def __init__(self, runtime, key, embedder, data_dir) -> None:
        self.runtime, self.key, self.data_dir = runtime, key, data_dir
        self.embedder = KillingEmbedder(embedder)
        self.milvus = LiteServer(data_dir / "milvus")
        self.server: grpc.aio.Server | None = None
        self.servicer: RetrievalServicer | None = None
        self.client: AsyncClient | None = None

    async def start(self) -> Harness:
        self.milvus.start()
        settings = backend_settings("server", self.data_dir, self.milvus.uri, collection_prefix="faults")
        self.servicer = RetrievalServicer(self.runtime, settings=settings, embedder=self.embedder)
        self.server = grpc.aio.server()
        retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(self.servicer, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        self.client = AsyncClient(f"127.0.0.1:{port}", self.key, timeout=60)
        return self

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.server is not None:
            await self.server.stop(0)
        if self.servicer is not None:
            self.servicer.close()
        pid = self.milvus.pid
        self.milvus.stop()
        assert (
            pid is None
            or not os.path.exists(f"/proc/{pid}/cmdline")
            or (b"milvus_lite" not in open(f"/proc/{pid}/cmdline", "rb").read())
        )

    async def ingest(self, doc_ids: list[str]) -> tuple[list[pb.DocumentResult], grpc.aio.AioRpcError | None]:
        """Upsert ``doc_ids`` (one request); the results streamed, and the error that ended it."""
        request = pb.UpsertRequest(
            documents=[pb.DocumentInput(doc_id=d, text=DOCS[d]) for d in doc_ids], chunking=CHUNKING
        )
        results: list[pb.DocumentResult] = []
        try:
            async with asyncio.timeout(120):
                async for message in self.client.retrieval.Upsert(request):
                    results.append(message.result)
        except grpc.aio.AioRpcError as exc:
            return results, exc
        return results, None

    async def chunk_counts(self) -> dict[str, int]:
        """Chunks stored per document id (a count in Milvus, so duplicates would show)."""
        out = {}
        for doc_id in DOCS:
            try:
                r = await self.client.retrieval.GetDocument(retrieval_pb2.GetDocumentRequest(doc_id=doc_id))
                out[doc_id] = r.document.chunk_count
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND, exc.details()
                out[doc_id] = 0
        return out

    async def stats(self) -> tuple[int, int]:
        r = await self.client.retrieval.Stats(pb.StatsRequest())
        return r.document_count, r.chunk_count


@pytest.fixture
async def harness(runtime, tenant_keys, embedder, tmp_path):
    h = await Harness(runtime, tenant_keys[TENANT], embedder, tmp_path).start()
    try:
        yield h
    finally:
        await h.stop()


async def wait_available(h: Harness, timeout: float = 30.0) -> None:
    """Until Stats answers again (the servicer reconnects on its own)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await h.stats()
            return
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
            assert time.monotonic() < deadline, "retrieval did not recover after the Milvus restart"
            await asyncio.sleep(0.2)


@pytest.mark.timeout(240)
async def test_milvus_killed_during_an_ingest_then_reingest_is_exact(harness):
    h = harness
    model = await h.embedder.default_model()
    expected = expected_chunks(h.embedder, model)
    assert sum(expected.values()) > 3 * len(DOCS)  # several chunks per document, several groups

    failures_before = store_failures()
    h.embedder.arm(h.milvus)
    started = time.monotonic()
    results, error = await h.ingest(list(DOCS))
    took = time.monotonic() - started
    assert h.embedder.kills == 1
    assert error is not None, "the ingest reported success although Milvus was killed during it"
    assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
    assert "vector store is unavailable" in error.details() and "send the request again" in error.details()
    assert took < 60
    indexed = [r.doc_id for r in results if r.status == pb.DOCUMENT_STATUS_INDEXED]
    assert indexed and all(r.status == pb.DOCUMENT_STATUS_INDEXED for r in results)
    assert "doc-30" not in indexed and len(indexed) < len(DOCS)
    assert store_failures() > failures_before  # reported in lorag_retrieval_store_failures_total

    # while it is down every call fails fast with UNAVAILABLE, never INTERNAL
    t0 = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await h.stats()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() - t0 < 10

    h.milvus.start()  # same data directory, same port; the servicer is NOT rebuilt
    await wait_available(h)
    counts = await h.chunk_counts()
    for doc_id in indexed:  # nothing that was reported indexed was lost
        assert counts[doc_id] == expected[doc_id], doc_id
    assert all(counts[d] == 0 for d in DOCS if d not in indexed)  # nothing half-written

    results, error = await h.ingest(list(DOCS))
    assert error is None, error.details()
    assert [r.status for r in results] == [pb.DOCUMENT_STATUS_INDEXED] * len(DOCS)
    for r in results:
        assert list(r.chunk_ids) == [chunk_id(TENANT, r.doc_id, i) for i in range(expected[r.doc_id])]
        assert r.replaced_chunk_count == (expected[r.doc_id] if r.doc_id in indexed else 0)
    assert await h.chunk_counts() == expected  # exactly the chunker's chunks: none lost, none twice
    assert await h.stats() == (len(DOCS), sum(expected.values()))


@pytest.mark.fault_long
@pytest.mark.timeout(900)
async def test_repeated_milvus_kills_at_random_moments_never_lose_or_duplicate(harness):
    """Ten rounds: ingest everything while the server is killed after a random delay (mid-write
    or not), restart, re-ingest; every round ends with exactly the chunker's chunks."""
    h = harness
    expected = expected_chunks(h.embedder, await h.embedder.default_model())
    rng = random.Random(7)
    for round_no in range(10):
        delay = rng.uniform(0.0, 1.5)

        async def kill_later(delay=delay):
            await asyncio.sleep(delay)
            await asyncio.to_thread(kill_server, h.milvus)

        killer = asyncio.create_task(kill_later())
        _, error = await h.ingest(list(DOCS))
        await killer
        if error is not None:
            assert error.code() == grpc.StatusCode.UNAVAILABLE, (round_no, error.code(), error.details())
        h.milvus.start()
        await wait_available(h)
        results, error = await h.ingest(list(DOCS))
        assert error is None, (round_no, error.details())
        assert all(r.status == pb.DOCUMENT_STATUS_INDEXED for r in results), round_no
        assert await h.chunk_counts() == expected, round_no
        assert await h.stats() == (len(DOCS), sum(expected.values())), round_no


async def test_a_managed_milvus_server_that_dies_is_started_again_by_its_user(runtime, tmp_path):
    """LORAG_RETRIEVAL_LITE_MODE=server: nobody restarts the server by hand; the first call that
    meets the dead server fails UNAVAILABLE and starts it again (same port, same data)."""
    from lorag.common.errors import Unavailable
    from lorag.retrieval.settings import RetrievalSettings
    from tests.retrieval_helpers import unit

    settings = RetrievalSettings(
        data_dir=tmp_path, lite_mode="server", model_dimensions={"vec-8": 8}, default_embedding_model="vec-8"
    )
    servicer = RetrievalServicer(runtime, settings=settings, embedder=None)
    try:
        vector = unit([1.0] * 8)
        doc = pb.DocumentInput(
            doc_id="kept", chunks=pb.ChunkList(chunks=[pb.Chunk(text="survives the server", dense=vector)])
        )
        await servicer.upsert_internal(TENANT, pb.UpsertRequest(documents=[doc]))
        first = servicer._lite._state()["pid"]
        os.kill(first, signal.SIGKILL)  # the server this test's servicer started

        t0 = time.monotonic()
        with pytest.raises(Unavailable):
            await servicer.stats_internal(TENANT, pb.StatsRequest())
        assert time.monotonic() - t0 < 30
        second = servicer._lite._state()["pid"]
        assert second != first and Path(f"/proc/{second}/cmdline").read_bytes().find(b"milvus_lite") >= 0

        stats = await servicer.stats_internal(TENANT, pb.StatsRequest())
        assert (stats.document_count, stats.chunk_count) == (1, 1)
        hits = await servicer.search_internal(TENANT, pb.SearchRequest(query_vector=vector, top_k=1))
        assert [h.text for h in hits.hits] == ["survives the server"]
    finally:
        pid = servicer._lite._state()["pid"] if servicer._lite else None
        servicer.close()  # the last user stops the (new) server
        assert (
            pid is None
            or not Path(f"/proc/{pid}/cmdline").exists()
            or (b"milvus_lite" not in Path(f"/proc/{pid}/cmdline").read_bytes())
        )

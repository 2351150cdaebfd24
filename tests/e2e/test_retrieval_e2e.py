"""Retrieval through Ray Serve's gRPC proxy: streamed upserts, search, tenant isolation, errors."""

import json
import os

import grpc
import numpy as np
import pytest

from lorag.admin.v1 import admin_pb2
from lorag.client import Client
from lorag.common.v1 import common_pb2
from lorag.retrieval.v1 import retrieval_pb2 as pb

# Vectors computed by the caller for a model the embedding service does not serve: the platform
# (started once per session, after collection) learns its dimension from the environment.
os.environ.setdefault("LORAG_RETRIEVAL_MODEL_DIMENSIONS", json.dumps({"e2e-vec": 8}))
MODEL = "e2e-vec"


def vec(seed: int) -> list[float]:
    v = np.random.default_rng(seed).normal(size=8)
    return (v / np.linalg.norm(v)).tolist()


@pytest.fixture(scope="module")
def tenants(platform):
    clients = {}
    with Client(platform.target, platform.operator_key, timeout=60) as op:
        for t in ("e2e-ret-a", "e2e-ret-b"):
            key = op.admin.CreateTenant(
                admin_pb2.CreateTenantRequest(tenant_id=t, create_admin_key=True)
            ).admin_api_key
            clients[t] = Client(platform.target, key, timeout=60)
    yield {t: c.retrieval for t, c in clients.items()}
    for c in clients.values():
        c.close()


def _doc(doc_id: str, texts: list[str], seed: int) -> pb.DocumentInput:
    chunks = [pb.Chunk(text=t, dense=vec(seed + i)) for i, t in enumerate(texts)]
    return pb.DocumentInput(doc_id=doc_id, title=doc_id.title(), chunks=pb.ChunkList(chunks=chunks))


def test_upsert_streams_progress_and_search_finds_only_the_callers_chunks(tenants):
    a, b = tenants["e2e-ret-a"], tenants["e2e-ret-b"]
    progress = list(
        a.Upsert(
            pb.UpsertRequest(
                embedding_model=MODEL, documents=[_doc("x", ["one", "two"], 1), _doc("y", ["three"], 5)]
            )
        )
    )
    assert [(m.result.doc_id, m.result.status, m.progress.documents_done) for m in progress] == [
        ("x", pb.DOCUMENT_STATUS_INDEXED, 1),
        ("y", pb.DOCUMENT_STATUS_INDEXED, 2),
    ]
    list(b.Upsert(pb.UpsertRequest(embedding_model=MODEL, documents=[_doc("x", ["bee"], 9)])))

    hits = a.Search(pb.SearchRequest(query_vector=vec(2), embedding_model=MODEL, top_k=5)).hits
    assert hits[0].chunk.doc_id == "x" and hits[0].text == "two" and hits[0].title == "X"
    assert {h.text for h in hits} == {"one", "two", "three"}
    hits = b.Search(pb.SearchRequest(query_vector=vec(2), embedding_model=MODEL, top_k=5)).hits
    assert [h.text for h in hits] == ["bee"]

    stats = a.Stats(pb.StatsRequest(embedding_model=MODEL))
    assert (stats.document_count, stats.chunk_count) == (2, 3)
    deleted = b.DeleteDocuments(pb.DeleteDocumentsRequest(doc_ids=["y"]))
    assert deleted.deleted_chunk_count == 0
    assert a.GetDocument(pb.GetDocumentRequest(doc_id="y", embedding_model=MODEL)).document.chunk_count == 1


def test_bad_input_and_forged_filters_are_invalid_argument_through_the_proxy(tenants):
    a = tenants["e2e-ret-a"]
    forged = common_pb2.Filter(
        conditions=[common_pb2.FilterCondition(field="tenant_id", op=common_pb2.FILTER_OP_EQ)]
    )
    cases = [
        (
            pb.SearchRequest(query_vector=vec(1), embedding_model=MODEL, top_k=5000),
            "top_k: must be between 1 and 1000",
        ),
        (pb.SearchRequest(query_vector=[1.0, 2.0], embedding_model=MODEL), "query_vector: has 2 dimensions"),
        (
            pb.SearchRequest(query_vector=vec(1), embedding_model=MODEL, filter=forged),
            "filter.conditions[0].field",
        ),
    ]
    for request, message in cases:
        with pytest.raises(grpc.RpcError) as info:
            a.Search(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in info.value.details() and "Traceback" not in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        list(a.Upsert(pb.UpsertRequest(embedding_model=MODEL, documents=[_doc("bad", [""], 1)])))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "documents[0].chunks[0].text: is empty" in info.value.details()


def test_raw_text_is_chunked_and_embedded_through_the_embedding_application(tenants):
    a = tenants["e2e-ret-a"]
    docs = [
        pb.DocumentInput(
            doc_id="bees",
            text="# Honeybees\n\nForager bees perform the waggle dance to show where the flowers are.",
            mime_type="text/markdown",
        ),
        pb.DocumentInput(
            doc_id="tides", text="Tides rise and fall twice a day because of the Moon's gravity."
        ),
    ]
    out = list(a.Upsert(pb.UpsertRequest(documents=docs)))  # default embedding model
    assert [m.result.status for m in out] == [pb.DOCUMENT_STATUS_INDEXED] * 2, [m.result for m in out]
    r = a.Search(pb.SearchRequest(query_text="how do insects tell each other where food is", top_k=2))
    assert r.mode == pb.SEARCH_MODE_HYBRID and r.hits[0].chunk.doc_id == "bees"
    assert r.hits[0].title == "Honeybees" and r.embedding_model

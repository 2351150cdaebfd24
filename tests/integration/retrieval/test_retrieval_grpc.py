"""lorag.retrieval.v1 over real gRPC, on Milvus Lite in-process AND on the `milvus-lite server`
subprocess: relevance of the hybrid mode on a real corpus, replace/delete semantics, tenant
isolation (forged metadata, forged filters, guessed doc ids), restart persistence."""

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2

from lorag.common.v1 import common_pb2
from lorag.retrieval.v1 import retrieval_pb2 as pb
from tests.retrieval_helpers import load_corpus, unit

from ..conftest import expect_status
from .conftest import VEC_DIM, VEC_MODEL

COLLECTION_PREFIX = "tgrpc"
ALPHA, BETA = "ret-alpha", "ret-beta"
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def vec(seed: int) -> list[float]:
    return unit(np.random.default_rng(seed).normal(size=VEC_DIM))


def struct(d: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(d)
    return s


def cond(field, op, *values):
    vals = []
    for v in values:
        x = struct_pb2.Value()
        if isinstance(v, bool):
            x.bool_value = v
        elif isinstance(v, int | float):
            x.number_value = v
        elif isinstance(v, str):
            x.string_value = v
        else:
            x.null_value = struct_pb2.NULL_VALUE
        vals.append(x)
    return common_pb2.FilterCondition(field=field, op=op, values=vals)


def vdoc(doc_id: str, texts: list[str], seed: int = 0, **kw) -> pb.DocumentInput:
    chunks = [pb.Chunk(text=t, dense=vec(seed + i)) for i, t in enumerate(texts)]
    return pb.DocumentInput(doc_id=doc_id, chunks=pb.ChunkList(chunks=chunks), **kw)


async def upsert(client, docs, **kw) -> list[pb.UpsertResponse]:
    return [m async for m in client.Upsert(pb.UpsertRequest(documents=docs, **kw))]


async def search(client, **kw) -> pb.SearchResponse:
    return await client.Search(pb.SearchRequest(**kw))


async def stats(client, model=VEC_MODEL) -> tuple[int, int]:
    r = await client.Stats(pb.StatsRequest(embedding_model=model))
    return r.document_count, r.chunk_count


# -- relevance ------------------------------------------------------------------------------------
def _metrics(ranked: list[list[str]], relevant: list[list[str]], k: int = 5) -> dict[str, float]:
    rr, hit1, hit3 = [], 0, 0
    for ids, rel in zip(ranked, relevant, strict=True):
        rank = next((i + 1 for i, d in enumerate(ids[:k]) if d in rel), None)
        rr.append(1.0 / rank if rank else 0.0)
        hit1 += rank == 1
        hit3 += bool(rank and rank <= 3)
    n = len(ranked)
    return {"mrr@5": sum(rr) / n, "recall@1": hit1 / n, "recall@3": hit3 / n}


async def test_hybrid_beats_or_ties_each_single_mode_on_a_real_corpus(backend, clients):
    corpus = load_corpus()
    docs = [
        pb.DocumentInput(
            doc_id=d["doc_id"], title=d["title"], text=d["text"], metadata=struct({"topic": d["doc_id"]})
        )
        for d in corpus["documents"]
    ]
    out = await upsert(clients[ALPHA], docs)
    assert all(m.result.status == pb.DOCUMENT_STATUS_INDEXED for m in out), [m.result for m in out]
    assert out[-1].progress.documents_done == len(docs)

    results = {}
    for mode in (pb.SEARCH_MODE_DENSE, pb.SEARCH_MODE_SPARSE, pb.SEARCH_MODE_HYBRID):
        ranked = []
        for q in corpus["queries"]:
            r = await search(clients[ALPHA], query_text=q["query"], mode=mode, top_k=5)
            assert r.mode == mode
            ranked.append([h.chunk.doc_id for h in r.hits])
        results[pb.SearchMode.Name(mode)] = _metrics(ranked, [q["relevant"] for q in corpus["queries"]])
    hybrid = results["SEARCH_MODE_HYBRID"]
    for single in ("SEARCH_MODE_DENSE", "SEARCH_MODE_SPARSE"):
        for metric, value in hybrid.items():
            assert value >= results[single][metric], (metric, results)
    # the two signals really differ on this corpus: hybrid strictly beats at least one of them
    assert hybrid["mrr@5"] > min(
        results["SEARCH_MODE_DENSE"]["mrr@5"], results["SEARCH_MODE_SPARSE"]["mrr@5"]
    )

    # weighted fusion with given weights behaves like the signal it favours
    dense_like = await search(
        clients[ALPHA],
        query_text="tiny creatures that can live through the emptiness of space",
        fusion=pb.FUSION_METHOD_WEIGHTED,
        dense_weight=1.0,
        sparse_weight=0.0,
        top_k=3,
    )
    assert dense_like.mode == pb.SEARCH_MODE_HYBRID and dense_like.hits[0].chunk.doc_id == "tardigrades"
    sparse_like = await search(
        clients[ALPHA],
        query_text="SQLSTATE 40P01",
        fusion=pb.FUSION_METHOD_WEIGHTED,
        dense_weight=0.1,
        top_k=3,
    )
    assert sparse_like.hits[0].chunk.doc_id == "pg-40p01"

    # another tenant sees none of it, in any mode
    for mode in (pb.SEARCH_MODE_DENSE, pb.SEARCH_MODE_SPARSE, pb.SEARCH_MODE_HYBRID):
        assert not (await search(clients[BETA], query_text="waggle dance", mode=mode)).hits


async def test_search_hits_carry_text_title_metadata_and_span(backend, clients):
    text = (
        "# Field Guide\n\nThe kakapo is a flightless parrot of New Zealand. It is nocturnal.\n\nMore notes."
    )
    out = await upsert(
        clients[ALPHA],
        [
            pb.DocumentInput(
                doc_id="guide", text=text, mime_type="text/markdown", metadata=struct({"lang": "en"})
            )
        ],
    )
    assert out[0].result.status == pb.DOCUMENT_STATUS_INDEXED
    r = await search(clients[ALPHA], query_text="kakapo flightless parrot", top_k=1)
    hit = r.hits[0]
    assert hit.chunk.doc_id == "guide" and hit.chunk.chunk_index == 0 and len(hit.chunk.chunk_id) == 32
    assert hit.title == "Field Guide" and "kakapo" in hit.text
    assert text[hit.span.start : hit.span.end] == hit.text
    assert dict(hit.metadata) == {"lang": "en"}
    assert r.embedding_model and r.took_ms > 0


# -- replace / delete ----------------------------------------------------------------------------
async def test_reingesting_replaces_exactly_the_documents_chunks(backend, clients):
    c = clients[ALPHA]
    model = VEC_MODEL
    first = await upsert(
        c, [vdoc("rep", ["one alpha", "two alpha", "three alpha"], seed=10)], embedding_model=model
    )
    assert first[0].result.chunk_count == 3 and first[0].result.replaced_chunk_count == 0
    await upsert(c, [vdoc("keep", ["an unrelated document"], seed=50)], embedding_model=model)
    assert await stats(c) == (2, 4)

    second = await upsert(c, [vdoc("rep", ["only one now"], seed=20)], embedding_model=model)
    assert (second[0].result.chunk_count, second[0].result.replaced_chunk_count) == (1, 3)
    assert second[0].result.chunk_ids[0] == first[0].result.chunk_ids[0]  # deterministic ids
    again = await upsert(c, [vdoc("rep", ["only one now"], seed=20)], embedding_model=model)
    assert (again[0].result.chunk_count, again[0].result.replaced_chunk_count) == (1, 1)  # idempotent
    assert await stats(c) == (2, 2)

    doc = (await c.GetDocument(pb.GetDocumentRequest(doc_id="rep", embedding_model=model))).document
    assert doc.chunk_count == 1 and doc.embedding_model == VEC_MODEL
    assert doc.update_time.ToMilliseconds() >= doc.create_time.ToMilliseconds() > 0
    found = await search(c, query_text="two alpha three", mode=pb.SEARCH_MODE_SPARSE, embedding_model=model)
    assert [h.text for h in found.hits] == []  # the old chunks are gone
    found = await search(c, query_vector=vec(20), embedding_model=model, top_k=10)
    assert [h.chunk.doc_id for h in found.hits].count("rep") == 1

    deleted = await c.DeleteDocuments(pb.DeleteDocumentsRequest(doc_ids=["rep", "never-existed"]))
    assert (deleted.deleted_document_count, deleted.deleted_chunk_count) == (1, 1)
    await expect_status(
        c.GetDocument(pb.GetDocumentRequest(doc_id="rep", embedding_model=model)), grpc.StatusCode.NOT_FOUND
    )
    assert await stats(c) == (1, 1)
    deleted = await c.DeleteDocuments(pb.DeleteDocumentsRequest(doc_ids=["rep"]))
    assert (deleted.deleted_document_count, deleted.deleted_chunk_count) == (0, 0)
    await c.DeleteDocuments(pb.DeleteDocumentsRequest(doc_ids=["keep"]))
    assert await stats(c) == (0, 0)


async def test_a_failed_document_keeps_its_old_chunks_and_others_are_written(backend, clients):
    c = clients[ALPHA]
    await upsert(c, [vdoc("stable", ["stable version one"], seed=1)], embedding_model=VEC_MODEL)
    out = await upsert(
        c,
        [
            pb.DocumentInput(doc_id="stable", data=b"%PDF-1.4 garbage", mime_type="application/pdf"),
            vdoc("fresh", ["fresh doc"], seed=2),
        ],
        embedding_model=VEC_MODEL,
    )
    assert [(m.result.doc_id, m.result.status) for m in out] == [
        ("stable", pb.DOCUMENT_STATUS_FAILED),
        ("fresh", pb.DOCUMENT_STATUS_INDEXED),
    ]
    assert out[0].result.error == "content is not a readable PDF"
    assert (out[-1].progress.documents_failed, out[-1].progress.chunks_written) == (1, 1)
    doc = (await c.GetDocument(pb.GetDocumentRequest(doc_id="stable", embedding_model=VEC_MODEL))).document
    assert doc.chunk_count == 1
    await c.DeleteDocuments(pb.DeleteDocumentsRequest(doc_ids=["stable", "fresh"]))


# -- tenant isolation ----------------------------------------------------------------------------
async def test_tenants_never_see_count_or_delete_each_others_chunks(backend, clients):
    a, b = clients[ALPHA], clients[BETA]
    await upsert(
        a,
        [vdoc("shared-id", ["alpha secret plan"], seed=100, metadata=struct({"owner": "alpha"}))],
        embedding_model=VEC_MODEL,
    )
    await upsert(a, [vdoc("alpha-only", ["alpha private memo"], seed=101)], embedding_model=VEC_MODEL)
    await upsert(
        b,
        [vdoc("shared-id", ["beta public note"], seed=200, metadata=struct({"owner": "beta"}))],
        embedding_model=VEC_MODEL,
    )

    # searches: the exact vector of alpha's chunk, from beta, finds only beta's chunk
    r = await search(b, query_vector=vec(100), embedding_model=VEC_MODEL, top_k=50)
    assert [(h.chunk.doc_id, h.text) for h in r.hits] == [("shared-id", "beta public note")]
    for mode in (pb.SEARCH_MODE_SPARSE, pb.SEARCH_MODE_HYBRID):
        r = await search(
            b,
            query_text="alpha secret plan private memo",
            query_vector=vec(100),
            mode=mode,
            embedding_model=VEC_MODEL,
            top_k=50,
        )
        assert all(h.text == "beta public note" for h in r.hits)

    # forged filters: the tenant field cannot be named; values cannot break out of their literal
    for field in ("tenant_id", "metadata.tenant_id", 'owner"] == "x" or tenant_id != "', "text"):
        await expect_status(
            search(
                b,
                query_vector=vec(1),
                embedding_model=VEC_MODEL,
                filter=common_pb2.Filter(conditions=[cond(field, common_pb2.FILTER_OP_EQ, "ret-alpha")]),
            ),
            INVALID,
        )
    for hostile in ('beta" or tenant_id == "ret-alpha', "beta' or 1==1 or '", 'x") or (true'):
        r = await search(
            b,
            query_vector=vec(100),
            embedding_model=VEC_MODEL,
            top_k=50,
            filter=common_pb2.Filter(conditions=[cond("owner", common_pb2.FILTER_OP_EQ, hostile)]),
        )
        assert not r.hits
    r = await search(
        b,
        query_vector=vec(100),
        embedding_model=VEC_MODEL,
        top_k=50,
        filter=common_pb2.Filter(conditions=[cond("owner", common_pb2.FILTER_OP_EQ, "alpha")]),
    )
    assert not r.hits  # alpha's metadata value, asked for by beta: nothing

    # forged metadata: a tenant field in the body is refused, nothing written
    details = await expect_status(
        upsert(b, [vdoc("forged", ["x"], metadata=struct({"tenant_id": ALPHA}))], embedding_model=VEC_MODEL),
        INVALID,
    )
    assert "documents[0].metadata: key 'tenant_id' is reserved" in details

    # guessed doc ids: reads are NOT_FOUND, deletes remove nothing
    await expect_status(
        b.GetDocument(pb.GetDocumentRequest(doc_id="alpha-only", embedding_model=VEC_MODEL)),
        grpc.StatusCode.NOT_FOUND,
    )
    deleted = await b.DeleteDocuments(pb.DeleteDocumentsRequest(doc_ids=["alpha-only"]))
    assert (deleted.deleted_document_count, deleted.deleted_chunk_count) == (0, 0)
    doc = (await b.GetDocument(pb.GetDocumentRequest(doc_id="shared-id", embedding_model=VEC_MODEL))).document
    assert dict(doc.metadata) == {"owner": "beta"}

    # counts and listings are per tenant
    assert await stats(a) == (2, 2) and await stats(b) == (1, 1)
    listed = await b.ListDocuments(pb.ListDocumentsRequest(embedding_model=VEC_MODEL))
    assert [d.doc_id for d in listed.documents] == ["shared-id"]

    # deleting the shared id as beta leaves alpha's document intact
    deleted = await b.DeleteDocuments(pb.DeleteDocumentsRequest(doc_ids=["shared-id"]))
    assert (deleted.deleted_document_count, deleted.deleted_chunk_count) == (1, 1)
    assert await stats(a) == (2, 2) and await stats(b) == (0, 0)
    await a.DeleteDocuments(pb.DeleteDocumentsRequest(doc_ids=["shared-id", "alpha-only"]))


# -- filters, listing --------------------------------------------------------------------------
async def test_metadata_filters_and_paged_listing(backend, clients):
    c = clients[ALPHA]
    docs = [
        vdoc(
            f"f{i:02d}",
            [f"filter doc {i}"],
            seed=300 + i,
            metadata=struct(
                {
                    "year": 2000 + i,
                    "lang": "en" if i % 2 else "de",
                    "tags": ["even"] if i % 2 == 0 else ["odd"],
                }
            ),
        )
        for i in range(12)
    ]
    docs[3].metadata.update({"reviewed": True})
    await upsert(c, docs, embedding_model=VEC_MODEL)

    async def ids(*conds):
        r = await search(
            c,
            query_vector=vec(300),
            embedding_model=VEC_MODEL,
            top_k=100,
            filter=common_pb2.Filter(conditions=list(conds)),
        )
        return sorted(h.chunk.doc_id for h in r.hits)

    f = common_pb2
    assert await ids(cond("lang", f.FILTER_OP_EQ, "de"), cond("year", f.FILTER_OP_GTE, 2006)) == [
        "f06",
        "f08",
        "f10",
    ]
    assert await ids(cond("metadata.year", f.FILTER_OP_RANGE, 2002, 2004)) == ["f02", "f03", "f04"]
    assert await ids(cond("doc_id", f.FILTER_OP_IN, "f01", "f05", "zz")) == ["f01", "f05"]
    assert await ids(cond("year", f.FILTER_OP_IN, 2001, 2011)) == ["f01", "f11"]
    assert await ids(cond("tags", f.FILTER_OP_CONTAINS, "odd"), cond("year", f.FILTER_OP_LT, 2004)) == [
        "f01",
        "f03",
    ]
    assert await ids(cond("reviewed", f.FILTER_OP_EXISTS)) == ["f03"]
    assert await ids(cond("lang", f.FILTER_OP_NE, "en"), cond("year", f.FILTER_OP_LTE, 2002)) == [
        "f00",
        "f02",
    ]
    assert await ids(cond("year", f.FILTER_OP_NOT_IN, 2000, 2001), cond("year", f.FILTER_OP_LT, 2004)) == [
        "f02",
        "f03",
    ]
    assert await ids(cond("chunk_index", f.FILTER_OP_GT, 0)) == []

    assert (
        len((await search(c, query_vector=vec(300), embedding_model=VEC_MODEL)).hits) == 10
    )  # default top_k

    seen, token = [], ""
    while True:
        page = await c.ListDocuments(
            pb.ListDocumentsRequest(
                embedding_model=VEC_MODEL, page=common_pb2.PageRequest(page_size=5, page_token=token)
            )
        )
        seen.append([d.doc_id for d in page.documents])
        token = page.page.next_page_token
        if not token:
            break
    assert seen == [[f"f{i:02d}" for i in range(0, 5)], [f"f{i:02d}" for i in range(5, 10)], ["f10", "f11"]]
    page = await c.ListDocuments(
        pb.ListDocumentsRequest(
            embedding_model=VEC_MODEL,
            filter=common_pb2.Filter(conditions=[cond("lang", f.FILTER_OP_EQ, "en")]),
        )
    )
    assert [d.doc_id for d in page.documents] == ["f01", "f03", "f05", "f07", "f09", "f11"]
    assert page.documents[0].chunk_count == 1 and dict(page.documents[0].metadata)["year"] == 2001
    await c.DeleteDocuments(pb.DeleteDocumentsRequest(doc_ids=[f"f{i:02d}" for i in range(12)]))


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("request_kw", "message"),
    [
        ({"query_vector": vec(1), "top_k": -1}, "top_k: must be between 1 and 1000 (got -1)"),
        ({"query_vector": vec(1), "top_k": 0}, "top_k: must be between 1 and 1000 (got 0)"),
        ({"query_vector": vec(1), "top_k": 1001}, "top_k: must be between 1 and 1000 (got 1001)"),
        ({"query_vector": [0.1, 0.2]}, "query_vector: has 2 dimensions; the collection needs 8"),
        (
            {"mode": pb.SEARCH_MODE_SPARSE, "query_vector": vec(1)},
            "query_text: is required for sparse search",
        ),
        ({}, "query_vector: a query vector or query text is required"),
        ({"query_text": "x" * 5000}, "query_text: at most 4096 characters"),
        (
            {
                "query_vector": vec(1),
                "fusion": pb.FUSION_METHOD_WEIGHTED,
                "query_text": "a",
                "dense_weight": 1.5,
            },
            "dense_weight: must be in [0, 1]",
        ),
        (
            {
                "query_vector": vec(1),
                "filter": common_pb2.Filter(conditions=[cond("nope field", common_pb2.FILTER_OP_EQ, 1)]),
            },
            "filter.conditions[0].field: unknown field 'nope field'",
        ),
        (
            {
                "query_vector": vec(1),
                "filter": common_pb2.Filter(conditions=[cond("year", common_pb2.FILTER_OP_GT, "2020")]),
            },
            "filter.conditions[0].values[0]: must be a number (got string)",
        ),
        (
            {
                "query_vector": vec(1),
                "filter": common_pb2.Filter(conditions=[cond("year", common_pb2.FILTER_OP_UNSPECIFIED, 1)]),
            },
            "filter.conditions[0].op: must name an operator",
        ),
        ({"query_vector": vec(1), "embedding_model": "bad model!"}, "embedding_model: must be 1-128"),
    ],
)
async def test_bad_search_requests_are_invalid_argument_naming_the_problem(
    backend, clients, request_kw, message
):
    request_kw.setdefault("embedding_model", VEC_MODEL)
    details = await expect_status(search(clients[ALPHA], **request_kw), INVALID)
    assert message in details


async def test_bad_upserts_write_nothing(backend, clients):
    c = clients[ALPHA]
    before = await stats(c)
    bad_batches = [
        (
            [
                vdoc("ok", ["fine"]),
                pb.DocumentInput(
                    doc_id="wrongdim", chunks=pb.ChunkList(chunks=[pb.Chunk(text="x", dense=[1.0, 0.0])])
                ),
            ],
            "documents[1].chunks[0].dense: has 2 dimensions; the collection needs 8",
        ),
        ([vdoc("ok", ["fine"]), vdoc("empty", [""])], "documents[1].chunks[0].text: is empty"),
        ([vdoc("ok", ["fine"]), vdoc("huge", ["x" * 40000])], "documents[1].chunks[0].text: at most 32768"),
        ([vdoc("dup", ["a"]), vdoc("dup", ["b"])], "documents[1].doc_id: duplicate"),
        ([], "documents: 1-100 documents per request (got 0)"),
    ]
    for docs, message in bad_batches:
        details = await expect_status(upsert(c, docs, embedding_model=VEC_MODEL), INVALID)
        assert message in details
    await expect_status(
        upsert(c, [vdoc("x", ["y"])], embedding_model="no-such-model"), grpc.StatusCode.NOT_FOUND
    )
    await expect_status(c.DeleteDocuments(pb.DeleteDocumentsRequest(doc_ids=[])), INVALID)
    await expect_status(c.DeleteDocuments(pb.DeleteDocumentsRequest(doc_ids=["a" * 300])), INVALID)
    assert await stats(c) == before


async def test_calls_without_a_valid_key_are_rejected(backend):
    from lorag.client import AsyncClient

    async with AsyncClient(backend.target, "lrg_not_a_real_key_at_all_0000", timeout=10) as c:
        await expect_status(
            c.retrieval.Search(pb.SearchRequest(query_text="x")), grpc.StatusCode.UNAUTHENTICATED
        )
        await expect_status(c.retrieval.Stats(pb.StatsRequest()), grpc.StatusCode.UNAUTHENTICATED)


# -- internal API (RAG orchestrator through a DeploymentHandle) ------------------------------------
async def test_internal_methods_take_the_tenant_explicitly(backend, clients):
    s = backend.servicer
    await s.upsert_internal(
        ALPHA,
        pb.UpsertRequest(documents=[vdoc("internal", ["via handle"], seed=7)], embedding_model=VEC_MODEL),
    )
    r = await s.search_internal(
        ALPHA, pb.SearchRequest(query_vector=vec(7), embedding_model=VEC_MODEL, top_k=1)
    )
    assert r.hits[0].chunk.doc_id == "internal"
    r = await s.search_internal(
        BETA, pb.SearchRequest(query_vector=vec(7), embedding_model=VEC_MODEL, top_k=5)
    )
    assert all(h.chunk.doc_id != "internal" for h in r.hits)
    from lorag.common.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="tenant_id"):
        await s.search_internal(
            'x" or 1==1', pb.SearchRequest(query_vector=vec(7), embedding_model=VEC_MODEL)
        )
    out = await s.delete_documents_internal(ALPHA, pb.DeleteDocumentsRequest(doc_ids=["internal"]))
    assert out.deleted_chunk_count == 1


# -- persistence -------------------------------------------------------------------------------
async def test_data_survives_a_restart(backend, clients, runtime, embedder):
    c = clients[ALPHA]
    await upsert(c, [vdoc("durable", ["persisted chunk text"], seed=900)], embedding_model=VEC_MODEL)
    before = await search(c, query_vector=vec(900), embedding_model=VEC_MODEL, top_k=1)

    backend.servicer.close()  # releases Milvus (the Lite file lock, or the connection)
    if backend.lite_server is not None:  # restart the server process itself on the same data
        backend.lite_server.stop()
        backend.lite_server.start()
    reopened = backend.new_servicer(runtime, embedder)
    try:
        after = await reopened.search_internal(
            ALPHA, pb.SearchRequest(query_vector=vec(900), embedding_model=VEC_MODEL, top_k=1)
        )
        assert [(h.chunk.chunk_id, h.text) for h in after.hits] == [
            (h.chunk.chunk_id, h.text) for h in before.hits
        ]
        sparse = await reopened.search_internal(
            ALPHA,
            pb.SearchRequest(query_text="persisted", mode=pb.SEARCH_MODE_SPARSE, embedding_model=VEC_MODEL),
        )
        assert [h.chunk.doc_id for h in sparse.hits] == ["durable"]
        await reopened.delete_documents_internal(ALPHA, pb.DeleteDocumentsRequest(doc_ids=["durable"]))
    finally:
        reopened.close()

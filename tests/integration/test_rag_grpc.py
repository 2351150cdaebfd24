"""The RAG orchestrator over real gRPC: every service in one in-process host with the real models
(MiniLM embeddings, Milvus Lite, the quick cross-encoder build, SmolLM2 generation)."""

from __future__ import annotations

import asyncio
import contextvars
import pickle

import grpc
import pytest
from google.protobuf import struct_pb2

from lorag.adapters.transfer import upload_requests
from lorag.adapters.v1 import adapters_pb2 as apb
from lorag.admin.v1 import admin_pb2
from lorag.client import AsyncClient
from lorag.common.hosts import start_inprocess
from lorag.common.rpc import Runtime
from lorag.common.settings import LoragSettings
from lorag.common.v1 import common_pb2
from lorag.generation.v1 import generation_pb2 as gen_pb
from lorag.rag.core import REFUSAL
from lorag.rag.models import FeedbackRow
from lorag.rag.v1 import rag_pb2 as pb
from tests.integration.conftest import expect_status
from tests.retrieval_helpers import load_corpus
from tests.support.models import smollm2_adapter

SHORT = pb.GenerationOptions(sampling=gen_pb.SamplingParams(temperature=0.0, max_new_tokens=24))
QUESTION = "How do honeybees tell each other where flowers are?"


@pytest.fixture(scope="module")
async def rag(tmp_path_factory):
    """A host of its own (own registry and Milvus Lite file). Its reranker is the bi-encoder
    stand-in every platform uses until the cross-encoder is built (calibrated for rejection)."""
    data_dir = tmp_path_factory.mktemp("rag")
    runtime = Runtime.build(LoragSettings(data_dir=data_dir, auth_cache_ttl_s=0.5))
    operator_key = runtime.tenants.bootstrap()
    host = await start_inprocess(runtime)
    clients = {}
    async with AsyncClient(host.target, operator_key, timeout=120) as operator:
        for name in ("rag-a", "rag-b"):
            resp = await operator.admin.CreateTenant(
                admin_pb2.CreateTenantRequest(tenant_id=name, create_admin_key=True)
            )
            clients[name] = AsyncClient(host.target, resp.admin_api_key, timeout=300)
    corpus = load_corpus()
    yield clients, corpus, runtime, host
    for c in clients.values():
        await c.close()
    await host.stop(0)
    runtime.close()


def document(d: dict, **metadata) -> pb.Document:
    meta = struct_pb2.Struct()
    meta.update({"topic": d["doc_id"], **metadata})
    return pb.Document(doc_id=d["doc_id"], title=d.get("title", ""), text=d["text"], metadata=meta)


async def ingest(client, docs, options=None):
    async def messages():
        for i, d in enumerate(docs):
            yield pb.IngestRequest(document=d, options=options if i == 0 and options else None)

    return [m async for m in client.rag.Ingest(messages())]


@pytest.fixture(scope="module")
async def indexed(rag):
    clients, corpus, *_ = rag
    out = await ingest(clients["rag-a"], [document(d) for d in corpus["documents"]])
    return out


async def test_ingest_streams_progress_per_document_and_skips_unchanged(rag, indexed):
    clients, corpus, *_ = rag
    n = len(corpus["documents"])
    assert [m.result.doc_id for m in indexed] == [d["doc_id"] for d in corpus["documents"]]
    assert all(m.result.status == pb.INGEST_STATUS_INDEXED and m.result.chunk_count >= 1 for m in indexed)
    assert [m.totals.received for m in indexed] == list(range(1, n + 1))
    assert indexed[-1].totals.indexed == n and indexed[-1].totals.chunks >= n
    docs = [document(d) for d in corpus["documents"][:3]]
    again = await clients["rag-a"].rag.IngestDocuments(pb.IngestDocumentsRequest(documents=docs))
    assert [r.status for r in again.results] == [pb.INGEST_STATUS_SKIPPED] * 3
    assert again.totals.skipped == 3 and again.results[0].chunk_count == indexed[0].result.chunk_count
    forced = await clients["rag-a"].rag.IngestDocuments(
        pb.IngestDocumentsRequest(documents=docs[:1], options=pb.IngestOptions(force=True))
    )
    assert forced.results[0].status == pb.INGEST_STATUS_INDEXED
    changed = document(corpus["documents"][0], edition=2)
    resp = await clients["rag-a"].rag.IngestDocuments(pb.IngestDocumentsRequest(documents=[changed]))
    assert resp.results[0].status == pb.INGEST_STATUS_INDEXED  # metadata changed: re-indexed


async def test_a_bad_document_fails_alone_in_the_stream(rag, indexed):
    clients, *_ = rag
    docs = [
        pb.Document(doc_id="ok-1", text="Glaciers are slow rivers of ice that carve valleys."),
        pb.Document(doc_id="", text="no id"),
        pb.Document(doc_id="pdfish", data=b"\x00\x01", mime_type="application/x-unknown"),
        pb.Document(doc_id="ok-2", text="Volcanoes release lava, ash and gases."),
    ]
    out = await ingest(clients["rag-b"], docs)
    status = [m.result.status for m in out]
    assert status == [
        pb.INGEST_STATUS_INDEXED,
        pb.INGEST_STATUS_FAILED,
        pb.INGEST_STATUS_FAILED,
        pb.INGEST_STATUS_INDEXED,
    ]
    assert "doc_id" in out[1].result.error and out[2].result.error
    assert out[-1].totals.failed == 2 and out[-1].totals.indexed == 2
    deleted = await clients["rag-b"].rag.DeleteDocuments(pb.DeleteDocumentsRequest(doc_ids=["ok-1", "ok-2"]))
    assert deleted.deleted_document_count == 2 and deleted.deleted_chunk_count >= 2


async def test_ask_answers_with_citations_timings_and_usage(rag, indexed):
    clients, *_ = rag
    resp = await clients["rag-a"].rag.Ask(
        pb.AskRequest(question=QUESTION, generation=SHORT, return_contexts=True)
    )
    assert not resp.rejected and resp.answer and resp.answer != REFUSAL
    assert resp.contexts[0].doc_id == "honeybees"  # the reranker put the relevant passage first
    assert [c.index for c in resp.contexts] == list(range(1, len(resp.contexts) + 1))
    assert all(c.doc_id and c.chunk_id and c.text and 0 <= c.score <= 1 for c in resp.contexts)
    assert {c.chunk_id for c in resp.citations} <= {c.chunk_id for c in resp.contexts}
    stages = [t.stage for t in resp.timings]
    assert stages == ["route", "embed", "search", "rerank", "assemble", "generate"]
    assert all(t.duration_ms >= 0 for t in resp.timings)
    u = resp.usage
    assert (
        u.completion_tokens > 0
        and u.prompt_tokens > 50
        and u.total_tokens == u.prompt_tokens + u.completion_tokens
    )
    assert resp.answer_id.startswith("ans_") and len(resp.trace_id) == 32
    assert resp.retrieval_performed and resp.search_queries == [QUESTION]


async def test_ask_stream_sends_deltas_then_one_result(rag, indexed):
    clients, *_ = rag
    msgs = [
        m
        async for m in clients["rag-a"].rag.AskStream(
            pb.AskStreamRequest(question=QUESTION, generation=SHORT)
        )
    ]
    kinds = [m.WhichOneof("event") for m in msgs]
    assert kinds[-1] == "result" and kinds.count("result") == 1 and kinds.count("answer_delta") >= 2
    result = msgs[-1].result
    assert "".join(m.answer_delta for m in msgs[:-1]) == result.answer
    assert not result.rejected


async def test_unsupported_questions_are_rejected_not_answered(rag, indexed):
    clients, *_ = rag
    resp = await clients["rag-a"].rag.Ask(
        pb.AskRequest(question="What is the recommended dosage of ibuprofen for toddlers?", generation=SHORT)
    )
    assert resp.rejected and resp.answer == REFUSAL and not resp.citations
    assert "generate" not in [t.stage for t in resp.timings]
    assert resp.answer_id  # can still receive feedback


async def test_tenant_b_never_receives_tenant_a_chunks(rag, indexed):
    clients, corpus, *_ = rag
    b = clients["rag-b"]
    a_ids = {d["doc_id"] for d in corpus["documents"]}
    resp = await b.rag.Ask(pb.AskRequest(question=QUESTION, generation=SHORT, return_contexts=True))
    assert resp.rejected and not resp.citations and not {c.doc_id for c in resp.contexts} & a_ids
    # same doc id in B does not touch A's document
    await b.rag.IngestDocuments(
        pb.IngestDocumentsRequest(
            documents=[pb.Document(doc_id="honeybees", text="Bees in tenant B make wax.")]
        )
    )
    a_resp = await clients["rag-a"].rag.Ask(
        pb.AskRequest(question=QUESTION, generation=SHORT, return_contexts=True)
    )
    assert all("tenant B" not in c.text for c in a_resp.contexts)
    b_resp = await b.rag.Ask(
        pb.AskRequest(
            question="What do bees in tenant B make?",
            generation=SHORT,
            return_contexts=True,
            retrieval=pb.RetrievalOptions(min_relevance=0.0),
        )
    )
    assert "Bees in tenant B make wax." in {c.text for c in b_resp.contexts}
    assert all(c.doc_id not in a_ids or c.text == "Bees in tenant B make wax." for c in b_resp.contexts)
    # a filter naming tenant_id is refused, never used to reach another tenant
    forged = common_pb2.Filter(
        conditions=[
            common_pb2.FilterCondition(
                field="tenant_id", op=common_pb2.FILTER_OP_EQ, values=[struct_pb2.Value(string_value="rag-a")]
            )
        ]
    )
    await expect_status(
        b.rag.Ask(pb.AskRequest(question=QUESTION, filter=forged)), grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_metadata_filters_restrict_the_passages(rag, indexed):
    clients, *_ = rag
    only_tcp = common_pb2.Filter(
        conditions=[
            common_pb2.FilterCondition(
                field="topic",
                op=common_pb2.FILTER_OP_EQ,
                values=[struct_pb2.Value(string_value="tcp-handshake")],
            )
        ]
    )
    resp = await clients["rag-a"].rag.Ask(
        pb.AskRequest(
            question=QUESTION,
            filter=only_tcp,
            generation=SHORT,
            return_contexts=True,
            retrieval=pb.RetrievalOptions(min_relevance=0.0),
        )
    )
    assert resp.contexts and {c.doc_id for c in resp.contexts} == {"tcp-handshake"}


async def test_routing_templates_and_query_expansion(rag, indexed):
    clients, *_ = rag
    a = clients["rag-a"]
    never = await a.rag.Ask(
        pb.AskRequest(question=QUESTION, routing=pb.RETRIEVAL_ROUTING_NEVER, generation=SHORT)
    )
    assert not never.retrieval_performed and not never.citations and never.answer
    hello = await a.rag.Ask(
        pb.AskRequest(question="Hello!", routing=pb.RETRIEVAL_ROUTING_AUTO, generation=SHORT)
    )
    assert not hello.retrieval_performed
    cot = await a.rag.Ask(
        pb.AskRequest(
            question=QUESTION,
            template="cot",
            generation=pb.GenerationOptions(
                sampling=gen_pb.SamplingParams(temperature=0.0, max_new_tokens=64)
            ),
        )
    )
    assert cot.answer and "final answer:" not in cot.answer.lower()
    expanded = await a.rag.Ask(pb.AskRequest(question=QUESTION, multi_query=2, generation=SHORT))
    assert expanded.search_queries[0] == QUESTION and 1 <= len(expanded.search_queries) <= 3
    assert "expand" in [t.stage for t in expanded.timings]


async def test_answers_use_the_tenants_adapter_and_never_a_foreign_one(rag, indexed, tmp_path):
    clients, *_ = rag
    a, b = clients["rag-a"], clients["rag-b"]
    resp = await a.adapters.UploadAdapterVersion(
        upload_requests(
            smollm2_adapter(tmp_path / "bot", seed=3), adapter_name="helper", chunk_bytes=256 * 1024
        )
    )
    await a.adapters.SetAlias(apb.SetAliasRequest(adapter_name="helper", alias="production", version=1))
    ans = await a.rag.Ask(
        pb.AskRequest(
            question=QUESTION, adapter=common_pb2.AdapterRef(ref="helper@production"), generation=SHORT
        )
    )
    assert ans.adapter_version_id == resp.version.version_id
    details = await expect_status(
        b.rag.Ask(pb.AskRequest(question=QUESTION, adapter=common_pb2.AdapterRef(ref="helper"))),
        grpc.StatusCode.NOT_FOUND,
    )
    missing = await expect_status(
        b.rag.Ask(pb.AskRequest(question=QUESTION, adapter=common_pb2.AdapterRef(ref="nope"))),
        grpc.StatusCode.NOT_FOUND,
    )
    assert details.replace("helper", "X") == missing.replace("nope", "X")  # existence does not leak


@pytest.mark.parametrize(
    ("request_", "code", "needle"),
    [
        (pb.AskRequest(question=""), "INVALID_ARGUMENT", "question"),
        (pb.AskRequest(question="word " * 2000), "INVALID_ARGUMENT", "question"),
        (pb.AskRequest(question="q", retrieval=pb.RetrievalOptions(top_k=500)), "INVALID_ARGUMENT", "top_k"),
        (
            pb.AskRequest(question="q", retrieval=pb.RetrievalOptions(top_k=3, rerank_top_n=5)),
            "INVALID_ARGUMENT",
            "rerank_top_n",
        ),
        (pb.AskRequest(question="q", multi_query=9), "INVALID_ARGUMENT", "multi_query"),
        (pb.AskRequest(question="q", template="nope"), "NOT_FOUND", "template"),
        (
            pb.AskRequest(
                question="q",
                filter=common_pb2.Filter(
                    conditions=[common_pb2.FilterCondition(field="x y", op=common_pb2.FILTER_OP_EQ)]
                ),
            ),
            "INVALID_ARGUMENT",
            "filter",
        ),
    ],
)
async def test_bad_questions_get_a_clear_status(rag, request_, code, needle):
    clients, *_ = rag
    details = await expect_status(clients["rag-a"].rag.Ask(request_), getattr(grpc.StatusCode, code))
    assert needle in details


async def test_feedback_is_stored_per_tenant(rag, indexed):
    clients, _, runtime, _ = rag
    a, b = clients["rag-a"], clients["rag-b"]
    ans = await a.rag.Ask(pb.AskRequest(question=QUESTION, generation=SHORT, return_contexts=True))
    chunk = ans.contexts[0].chunk_id
    fb = await a.rag.Feedback(
        pb.FeedbackRequest(
            answer_id=ans.answer_id,
            rating=pb.FEEDBACK_RATING_THUMBS_DOWN,
            corrected_answer="They dance: the waggle dance points to the flowers.",
            relevant_chunk_ids=[chunk],
        )
    )
    with runtime.db.session() as s:
        row = s.get(FeedbackRow, fb.feedback_id)
    assert row.tenant_id == "rag-a" and row.answer_id == ans.answer_id and row.rating == "down"
    assert row.relevant_chunk_ids == [chunk] and "waggle" in row.corrected_answer
    foreign = await expect_status(
        b.rag.Feedback(pb.FeedbackRequest(answer_id=ans.answer_id, rating=pb.FEEDBACK_RATING_THUMBS_UP)),
        grpc.StatusCode.NOT_FOUND,
    )
    unknown = await expect_status(
        b.rag.Feedback(pb.FeedbackRequest(answer_id="ans_" + "0" * 32, rating=pb.FEEDBACK_RATING_THUMBS_UP)),
        grpc.StatusCode.NOT_FOUND,
    )
    assert foreign.replace(ans.answer_id, "X") == unknown.replace("ans_" + "0" * 32, "X")
    await expect_status(
        a.rag.Feedback(pb.FeedbackRequest(answer_id=ans.answer_id)), grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_concurrent_asks_all_complete(rag, indexed):
    clients, *_ = rag
    a = clients["rag-a"]
    questions = [QUESTION, "What does the MOSE barrier protect?", "What is a SYN-ACK segment?"]
    results = await asyncio.gather(
        *(a.rag.Ask(pb.AskRequest(question=q, generation=SHORT)) for q in questions)
    )
    assert len({r.answer_id for r in results}) == 3 and all(r.answer for r in results)
    assert not results[0].rejected and results[0].answer != REFUSAL


class BoundaryHandle:
    """A DeploymentHandle stand-in: pickled arguments and results, and a fresh context per call in
    which none of the caller's contextvars (current span, log fields) survive — as across Ray."""

    def __init__(self, target, *, stream: bool = False) -> None:
        self.target, self.stream = target, stream

    def options(self, *, stream: bool = False, multiplexed_model_id: str = ""):
        return BoundaryHandle(self.target, stream=stream)

    def __getattr__(self, name: str):
        method, stream = getattr(self.target, name), self.stream

        class Method:
            @staticmethod
            def remote(*args, **kwargs):
                args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
                loop = asyncio.get_running_loop()
                if not stream:
                    task = loop.create_task(method(*args, **kwargs), context=contextvars.Context())
                    return _unpickled(task)
                return _unpickled_stream(method(*args, **kwargs), contextvars.Context())

        return Method()


async def _unpickled(task):
    return pickle.loads(pickle.dumps(await task))


async def _unpickled_stream(agen, ctx):
    loop = asyncio.get_running_loop()
    while True:
        try:
            item = await loop.create_task(agen.__anext__(), context=ctx)
        except StopAsyncIteration:
            return
        yield pickle.loads(pickle.dumps(item))


async def test_one_trace_covers_client_rag_and_every_service_behind_it(rag, indexed):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from lorag.common import telemetry
    from lorag.rag.downstream import ServeDownstream
    from lorag.rag.servicer import RagServicer
    from lorag.rag.settings import RagSettings
    from lorag.rag.v1 import rag_pb2_grpc

    clients, _corpus, runtime, host = rag
    provider, exporter = TracerProvider(), InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = telemetry._provider
    telemetry.use_provider(provider)
    downstream = ServeDownstream(RagSettings())
    downstream._handles = {app: BoundaryHandle(host.servicers[app]) for app in downstream.apps}
    servicer = RagServicer(runtime, downstream=downstream)
    server = grpc.aio.server()
    rag_pb2_grpc.add_RagServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    key = clients["rag-a"].api_key
    try:
        async with AsyncClient(f"127.0.0.1:{port}", key, timeout=300) as client:
            with provider.get_tracer("test").start_as_current_span("client", kind=SpanKind.CLIENT) as root:
                carrier = {}
                TraceContextTextMapPropagator().inject(carrier)
                resp = await client.rag.Ask(
                    pb.AskRequest(question=QUESTION, generation=SHORT), metadata=tuple(carrier.items())
                )
    finally:
        await server.stop(0)
        if previous is not None:
            telemetry.use_provider(previous)
    assert resp.answer and resp.trace_id == format(root.get_span_context().trace_id, "032x")
    finished = [
        s for s in exporter.get_finished_spans() if s.context.trace_id == root.get_span_context().trace_id
    ]
    by_id = {s.context.span_id: s for s in finished}
    rpc = next(s for s in finished if s.name == "lorag.rag.v1.RagService/Ask")
    assert rpc.parent.span_id == root.get_span_context().span_id

    def ancestors(s):
        out = []
        while s.parent is not None and s.parent.span_id in by_id:
            s = by_id[s.parent.span_id]
            out.append(s.name)
        return out

    for hop, stage in [
        ("embedding/embed_internal", "embed"),
        ("retrieval/search_internal", "search"),
        ("reranking/rerank_internal", "rerank"),
        ("generation/generate_stream_internal", "generate"),
    ]:
        span = next((s for s in finished if s.name == hop), None)
        assert span is not None, (hop, sorted({s.name for s in finished}))
        chain = ancestors(span)
        assert chain[0] == stage and rpc.name in chain, (hop, chain)

"""The RAG orchestrator through Ray Serve: the `rag` application calls embedding, retrieval,
reranking and generation through DeploymentHandles; clients reach it through the gRPC proxy."""

import sqlite3

import grpc
import pytest
from google.protobuf import struct_pb2

from lorag.adapters.transfer import upload_requests
from lorag.adapters.v1 import adapters_pb2 as apb
from lorag.admin.v1 import admin_pb2
from lorag.client import Client
from lorag.common.v1 import common_pb2
from lorag.generation.v1 import generation_pb2 as gen_pb
from lorag.rag.core import REFUSAL
from lorag.rag.v1 import rag_pb2 as pb
from tests.retrieval_helpers import load_corpus
from tests.support.models import smollm2_adapter

SHORT = pb.GenerationOptions(sampling=gen_pb.SamplingParams(temperature=0.0, max_new_tokens=20))
QUESTION = "How do honeybees tell each other where flowers are?"


@pytest.fixture(scope="module")
def tenants(platform):
    out = {}
    with Client(platform.target, platform.operator_key, timeout=60) as operator:
        for name in ("e2e-rag-a", "e2e-rag-b"):
            resp = operator.admin.CreateTenant(
                admin_pb2.CreateTenantRequest(tenant_id=name, create_admin_key=True)
            )
            out[name] = Client(platform.target, resp.admin_api_key, timeout=300)
    a = out["e2e-rag-a"]
    docs = []
    for d in load_corpus()["documents"]:
        meta = struct_pb2.Struct()
        meta.update({"topic": d["doc_id"]})
        docs.append(pb.Document(doc_id=d["doc_id"], title=d.get("title", ""), text=d["text"], metadata=meta))

    def messages():
        for d in docs:
            yield pb.IngestRequest(document=d)

    progress = list(a.rag.Ingest(messages()))
    yield out, progress
    for c in out.values():
        c.close()


def test_ingest_through_the_proxy_reports_every_document(tenants):
    _, progress = tenants
    n = len(load_corpus()["documents"])
    assert len(progress) == n and progress[-1].totals.indexed == n
    assert all(m.result.status == pb.INGEST_STATUS_INDEXED for m in progress)


def test_ask_with_citations_and_stream(tenants):
    clients, _ = tenants
    a = clients["e2e-rag-a"]
    resp = a.rag.Ask(pb.AskRequest(question=QUESTION, generation=SHORT, return_contexts=True))
    assert not resp.rejected and resp.answer and resp.contexts[0].doc_id == "honeybees"
    assert [t.stage for t in resp.timings] == ["route", "embed", "search", "rerank", "assemble", "generate"]
    msgs = list(a.rag.AskStream(pb.AskStreamRequest(question=QUESTION, generation=SHORT)))
    assert msgs[-1].WhichOneof("event") == "result"
    assert "".join(m.answer_delta for m in msgs[:-1]) == msgs[-1].result.answer
    assert len(msgs) > 2


def test_negative_rejection_through_ray(tenants):
    clients, _ = tenants
    resp = clients["e2e-rag-a"].rag.Ask(
        pb.AskRequest(
            question="What is the recommended dosage of ibuprofen for toddlers?",
            generation=SHORT,
            retrieval=pb.RetrievalOptions(min_relevance=1.0),
        )
    )
    assert resp.rejected and resp.answer == REFUSAL and not resp.citations
    assert "generate" not in [t.stage for t in resp.timings]


def test_tenant_b_never_receives_tenant_a_chunks_or_adapter(tenants, tmp_path):
    clients, _ = tenants
    a, b = clients["e2e-rag-a"], clients["e2e-rag-b"]
    resp = b.rag.Ask(pb.AskRequest(question=QUESTION, generation=SHORT, return_contexts=True))
    assert resp.rejected and not resp.contexts
    up = a.adapters.UploadAdapterVersion(
        upload_requests(
            smollm2_adapter(tmp_path / "bot", seed=5), adapter_name="e2e-bot", chunk_bytes=128 * 1024
        )
    )
    a.adapters.SetAlias(apb.SetAliasRequest(adapter_name="e2e-bot", alias="production", version=1))
    mine = a.rag.Ask(
        pb.AskRequest(
            question=QUESTION, adapter=common_pb2.AdapterRef(ref="e2e-bot@production"), generation=SHORT
        )
    )
    assert mine.adapter_version_id == up.version.version_id
    with pytest.raises(grpc.RpcError) as info:
        b.rag.Ask(pb.AskRequest(question=QUESTION, adapter=common_pb2.AdapterRef(ref="e2e-bot")))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "Traceback" not in info.value.details() and "ray" not in info.value.details().lower()


def test_feedback_is_stored(platform, tenants):
    clients, _ = tenants
    a = clients["e2e-rag-a"]
    ans = a.rag.Ask(pb.AskRequest(question=QUESTION, generation=SHORT, return_contexts=True))
    fb = a.rag.Feedback(
        pb.FeedbackRequest(
            answer_id=ans.answer_id,
            rating=pb.FEEDBACK_RATING_THUMBS_UP,
            relevant_chunk_ids=[ans.contexts[0].chunk_id],
        )
    )
    with sqlite3.connect(platform.data_dir / "registry.db") as db:
        row = db.execute(
            "SELECT tenant_id, answer_id, rating FROM rag_feedback WHERE feedback_id = ?", (fb.feedback_id,)
        ).fetchone()
    assert row == ("e2e-rag-a", ans.answer_id, "up")


def test_bad_question_through_the_proxy(tenants):
    clients, _ = tenants
    with pytest.raises(grpc.RpcError) as info:
        clients["e2e-rag-a"].rag.Ask(pb.AskRequest(question=""))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "question" in info.value.details()

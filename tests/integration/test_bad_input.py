"""Bad input to every RPC of every service, over real gRPC on the in-process host.

A table names, for every RPC, requests that are malformed, oversized or on a boundary — empty,
over a documented limit, wrong JSON types in metadata, invalid UTF-8, int64 extremes, NaN and
infinite floats, unknown enum values — and the status each must get, with a word the message must
contain (the field or the limit). Every RPC also gets the generic cases: a zero and an already
expired deadline, a message over ``LORAG_MAX_MESSAGE_BYTES``, bytes that are not a protobuf
message, and invalid UTF-8 in a string field.

After every bad request the tenant's state is compared with the state before it: registry rows
of the tenant (adapters, versions, aliases, datasets, jobs, keys, audit events, answers,
feedback, the tenant row and its quota), the registry revision, the documents and chunks in
Milvus, the blob store under the tenant's prefix and the staging directories (no leftovers). A
good request at the end of each RPC's group must still succeed. The table must cover every RPC
of the services' descriptors, so an RPC added without bad-input cases fails this suite.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, message_factory, struct_pb2
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from sqlalchemy import inspect, text

from lorag.adapters.servicer import registry_for
from lorag.adapters.transfer import upload_requests
from lorag.adapters.v1 import adapters_pb2 as apb
from lorag.adapters.v1 import training_pb2 as tpb
from lorag.admin.v1 import admin_pb2
from lorag.apps import APPS, import_object
from lorag.common.rpc import all_services
from lorag.common.v1 import common_pb2
from lorag.embedding.v1 import embedding_pb2 as epb
from lorag.generation.v1 import generation_pb2 as gpb
from lorag.rag.v1 import rag_pb2
from lorag.reranking.v1 import reranking_pb2 as kpb
from lorag.retrieval.v1 import retrieval_pb2 as rpb
from tests.support.adapters import build_llama_adapter, write_tar

TENANT = "bad-input"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
OUT_OF_RANGE = grpc.StatusCode.OUT_OF_RANGE
DENIED = grpc.StatusCode.PERMISSION_DENIED
DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED
INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)
INT32_MAX, INT32_MIN = 2**31 - 1, -(2**31)
UINT64_MAX = 2**64 - 1
NAN, INF = math.nan, math.inf
UNKNOWN_ENUM = 99
BAD_UTF8 = b"caf\xc3\x28 \xff\xfe"
MESSAGE_LIMIT = 256 * 1024  # the session host's LORAG_MAX_MESSAGE_BYTES (tests/integration/conftest.py)
CHUNK = 64 * 1024
TABLES_WITHOUT_STATE = {"usage_counters"}  # request counters move with every call, good or bad


# -- the world: one tenant with a little of everything ------------------------------------------


@dataclass(repr=False)
class World:
    runtime: Any
    host: Any
    channel: grpc.aio.Channel
    keys: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)
    adapter_dir: Path | None = None
    blob_root: Path | None = None
    staging: tuple[Path, ...] = ()
    tables: list[str] = field(default_factory=list)

    def md(self, who: str) -> tuple:
        return (("authorization", f"Bearer {self.keys[who]}"),)

    def __repr__(self) -> str:
        return f"World({self.host.target})"


def _doc(doc_id: str, text_: str, **meta) -> rag_pb2.Document:
    m = struct_pb2.Struct()
    m.update(meta)
    return rag_pb2.Document(doc_id=doc_id, title=f"title of {doc_id}", text=text_, metadata=m)


def _struct(value: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"x": value}
    return value


def _records(n: int = 12) -> bytes:
    lines = [
        json.dumps({"prompt": f"What is code {i}?", "completion": f"The code {i} is QX-{i:03d}."})
        for i in range(n)
    ]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
async def world(host, operator, runtime, tmp_path_factory):
    channel = grpc.aio.insecure_channel(host.target)
    resp = await operator.admin.CreateTenant(
        admin_pb2.CreateTenantRequest(tenant_id=TENANT, create_admin_key=True)
    )
    w = World(runtime=runtime, host=host, channel=channel, keys={"admin": resp.admin_api_key})
    user = await _unary(
        w,
        "lorag.admin.v1.AdminService/CreateApiKey",
        admin_pb2.CreateApiKeyRequest(role=admin_pb2.ROLE_USER, description="app"),
    )
    w.keys["user"] = user.api_key
    w.ids["key_id"] = user.key.key_id
    await _unary(
        w,
        "lorag.rag.v1.RagService/IngestDocuments",
        rag_pb2.IngestDocumentsRequest(
            documents=[_doc("bi-doc", "The lighthouse keeper writes the storm into the logbook.", team="red")]
        ),
    )
    w.adapter_dir = build_llama_adapter(tmp_path_factory.mktemp("bad-input-adapter") / "v1", seed=7)
    up = await _client_stream(
        w,
        "lorag.adapters.v1.AdapterService/UploadAdapterVersion",
        list(upload_requests(w.adapter_dir, adapter_name="bi-bot", chunk_bytes=CHUNK)),
    )
    w.ids["version_id"] = up.version.version_id
    await _unary(
        w,
        "lorag.adapters.v1.AdapterService/SetAlias",
        apb.SetAliasRequest(adapter_name="bi-bot", alias="production", version=1),
    )
    ask = await _unary(
        w,
        "lorag.rag.v1.RagService/Ask",
        rag_pb2.AskRequest(
            question="What does the lighthouse keeper write?",
            retrieval=rag_pb2.RetrievalOptions(min_relevance=1.0),
        ),
        key="user",
    )
    w.ids["answer_id"] = ask.answer_id
    data = _records()
    ds = await _client_stream(
        w,
        "lorag.adapters.v1.TrainingService/UploadDataset",
        [
            tpb.UploadDatasetRequest(
                metadata=tpb.DatasetUploadMetadata(
                    name="bi-data",
                    kind=apb.ADAPTER_KIND_GENERATION,
                    format=tpb.DATASET_FORMAT_JSONL,
                    total_size=len(data),
                )
            ),
            tpb.UploadDatasetRequest(chunk=data),
        ],
    )
    w.ids["dataset_id"] = ds.dataset.dataset_id
    registry = registry_for(runtime)
    w.blob_root = Path(registry.blobs.tenant_prefix(TENANT))
    staging = {registry.staging_root}
    training = getattr(host.servicers["adapters"], "training", None)
    if training is not None:
        staging.add(Path(training.datasets.staging_root))
    w.staging = tuple(staging)
    yield w
    await channel.close()


# -- calling any RPC by its descriptor ----------------------------------------------------------


def _methods() -> dict[str, MethodDescriptor]:
    out: dict[str, MethodDescriptor] = {}
    for spec in APPS:
        for svc in all_services(import_object(spec.servicer)):
            for m in svc.methods:
                out[f"{svc.full_name}/{m.name}"] = m
    return out


METHODS = _methods()


def _wire(message: Any) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


async def _invoke(
    w: World,
    path: str,
    request: Any,
    *,
    key: str = "admin",
    timeout: float | None = 20,
    max_responses: int = 1000,
) -> Any:
    """Call ``path`` with ``request`` (a message, raw bytes, or a list of them for client streams);
    unary responses are returned, streamed ones collected (at most ``max_responses``)."""
    m = METHODS[path]
    out_cls = message_factory.GetMessageClass(m.output_type)
    kw = dict(request_serializer=_wire, response_deserializer=out_cls.FromString)
    md = w.md(key)
    if m.client_streaming:
        messages = request if isinstance(request, list) else [request]

        async def gen():
            for item in messages:
                yield item

        if m.server_streaming:
            call = w.channel.stream_stream(f"/{path}", **kw)(gen(), metadata=md, timeout=timeout)
            return await _collect(call, max_responses)
        return await w.channel.stream_unary(f"/{path}", **kw)(gen(), metadata=md, timeout=timeout)
    if m.server_streaming:
        call = w.channel.unary_stream(f"/{path}", **kw)(request, metadata=md, timeout=timeout)
        return await _collect(call, max_responses)
    return await w.channel.unary_unary(f"/{path}", **kw)(request, metadata=md, timeout=timeout)


async def _collect(call, max_responses: int) -> list:
    out = []
    async for item in call:
        out.append(item)
        if len(out) >= max_responses:
            call.cancel()
            break
    return out


async def _unary(w: World, path: str, request: Any, *, key: str = "admin") -> Any:
    return await _invoke(w, path, request, key=key)


async def _client_stream(w: World, path: str, messages: list, *, key: str = "admin") -> Any:
    return await _invoke(w, path, messages, key=key)


# -- what "nothing was written" means -------------------------------------------------------------


async def _snapshot(w: World) -> dict:
    out: dict[str, Any] = {}
    with w.runtime.db.session() as s:
        for table in _tenant_tables(w):
            rows = s.execute(text(f"SELECT * FROM {table} WHERE tenant_id = :t"), {"t": TENANT})
            out[table] = sorted(repr(tuple(r)) for r in rows)
        out["revision"] = s.execute(text("SELECT * FROM registry_revision")).all()
    stats = await _unary(w, "lorag.retrieval.v1.RetrievalService/Stats", rpb.StatsRequest())
    out["milvus"] = (stats.document_count, stats.chunk_count)
    docs = await _unary(w, "lorag.retrieval.v1.RetrievalService/ListDocuments", rpb.ListDocumentsRequest())
    out["documents"] = sorted(json_format.MessageToJson(d, sort_keys=True) for d in docs.documents)
    out["blobs"] = sorted(
        (str(p.relative_to(w.blob_root)), p.stat().st_size) for p in w.blob_root.rglob("*") if p.is_file()
    )
    out["staged"] = sorted(str(p) for root in w.staging for p in Path(root).iterdir())
    return out


def _tenant_tables(w: World) -> list[str]:
    if not w.tables:
        insp = inspect(w.runtime.db.engine)
        w.tables = [
            t
            for t in sorted(insp.get_table_names())
            if t not in TABLES_WITHOUT_STATE and "tenant_id" in {c["name"] for c in insp.get_columns(t)}
        ]
    return w.tables


async def _settled(w: World, before: dict) -> tuple[list[str], dict]:
    """(what changed, the state now); a call the client gave up on may still be cleaning up on
    the server, so a difference must persist for a moment to count."""
    for _ in range(20):
        after = await _snapshot(w)
        changed = _diff(before, after)
        if not changed:
            return [], after
        await asyncio.sleep(0.1)
    return changed, after


def _diff(before: dict, after: dict) -> list[str]:
    return [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]


# -- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    what: str
    request: Any  # message, raw bytes, list (client stream), or callable(World) -> one of those
    code: grpc.StatusCode
    needle: str  # the status message must contain it (case-insensitive): the field or the limit
    key: str = "admin"
    timeout: float | None = 20
    check: Callable[[Any], str | None] | None = None  # for OK answers: what is wrong, or None

    def build(self, w: World) -> Any:
        return self.request(w) if callable(self.request) else self.request


TABLE: dict[str, list[Case]] = {}
GOOD: dict[str, Callable[[World], Any]] = {}


def cases(path: str, good: Callable[[World], Any], *items: Case) -> None:
    assert path not in TABLE, path
    TABLE[path] = list(items)
    GOOD[path] = good


def C(what: str, request: Any, code: grpc.StatusCode, needle: str, **kw) -> Case:  # noqa: N802
    return Case(what, request, code, needle, **kw)


def failed(what: str, request: Any, needle: str) -> Case:
    """A document the request carries is refused with a FAILED result naming ``needle`` (the
    documented answer of the ingest RPCs to a bad document); the call itself succeeds."""
    return Case(what, request, grpc.StatusCode.OK, needle, check=lambda r: _failed_result(r, needle))


def _failed_result(response: Any, needle: str) -> str | None:
    messages = response if isinstance(response, list) else [response]
    results = []
    for m in messages:
        results.extend(m.results if hasattr(m, "results") else [m.result])
    if any(r.status == 2 and needle.lower() in r.error.lower() for r in results):  # *_STATUS_FAILED
        return None
    return f"no FAILED result naming {needle!r}: {[(r.doc_id, r.status, r.error) for r in results]}"


def accepted(what: str, request: Any) -> Case:
    """A boundary value that is valid: the call succeeds (and, for reads, writes nothing)."""
    return Case(what, request, grpc.StatusCode.OK, "", check=lambda r: None)


# ---- embedding ----
EMBED = "lorag.embedding.v1.EmbeddingService/Embed"
cases(
    EMBED,
    lambda w: epb.EmbedRequest(texts=["hello"], input_type=epb.INPUT_TYPE_QUERY),
    C("no texts", epb.EmbedRequest(input_type=epb.INPUT_TYPE_QUERY), INVALID, "texts"),
    C("empty text", epb.EmbedRequest(texts=[""], input_type=epb.INPUT_TYPE_QUERY), INVALID, "texts"),
    C("257 texts", epb.EmbedRequest(texts=["a"] * 257, input_type=epb.INPUT_TYPE_QUERY), INVALID, "256"),
    C(
        "text over 32768 characters",
        epb.EmbedRequest(texts=["a" * 32769], input_type=epb.INPUT_TYPE_QUERY),
        INVALID,
        "32768",
    ),
    C("unspecified input type", epb.EmbedRequest(texts=["a"]), INVALID, "input_type"),
    C("unknown input type", epb.EmbedRequest(texts=["a"], input_type=UNKNOWN_ENUM), INVALID, "input_type"),
    C(
        "unknown model",
        epb.EmbedRequest(texts=["a"], model="no-such-model", input_type=epb.INPUT_TYPE_QUERY),
        NOT_FOUND,
        "no-such-model",
    ),
    C(
        "model name over 128 characters",
        epb.EmbedRequest(texts=["a"], model="m" * 129, input_type=epb.INPUT_TYPE_QUERY),
        NOT_FOUND,
        "model",
    ),
)
cases("lorag.embedding.v1.EmbeddingService/ListModels", lambda w: epb.ListModelsRequest())

# ---- retrieval ----
RET = "lorag.retrieval.v1.RetrievalService/"


def _upsert(*docs: rpb.DocumentInput, **kw) -> rpb.UpsertRequest:
    return rpb.UpsertRequest(documents=list(docs), **kw)


def _din(doc_id: str = "bi-new", text_: str = "fresh text", **kw) -> rpb.DocumentInput:
    return rpb.DocumentInput(doc_id=doc_id, text=text_, **kw)


def _cond(field_: str, op: int, *values) -> common_pb2.FilterCondition:
    return common_pb2.FilterCondition(field=field_, op=op, values=[struct_pb2.Value(**v) for v in values])


cases(
    RET + "Upsert",
    lambda w: _upsert(
        _din(
            "bi-doc",
            "The lighthouse keeper writes the storm into the logbook.",
            metadata=_struct({"team": "red"}),
        )
    ),
    C("no documents", _upsert(), INVALID, "documents"),
    C("101 documents", _upsert(*[_din(f"d{i}") for i in range(101)]), INVALID, "100"),
    C("empty doc id", _upsert(_din("")), INVALID, "doc_id"),
    C("doc id over 256 characters", _upsert(_din("d" * 257)), INVALID, "doc_id"),
    C("control character in doc id", _upsert(_din("bad\x00id")), INVALID, "doc_id"),
    C("duplicate doc ids", _upsert(_din("same"), _din("same")), INVALID, "doc_id"),
    C("title over 1024 characters", _upsert(_din(title="t" * 1025)), INVALID, "title"),
    C("no content", _upsert(rpb.DocumentInput(doc_id="bi-new")), INVALID, "documents[0]"),
    C("empty text", _upsert(_din(text_="")), INVALID, "text"),
    C(
        "metadata: reserved key tenant_id",
        _upsert(_din(metadata=_struct({"tenant_id": "other"}))),
        INVALID,
        "tenant_id",
    ),
    C("metadata: key with a dot", _upsert(_din(metadata=_struct({"a.b": 1}))), INVALID, "metadata"),
    C("metadata: empty key", _upsert(_din(metadata=_struct({"": 1}))), INVALID, "metadata"),
    C("metadata: NaN number", _upsert(_din(metadata=_struct({"score": NAN}))), INVALID, "metadata"),
    C("metadata: infinite number", _upsert(_din(metadata=_struct({"score": INF}))), INVALID, "metadata"),
    C("metadata over 16 KiB", _upsert(_din(metadata=_struct({"blob": "x" * 17000}))), INVALID, "16"),
    C("metadata: nested 12 levels", _upsert(_din(metadata=_struct(_nested(12)))), INVALID, "metadata"),
    C(
        "metadata: list of objects too deep",
        _upsert(_din(metadata=_struct({"a": [[[[[[[[[{"b": 1}]]]]]]]]]}))),
        INVALID,
        "metadata",
    ),
    C(
        "chunk: empty text",
        _upsert(rpb.DocumentInput(doc_id="bi-new", chunks=rpb.ChunkList(chunks=[rpb.Chunk(text="")]))),
        INVALID,
        "chunks",
    ),
    C(
        "chunk: no chunks",
        _upsert(rpb.DocumentInput(doc_id="bi-new", chunks=rpb.ChunkList())),
        INVALID,
        "chunks",
    ),
    C(
        "chunk: vector of the wrong dimension",
        _upsert(
            rpb.DocumentInput(
                doc_id="bi-new", chunks=rpb.ChunkList(chunks=[rpb.Chunk(text="x", dense=[0.1, 0.2])])
            )
        ),
        INVALID,
        "dense",
    ),
    C(
        "chunk: NaN in the vector",
        _upsert(
            rpb.DocumentInput(
                doc_id="bi-new", chunks=rpb.ChunkList(chunks=[rpb.Chunk(text="x", dense=[NAN] * 384)])
            )
        ),
        INVALID,
        "dense",
    ),
    C(
        "chunk: span end before start",
        _upsert(
            rpb.DocumentInput(
                doc_id="bi-new",
                chunks=rpb.ChunkList(chunks=[rpb.Chunk(text="x", span=rpb.CharSpan(start=5, end=1))]),
            )
        ),
        INVALID,
        "span",
    ),
    C(
        "chunk: negative span",
        _upsert(
            rpb.DocumentInput(
                doc_id="bi-new",
                chunks=rpb.ChunkList(chunks=[rpb.Chunk(text="x", span=rpb.CharSpan(start=INT32_MIN, end=1))]),
            )
        ),
        INVALID,
        "span",
    ),
    C(
        "chunking: negative chunk tokens",
        _upsert(_din(), chunking=rpb.ChunkingOptions(chunk_tokens=-1)),
        INVALID,
        "chunk_tokens",
    ),
    C(
        "chunking: overlap above the chunk size",
        _upsert(_din(), chunking=rpb.ChunkingOptions(chunk_tokens=64, overlap_tokens=64)),
        INVALID,
        "overlap",
    ),
    C(
        "chunking: int32 max chunk tokens",
        _upsert(_din(), chunking=rpb.ChunkingOptions(chunk_tokens=INT32_MAX)),
        INVALID,
        "chunk_tokens",
    ),
    C(
        "content_sha256 over 128 characters",
        _upsert(_din(content_sha256="f" * 129)),
        INVALID,
        "content_sha256",
    ),
    C(
        "unknown mime type",
        _upsert(rpb.DocumentInput(doc_id="bi-new", data=b"abc", mime_type="x/y")),
        INVALID,
        "mime_type",
    ),
    failed(
        "invalid UTF-8 as text/plain bytes",
        _upsert(rpb.DocumentInput(doc_id="bi-new", data=BAD_UTF8, mime_type="text/plain")),
        "UTF-8",
    ),
    failed(
        "a PDF that is not one",
        _upsert(rpb.DocumentInput(doc_id="bi-new", data=b"%PDF-1.4 garbage", mime_type="application/pdf")),
        "pdf",
    ),
    C(
        "unknown embedding model",
        _upsert(_din(), embedding_model="no-such-model"),
        NOT_FOUND,
        "no-such-model",
    ),
)
cases(
    RET + "DeleteDocuments",
    lambda w: rpb.DeleteDocumentsRequest(doc_ids=["never-existed"]),
    C("no ids", rpb.DeleteDocumentsRequest(), INVALID, "doc_ids"),
    C("1001 ids", rpb.DeleteDocumentsRequest(doc_ids=[f"d{i}" for i in range(1001)]), INVALID, "1000"),
    C("empty id", rpb.DeleteDocumentsRequest(doc_ids=[""]), INVALID, "doc_ids"),
    C("id over 256 characters", rpb.DeleteDocumentsRequest(doc_ids=["d" * 257]), INVALID, "doc_ids"),
    C(
        "unknown embedding model",
        rpb.DeleteDocumentsRequest(doc_ids=["bi-doc"], embedding_model="nope"),
        NOT_FOUND,
        "nope",
    ),
)


def _search(**kw) -> rpb.SearchRequest:
    kw.setdefault("query_text", "lighthouse")
    return rpb.SearchRequest(**kw)


cases(
    RET + "Search",
    lambda w: _search(mode=rpb.SEARCH_MODE_HYBRID, top_k=3),
    C("sparse without text", rpb.SearchRequest(mode=rpb.SEARCH_MODE_SPARSE), INVALID, "query_text"),
    C("query over 4096 characters", _search(query_text="q" * 4097), INVALID, "query_text"),
    C("unknown mode", _search(mode=UNKNOWN_ENUM), INVALID, "mode"),
    C("unknown fusion", _search(mode=rpb.SEARCH_MODE_HYBRID, fusion=UNKNOWN_ENUM), INVALID, "fusion"),
    C("top_k 0", _search(top_k=0), INVALID, "top_k"),
    C("negative top_k", _search(top_k=-1), INVALID, "top_k"),
    C("top_k 1001", _search(top_k=1001), INVALID, "top_k"),
    C("top_k int32 max", _search(top_k=INT32_MAX), INVALID, "top_k"),
    C("rrf_k 1001", _search(mode=rpb.SEARCH_MODE_HYBRID, rrf_k=1001), INVALID, "rrf_k"),
    C(
        "NaN dense weight",
        _search(mode=rpb.SEARCH_MODE_HYBRID, fusion=rpb.FUSION_METHOD_WEIGHTED, dense_weight=NAN),
        INVALID,
        "weight",
    ),
    C(
        "infinite sparse weight",
        _search(mode=rpb.SEARCH_MODE_HYBRID, fusion=rpb.FUSION_METHOD_WEIGHTED, sparse_weight=INF),
        INVALID,
        "weight",
    ),
    C(
        "negative dense weight",
        _search(mode=rpb.SEARCH_MODE_HYBRID, fusion=rpb.FUSION_METHOD_WEIGHTED, dense_weight=-1.0),
        INVALID,
        "weight",
    ),
    C(
        "vector of the wrong dimension",
        rpb.SearchRequest(mode=rpb.SEARCH_MODE_DENSE, query_vector=[0.5] * 3),
        INVALID,
        "query_vector",
    ),
    C(
        "NaN in the vector",
        rpb.SearchRequest(mode=rpb.SEARCH_MODE_DENSE, query_vector=[NAN] * 384),
        INVALID,
        "query_vector",
    ),
    C(
        "infinite vector",
        rpb.SearchRequest(mode=rpb.SEARCH_MODE_DENSE, query_vector=[INF] * 384),
        INVALID,
        "query_vector",
    ),
    C(
        "filter on tenant_id",
        _search(
            filter=common_pb2.Filter(
                conditions=[_cond("tenant_id", common_pb2.FILTER_OP_EQ, {"string_value": "x"})]
            )
        ),
        INVALID,
        "tenant_id",
    ),
    C(
        "filter: unknown op",
        _search(filter=common_pb2.Filter(conditions=[_cond("team", UNKNOWN_ENUM, {"string_value": "x"})])),
        INVALID,
        "op",
    ),
    C(
        "filter: range of strings",
        _search(
            filter=common_pb2.Filter(
                conditions=[
                    _cond("level", common_pb2.FILTER_OP_RANGE, {"string_value": "a"}, {"string_value": "b"})
                ]
            )
        ),
        INVALID,
        "values",
    ),
    C(
        "filter: range low above high",
        _search(
            filter=common_pb2.Filter(
                conditions=[
                    _cond("level", common_pb2.FILTER_OP_RANGE, {"number_value": 5}, {"number_value": 1})
                ]
            )
        ),
        INVALID,
        "values",
    ),
    C(
        "filter: NaN value",
        _search(
            filter=common_pb2.Filter(
                conditions=[_cond("level", common_pb2.FILTER_OP_GT, {"number_value": NAN})]
            )
        ),
        INVALID,
        "values",
    ),
    C(
        "filter: infinite value",
        _search(
            filter=common_pb2.Filter(
                conditions=[_cond("level", common_pb2.FILTER_OP_LT, {"number_value": -INF})]
            )
        ),
        INVALID,
        "values",
    ),
    C(
        "filter: null value",
        _search(
            filter=common_pb2.Filter(conditions=[_cond("team", common_pb2.FILTER_OP_EQ, {"null_value": 0})])
        ),
        INVALID,
        "values",
    ),
    C(
        "filter: struct value",
        _search(
            filter=common_pb2.Filter(
                conditions=[_cond("team", common_pb2.FILTER_OP_EQ, {"struct_value": _struct({"a": 1})})]
            )
        ),
        INVALID,
        "values",
    ),
    C(
        "filter: 101 values",
        _search(
            filter=common_pb2.Filter(
                conditions=[
                    _cond("team", common_pb2.FILTER_OP_IN, *[{"string_value": str(i)} for i in range(101)])
                ]
            )
        ),
        INVALID,
        "100",
    ),
    C(
        "filter: 33 conditions",
        _search(
            filter=common_pb2.Filter(
                conditions=[_cond("team", common_pb2.FILTER_OP_EQ, {"string_value": "x"})] * 33
            )
        ),
        INVALID,
        "32",
    ),
    C(
        "filter: field over 64 characters",
        _search(
            filter=common_pb2.Filter(
                conditions=[_cond("f" * 65, common_pb2.FILTER_OP_EQ, {"string_value": "x"})]
            )
        ),
        INVALID,
        "field",
    ),
    C(
        "filter: field with a quote",
        _search(
            filter=common_pb2.Filter(
                conditions=[_cond('te"am', common_pb2.FILTER_OP_EQ, {"string_value": "x"})]
            )
        ),
        INVALID,
        "field",
    ),
    C("unknown embedding model", _search(embedding_model="nope"), NOT_FOUND, "nope"),
)
cases(
    RET + "GetDocument",
    lambda w: rpb.GetDocumentRequest(doc_id="bi-doc"),
    C("empty id", rpb.GetDocumentRequest(), INVALID, "doc_id"),
    C("id over 256 characters", rpb.GetDocumentRequest(doc_id="d" * 257), INVALID, "doc_id"),
    C("unknown id", rpb.GetDocumentRequest(doc_id="never-existed"), NOT_FOUND, "never-existed"),
    C(
        "unknown embedding model",
        rpb.GetDocumentRequest(doc_id="bi-doc", embedding_model="nope"),
        NOT_FOUND,
        "nope",
    ),
)


def _page(size: int = 0, token: str = "") -> common_pb2.PageRequest:
    return common_pb2.PageRequest(page_size=size, page_token=token)


PAGE_CASES = (
    ("negative page size", dict(page=_page(-1)), INVALID, "page_size"),
    ("page size over 1000", dict(page=_page(1001)), INVALID, "page_size"),
    ("int32 max page size", dict(page=_page(INT32_MAX)), INVALID, "page_size"),
    ("garbage page token", dict(page=_page(token="not-a-token!")), INVALID, "page_token"),
)


def _paged(cls, **base) -> list[Case]:
    return [C(what, cls(**base, **kw), code, needle) for what, kw, code, needle in PAGE_CASES]


cases(
    RET + "ListDocuments",
    lambda w: rpb.ListDocumentsRequest(page=_page(10)),
    *_paged(rpb.ListDocumentsRequest),
    C(
        "filter on tenant_id",
        rpb.ListDocumentsRequest(
            filter=common_pb2.Filter(conditions=[_cond("tenant_id", common_pb2.FILTER_OP_EXISTS)])
        ),
        INVALID,
        "tenant_id",
    ),
    C("unknown embedding model", rpb.ListDocumentsRequest(embedding_model="nope"), NOT_FOUND, "nope"),
)
cases(
    RET + "Stats",
    lambda w: rpb.StatsRequest(),
    C("unknown embedding model", rpb.StatsRequest(embedding_model="nope"), NOT_FOUND, "nope"),
    C(
        "model name over 128 characters",
        rpb.StatsRequest(embedding_model="m" * 129),
        INVALID,
        "embedding_model",
    ),
)

# ---- reranking ----
RR = "lorag.reranking.v1.RerankingService/"


def _rr(**kw) -> kpb.RerankRequest:
    kw.setdefault("query", "lighthouse")
    kw.setdefault("passages", [kpb.Passage(id="p1", text="the keeper"), kpb.Passage(id="p2", text="a storm")])
    return kpb.RerankRequest(**kw)


cases(
    RR + "Rerank",
    lambda w: _rr(top_n=1),
    C("empty query", _rr(query=""), INVALID, "query"),
    C("query over 4096 characters", _rr(query="q" * 4097), INVALID, "query"),
    C("no passages", _rr(passages=[]), INVALID, "passages"),
    C("1001 passages", _rr(passages=[kpb.Passage(text="x")] * 1001), INVALID, "1000"),
    C("empty passage", _rr(passages=[kpb.Passage(id="p", text="")]), INVALID, "passages"),
    C("passage over 16384 characters", _rr(passages=[kpb.Passage(text="p" * 16385)]), INVALID, "16384"),
    C("passage id over 256 characters", _rr(passages=[kpb.Passage(id="i" * 257, text="x")]), INVALID, "id"),
    C("negative top_n", _rr(top_n=-1), INVALID, "top_n"),
    C("int32 min top_n", _rr(top_n=INT32_MIN), INVALID, "top_n"),
    C("unknown model", _rr(model="nope"), NOT_FOUND, "nope"),
    C(
        "unknown adapter",
        _rr(adapter=common_pb2.AdapterRef(ref="no-such-adapter")),
        NOT_FOUND,
        "no-such-adapter",
    ),
    C("malformed adapter ref", _rr(adapter=common_pb2.AdapterRef(ref="bad ref@@")), INVALID, "adapter"),
    C(
        "generation adapter used for reranking",
        _rr(adapter=common_pb2.AdapterRef(ref="bi-bot")),
        PRECONDITION,
        "bi-bot",
    ),
)
cases("lorag.reranking.v1.RerankingService/ListRerankerModels", lambda w: kpb.ListRerankerModelsRequest())

# ---- generation ----
GEN = "lorag.generation.v1.GenerationService/"


def _sampling(**kw) -> gpb.SamplingParams:
    kw.setdefault("max_new_tokens", 1)
    return gpb.SamplingParams(**kw)


def _gen_cases(cls) -> list[Case]:
    def g(**kw):
        if "chat" not in kw:
            kw.setdefault("prompt", "Hello")
        kw.setdefault("sampling", _sampling(temperature=0.0))
        return cls(**kw)

    user = gpb.ChatMessage(role=gpb.CHAT_ROLE_USER, content="hi")
    return [
        C("no input", cls(sampling=_sampling()), INVALID, "prompt"),
        C("empty prompt", g(prompt=""), INVALID, "prompt"),
        C("prompt over 131072 characters", g(prompt="p" * 131073), INVALID, "prompt"),
        C("chat without messages", g(chat=gpb.Chat()), INVALID, "messages"),
        C(
            "chat ending with the assistant",
            g(chat=gpb.Chat(messages=[user, gpb.ChatMessage(role=gpb.CHAT_ROLE_ASSISTANT, content="yo")])),
            INVALID,
            "messages",
        ),
        C(
            "chat with an unknown role",
            g(chat=gpb.Chat(messages=[gpb.ChatMessage(role=UNKNOWN_ENUM, content="x")])),
            INVALID,
            "role",
        ),
        C(
            "chat with a second system message",
            g(
                chat=gpb.Chat(
                    messages=[
                        gpb.ChatMessage(role=gpb.CHAT_ROLE_SYSTEM, content="a"),
                        gpb.ChatMessage(role=gpb.CHAT_ROLE_SYSTEM, content="b"),
                        user,
                    ]
                )
            ),
            INVALID,
            "system",
        ),
        C("chat: 257 messages", g(chat=gpb.Chat(messages=[user] * 257)), INVALID, "256"),
        C("negative max_new_tokens", g(sampling=_sampling(max_new_tokens=-1)), INVALID, "max_new_tokens"),
        C(
            "max_new_tokens int32 max",
            g(sampling=_sampling(max_new_tokens=INT32_MAX)),
            INVALID,
            "max_new_tokens",
        ),
        C("NaN temperature", g(sampling=_sampling(temperature=NAN)), INVALID, "temperature"),
        C("infinite temperature", g(sampling=_sampling(temperature=INF)), INVALID, "temperature"),
        C("negative temperature", g(sampling=_sampling(temperature=-0.5)), INVALID, "temperature"),
        C("top_p above 1", g(sampling=_sampling(top_p=1.5)), INVALID, "top_p"),
        C("NaN top_p", g(sampling=_sampling(top_p=NAN)), INVALID, "top_p"),
        C("negative top_k", g(sampling=_sampling(top_k=-1)), INVALID, "top_k"),
        C(
            "NaN repetition penalty",
            g(sampling=_sampling(repetition_penalty=NAN)),
            INVALID,
            "repetition_penalty",
        ),
        C(
            "zero repetition penalty",
            g(sampling=_sampling(repetition_penalty=-1.0)),
            INVALID,
            "repetition_penalty",
        ),
        C("9 stop strings", g(sampling=_sampling(stop=["s"] * 9)), INVALID, "stop"),
        C("empty stop string", g(sampling=_sampling(stop=[""])), INVALID, "stop"),
        C("stop string over 64 characters", g(sampling=_sampling(stop=["s" * 65])), INVALID, "stop"),
        accepted("seed uint64 max", g(sampling=_sampling(seed=UINT64_MAX))),
        C("unknown model", g(model="nope"), NOT_FOUND, "nope"),
        C(
            "unknown adapter",
            g(adapter=common_pb2.AdapterRef(ref="no-such-adapter")),
            NOT_FOUND,
            "no-such-adapter",
        ),
        C("unknown adapter version", g(adapter=common_pb2.AdapterRef(ref="bi-bot@v99")), NOT_FOUND, "bi-bot"),
        C("malformed adapter ref", g(adapter=common_pb2.AdapterRef(ref="../../etc")), INVALID, "adapter"),
    ]


cases(
    GEN + "Generate",
    lambda w: gpb.GenerateRequest(prompt="Hello", sampling=_sampling(temperature=0.0)),
    *_gen_cases(gpb.GenerateRequest),
)
cases(
    GEN + "GenerateStream",
    lambda w: gpb.GenerateStreamRequest(prompt="Hello", sampling=_sampling(temperature=0.0)),
    *_gen_cases(gpb.GenerateStreamRequest),
)
cases(GEN + "ListGenerationModels", lambda w: gpb.ListGenerationModelsRequest())
cases(GEN + "GetLoadedAdapters", lambda w: gpb.GetLoadedAdaptersRequest())

# ---- adapters ----
AD = "lorag.adapters.v1.AdapterService/"


def _meta(w: World, **kw) -> apb.UploadAdapterVersionRequest:
    kw.setdefault("adapter_name", "bi-upload")
    kw.setdefault("kind", apb.ADAPTER_KIND_GENERATION)
    kw.setdefault("total_size", _adapter_size(w))
    return apb.UploadAdapterVersionRequest(metadata=apb.AdapterUploadMetadata(**kw))


def _adapter_size(w: World) -> int:
    return sum(p.stat().st_size for p in w.adapter_dir.iterdir())


def _chunk(name: str, data: bytes) -> apb.UploadAdapterVersionRequest:
    return apb.UploadAdapterVersionRequest(chunk=apb.AdapterFileChunk(file_name=name, data=data))


def _files(w: World) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(w.adapter_dir.iterdir())}


def _upload(w: World, files: dict[str, bytes], **meta) -> list:
    meta.setdefault("total_size", sum(len(v) for v in files.values()))
    out = [_meta(w, **meta)]
    for name, data in files.items():
        out.extend(_chunk(name, data[i : i + CHUNK]) for i in range(0, max(len(data), 1), CHUNK))
    return out


def _with_config(w: World, **changes) -> dict[str, bytes]:
    files = _files(w)
    cfg = json.loads(files["adapter_config.json"])
    cfg.update(changes)
    files["adapter_config.json"] = json.dumps(cfg).encode()
    return files


def _with_weights(w: World, weights: bytes) -> dict[str, bytes]:
    files = _files(w)
    files["adapter_model.safetensors"] = weights
    return files


def _poisoned(w: World, value: float) -> bytes:
    """The adapter's safetensors with one value of its first tensor replaced by ``value``."""
    raw = _files(w)["adapter_model.safetensors"]
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    info = next(v for k, v in header.items() if k != "__metadata__")
    assert info["dtype"] == "F32"
    at = 8 + n + info["data_offsets"][0] + 4
    return raw[:at] + struct.pack("<f", value) + raw[at + 4 :]


def _lying_header(w: World) -> bytes:
    """A safetensors header whose first tensor claims bytes past the end of the file."""
    raw = _files(w)["adapter_model.safetensors"]
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    begin, end = header[name]["data_offsets"]
    header[name]["data_offsets"] = [begin, end + 4096]
    body = json.dumps(header).encode()
    body += b" " * (-len(body) % 8)
    return struct.pack("<Q", len(body)) + body + raw[8 + n :]


def _pickle_weights() -> bytes:
    import pickle

    return pickle.dumps({"lora_A": [0.0] * 16}, protocol=4)


def _zip_bomb(path_name: str = "adapter_model.safetensors", size: int = 4 << 20) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(path_name, b"\0" * size)
    return buf.getvalue()


def _tar(members: list[tuple[str, bytes, bytes]], *, gz: bool = True) -> bytes:
    """A tar archive of (name, type flag, data) members (see ``write_tar``)."""
    import io

    buf = io.BytesIO()
    write_tar(buf, members, mode="w:gz" if gz else "w")
    return buf.getvalue()


def _adapter_tar(w: World, **extra: tuple[bytes, bytes]) -> bytes:
    members = [(n, b"0", d) for n, d in _files(w).items()]
    members += [(n, kind, d) for n, (kind, d) in extra.items()]
    return _tar(members)


def _archive_upload(data: bytes, name: str = "adapter.tar.gz"):
    return lambda w: _upload(w, {name: data})


ARCHIVE_CASES = [
    C("archive: zip bomb (ratio)", _archive_upload(_zip_bomb(), "adapter.zip"), INVALID, "ratio"),
    C(
        "archive: tar.gz bomb (ratio)",
        _archive_upload(_tar([("adapter_model.safetensors", b"0", b"\0" * (4 << 20))])),
        INVALID,
        "ratio",
    ),
    C(
        "archive: member ../",
        lambda w: _upload(
            w, {"adapter.tar.gz": _tar([("../adapter_config.json", b"0", _files(w)["adapter_config.json"])])}
        ),
        INVALID,
        "../adapter_config.json",
    ),
    C(
        "archive: absolute member path",
        lambda w: _upload(w, {"adapter.tar.gz": _tar([("/etc/adapter_config.json", b"0", b"{}")])}),
        INVALID,
        "/etc/adapter_config.json",
    ),
    C(
        "archive: zip member ../",
        _archive_upload(_zip_bomb("../evil", 16), "adapter.zip"),
        INVALID,
        "../evil",
    ),
    C(
        "archive: symbolic link",
        lambda w: _upload(w, {"adapter.tar.gz": _adapter_tar(w, **{"link": (b"2", b"/etc/passwd")})}),
        INVALID,
        "link",
    ),
    C(
        "archive: hard link",
        lambda w: _upload(w, {"adapter.tar.gz": _adapter_tar(w, **{"hard": (b"1", b"adapter_config.json")})}),
        INVALID,
        "link",
    ),
    C(
        "archive: device file",
        lambda w: _upload(w, {"adapter.tar.gz": _adapter_tar(w, **{"dev": (b"3", b"")})}),
        INVALID,
        "device",
    ),
    C(
        "archive: too many members",
        _archive_upload(_tar([(f"f{i}", b"0", b"x") for i in range(40)])),
        INVALID,
        "members",
    ),
    C("archive: not an archive", _archive_upload(b"\x1f\x8b garbage that is no gzip"), INVALID, "archive"),
    C(
        "archive: with a pickle inside",
        lambda w: _upload(
            w,
            {
                "adapter.tar": _tar(
                    [
                        ("adapter_config.json", b"0", _files(w)["adapter_config.json"]),
                        ("adapter_model.bin", b"0", _pickle_weights()),
                    ],
                    gz=False,
                )
            },
        ),
        INVALID,
        "adapter_model.bin",
    ),
    C(
        "archive: alongside another file",
        lambda w: _upload(
            w, {"adapter_config.json": _files(w)["adapter_config.json"], "adapter.tar.gz": _adapter_tar(w)}
        ),
        INVALID,
        "archive",
    ),
]

cases(
    AD + "UploadAdapterVersion",
    lambda w: _upload(w, _files(w), adapter_name="bi-bot"),  # identical files: the existing version
    C("empty stream", [], INVALID, "metadata"),
    C("chunk before metadata", lambda w: [_chunk("adapter_config.json", b"{}")], INVALID, "metadata"),
    C("metadata twice", lambda w: [_meta(w), _meta(w)], INVALID, "chunk"),
    C("total_size 0", lambda w: _upload(w, _files(w), total_size=0), INVALID, "total_size"),
    C("total_size negative", lambda w: _upload(w, _files(w), total_size=-1), INVALID, "total_size"),
    C("total_size int64 max", lambda w: _upload(w, _files(w), total_size=INT64_MAX), INVALID, "total_size"),
    C("total_size int64 min", lambda w: _upload(w, _files(w), total_size=INT64_MIN), INVALID, "total_size"),
    C("total_size too small", lambda w: _upload(w, _files(w), total_size=100), INVALID, "total_size"),
    C(
        "truncated stream",
        lambda w: _upload(w, _files(w), total_size=_adapter_size(w) + 1),
        INVALID,
        "truncated",
    ),
    C("empty chunk", lambda w: [_meta(w), _chunk("adapter_config.json", b"")], INVALID, "chunk.data"),
    C(
        "chunk over 4 MiB is over the message limit",
        lambda w: [_meta(w), _chunk("adapter_config.json", b"x" * (MESSAGE_LIMIT + 1))],
        EXHAUSTED,
        str(MESSAGE_LIMIT),
    ),
    C("file name ../", lambda w: _upload(w, {"../adapter_config.json": b"{}"}), INVALID, "chunk.file_name"),
    C("absolute file name", lambda w: _upload(w, {"/etc/passwd": b"x"}), INVALID, "chunk.file_name"),
    C(
        "file name with a NUL",
        lambda w: _upload(w, {"adapter_config.json\x00": b"x"}),
        INVALID,
        "chunk.file_name",
    ),
    C(
        "pickle checkpoint by name",
        lambda w: _upload(w, {"adapter_model.bin": _pickle_weights()}),
        INVALID,
        "adapter_model.bin",
    ),
    C("unknown file", lambda w: _upload(w, {"notes.txt": b"hello"}), INVALID, "notes.txt"),
    C(
        "file sent twice",
        lambda w: [
            _meta(w, total_size=4),
            _chunk("adapter_config.json", b"{}"),
            _chunk("adapter_model.safetensors", b"x"),
            _chunk("adapter_config.json", b"x"),
        ],
        INVALID,
        "consecutive",
    ),
    C(
        "missing weights",
        lambda w: _upload(w, {"adapter_config.json": _files(w)["adapter_config.json"]}),
        INVALID,
        "adapter_model.safetensors",
    ),
    C(
        "pickle disguised as safetensors",
        lambda w: _upload(w, _with_weights(w, _pickle_weights())),
        INVALID,
        "pickle",
    ),
    C(
        "zip disguised as safetensors",
        lambda w: _upload(w, _with_weights(w, _zip_bomb("data.pkl", 64))),
        INVALID,
        "pickle",
    ),
    C(
        "safetensors header lying about offsets",
        lambda w: _upload(w, _with_weights(w, _lying_header(w))),
        INVALID,
        "adapter_model.safetensors",
    ),
    C(
        "safetensors header length past the end",
        lambda w: _upload(w, _with_weights(w, struct.pack("<Q", 1 << 40) + b"{}")),
        INVALID,
        "header length",
    ),
    C(
        "safetensors header of nested brackets",
        lambda w: _upload(w, _with_weights(w, struct.pack("<Q", 200_000) + b"[" * 200_000)),
        INVALID,
        "adapter_model.safetensors",
    ),
    C("NaN in a tensor", lambda w: _upload(w, _with_weights(w, _poisoned(w, NAN))), INVALID, "not finite"),
    C(
        "infinity in a tensor",
        lambda w: _upload(w, _with_weights(w, _poisoned(w, -INF))),
        INVALID,
        "not finite",
    ),
    C(
        "config: nested brackets",
        lambda w: _upload(w, {**_files(w), "adapter_config.json": b"[" * 100_000}),
        INVALID,
        "adapter_config.json",
    ),
    C(
        "config: invalid UTF-8",
        lambda w: _upload(w, {**_files(w), "adapter_config.json": BAD_UTF8}),
        INVALID,
        "adapter_config.json",
    ),
    C(
        "config: wrong base model",
        lambda w: _upload(w, _with_config(w, base_model_name_or_path="meta-llama/Llama-2-7b")),
        PRECONDITION,
        "base model",
    ),
    C("config: rank above the limit", lambda w: _upload(w, _with_config(w, r=4096)), INVALID, "limit"),
    C("config: rank is a string", lambda w: _upload(w, _with_config(w, r="8")), INVALID, "r must"),
    C("config: rank int64 max", lambda w: _upload(w, _with_config(w, r=INT64_MAX)), INVALID, "limit"),
    C(
        "config: NaN alpha",
        lambda w: _upload(
            w,
            {
                **_files(w),
                "adapter_config.json": _files(w)["adapter_config.json"].replace(
                    b'"lora_alpha": 16', b'"lora_alpha": NaN'
                ),
            },
        ),
        INVALID,
        "lora_alpha",
    ),
    C(
        "config: target modules a string",
        lambda w: _upload(w, _with_config(w, target_modules="q_proj")),
        INVALID,
        "target_modules",
    ),
    C(
        "config: mismatched shapes (rank 4 config, rank 8 tensors)",
        lambda w: _upload(w, _with_config(w, r=4)),
        INVALID,
        "shape",
    ),
    C("wrong dtype (I32)", lambda w: _upload(w, _with_weights(w, _retyped(w, "I32"))), INVALID, "dtype"),
    C(
        "expected sha256 not hex",
        lambda w: _upload(w, _files(w), expected_sha256="Z" * 64),
        INVALID,
        "expected_sha256",
    ),
    C(
        "expected sha256 differs",
        lambda w: _upload(w, _files(w), expected_sha256="0" * 64),
        INVALID,
        "expected_sha256",
    ),
    C("bad adapter name", lambda w: _upload(w, _files(w), adapter_name="Bad Name!"), INVALID, "adapter_name"),
    C(
        "adapter name over 64 characters",
        lambda w: _upload(w, _files(w), adapter_name="a" * 65),
        INVALID,
        "adapter_name",
    ),
    C("unknown kind", lambda w: _upload(w, _files(w), kind=UNKNOWN_ENUM), INVALID, "kind"),
    C("unknown base model", lambda w: _upload(w, _files(w), base_model="nope"), PRECONDITION, "nope"),
    C(
        "kind of another adapter",
        lambda w: _upload(w, _files(w), adapter_name="bi-bot", kind=apb.ADAPTER_KIND_RERANKING),
        PRECONDITION,
        "bi-bot",
    ),
    C(
        "description over 1000 characters",
        lambda w: _upload(w, _files(w), description="d" * 1001),
        INVALID,
        "description",
    ),
    C(
        "foreign parent version",
        lambda w: _upload(w, _files(w), parent_version_id="av_000000000000000000000000"),
        INVALID,
        "parent_version_id",
    ),
    C("user role", lambda w: _upload(w, _files(w)), DENIED, "admin", key="user"),
    *ARCHIVE_CASES,
)


def _retyped(w: World, dtype: str) -> bytes:
    raw = _files(w)["adapter_model.safetensors"]
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    for k, v in header.items():
        if k != "__metadata__":
            v["dtype"] = dtype
    body = json.dumps(header).encode()
    body += b" " * (-len(body) % 8)
    return struct.pack("<Q", len(body)) + body + raw[8 + n :]


def _register(**kw) -> apb.RegisterFromUriRequest:
    kw.setdefault("adapter_name", "bi-registered")
    kw.setdefault("kind", apb.ADAPTER_KIND_GENERATION)
    return apb.RegisterFromUriRequest(**kw)


def _own_uri(w: World) -> str:
    registry = registry_for(w.runtime)
    return registry.blobs.uri(registry.blobs.version_prefix(TENANT, "bi-bot", w.ids["version_id"]))


cases(
    AD + "RegisterFromUri",
    lambda w: _register(adapter_name="bi-bot", uri=_own_uri(w)),
    C("empty uri", _register(), INVALID, "uri"),
    C("uri outside the blob store", _register(uri="file:///etc"), INVALID, "uri"),
    C("uri with ..", lambda w: _register(uri=_own_uri(w) + "/../../.."), INVALID, "uri"),
    C("uri of no adapter", lambda w: _register(uri=_own_uri(w) + "-missing"), NOT_FOUND, "no adapter files"),
    C("NaN metric", lambda w: _register(uri=_own_uri(w), metrics={"loss": NAN}), INVALID, "metrics"),
    C("infinite metric", lambda w: _register(uri=_own_uri(w), metrics={"loss": INF}), INVALID, "metrics"),
    C("empty metric name", lambda w: _register(uri=_own_uri(w), metrics={"": 1.0}), INVALID, "metrics"),
    C(
        "65 metrics",
        lambda w: _register(uri=_own_uri(w), metrics={f"m{i}": 1.0 for i in range(65)}),
        INVALID,
        "metrics",
    ),
    C("bad adapter name", lambda w: _register(adapter_name="../x", uri=_own_uri(w)), INVALID, "adapter_name"),
    C("unknown kind", lambda w: _register(uri=_own_uri(w), kind=UNKNOWN_ENUM), INVALID, "kind"),
    C(
        "expected sha256 differs",
        lambda w: _register(uri=_own_uri(w), expected_sha256="0" * 64),
        INVALID,
        "expected_sha256",
    ),
    C(
        "description over 1000 characters",
        lambda w: _register(uri=_own_uri(w), description="d" * 1001),
        INVALID,
        "description",
    ),
)
cases(
    AD + "CreateAdapter",
    lambda w: apb.CreateAdapterRequest(name="bi-created", kind=apb.ADAPTER_KIND_GENERATION),
    C("empty name", apb.CreateAdapterRequest(kind=apb.ADAPTER_KIND_GENERATION), INVALID, "name"),
    C(
        "upper-case name",
        apb.CreateAdapterRequest(name="BiBot", kind=apb.ADAPTER_KIND_GENERATION),
        INVALID,
        "name",
    ),
    C(
        "name over 64 characters",
        apb.CreateAdapterRequest(name="a" * 65, kind=apb.ADAPTER_KIND_GENERATION),
        INVALID,
        "name",
    ),
    C("unspecified kind", apb.CreateAdapterRequest(name="bi-x"), INVALID, "kind"),
    C("unknown kind", apb.CreateAdapterRequest(name="bi-x", kind=UNKNOWN_ENUM), INVALID, "kind"),
    C(
        "unknown base model",
        apb.CreateAdapterRequest(name="bi-x", kind=apb.ADAPTER_KIND_GENERATION, base_model="nope"),
        PRECONDITION,
        "nope",
    ),
    C(
        "base model of another kind",
        apb.CreateAdapterRequest(
            name="bi-x", kind=apb.ADAPTER_KIND_GENERATION, base_model="ms-marco-minilm-l6"
        ),
        PRECONDITION,
        "ms-marco-minilm-l6",
    ),
    C(
        "description over 1000 characters",
        apb.CreateAdapterRequest(name="bi-x", kind=apb.ADAPTER_KIND_GENERATION, description="d" * 1001),
        INVALID,
        "description",
    ),
    C(
        "taken name",
        apb.CreateAdapterRequest(name="bi-bot", kind=apb.ADAPTER_KIND_GENERATION),
        grpc.StatusCode.ALREADY_EXISTS,
        "bi-bot",
    ),
)
cases(
    AD + "GetAdapter",
    lambda w: apb.GetAdapterRequest(name="bi-bot"),
    C("empty name", apb.GetAdapterRequest(), INVALID, "name"),
    C("unknown name", apb.GetAdapterRequest(name="no-such-adapter"), NOT_FOUND, "no-such-adapter"),
    C("malformed name", apb.GetAdapterRequest(name="x" * 300), INVALID, "name"),
)
cases(
    AD + "ListAdapters",
    lambda w: apb.ListAdaptersRequest(page=_page(5)),
    *_paged(apb.ListAdaptersRequest),
    C("unknown kind", apb.ListAdaptersRequest(kind=UNKNOWN_ENUM), INVALID, "kind"),
)
cases(
    AD + "DeleteAdapter",
    lambda w: apb.DeleteAdapterRequest(name="bi-created", force=True),
    C("empty name", apb.DeleteAdapterRequest(), INVALID, "name"),
    C("unknown name", apb.DeleteAdapterRequest(name="no-such-adapter"), NOT_FOUND, "no-such-adapter"),
    C("with aliases, not forced", apb.DeleteAdapterRequest(name="bi-bot"), PRECONDITION, "alias"),
    C("user role", apb.DeleteAdapterRequest(name="bi-bot", force=True), DENIED, "admin", key="user"),
)
cases(
    AD + "GetAdapterVersion",
    lambda w: apb.GetAdapterVersionRequest(version_id=w.ids["version_id"]),
    C("neither id nor ref", apb.GetAdapterVersionRequest(), INVALID, "version_id"),
    C("unknown version id", apb.GetAdapterVersionRequest(version_id="av_nope"), NOT_FOUND, "av_nope"),
    C("empty ref", apb.GetAdapterVersionRequest(ref=common_pb2.AdapterRef()), INVALID, "ref"),
    C(
        "version int overflow",
        apb.GetAdapterVersionRequest(ref=common_pb2.AdapterRef(ref="bi-bot@v99999999999999999999")),
        INVALID,
        "ref",
    ),
    C("version 0", apb.GetAdapterVersionRequest(ref=common_pb2.AdapterRef(ref="bi-bot@v0")), INVALID, "ref"),
    C(
        "unknown alias",
        apb.GetAdapterVersionRequest(ref=common_pb2.AdapterRef(ref="bi-bot@nope")),
        NOT_FOUND,
        "nope",
    ),
)
cases(
    AD + "ListAdapterVersions",
    lambda w: apb.ListAdapterVersionsRequest(adapter_name="bi-bot"),
    *_paged(apb.ListAdapterVersionsRequest, adapter_name="bi-bot"),
    C("empty adapter", apb.ListAdapterVersionsRequest(), INVALID, "adapter_name"),
    C(
        "unknown adapter",
        apb.ListAdapterVersionsRequest(adapter_name="no-such-adapter"),
        NOT_FOUND,
        "no-such-adapter",
    ),
    C(
        "unknown state",
        apb.ListAdapterVersionsRequest(adapter_name="bi-bot", state=UNKNOWN_ENUM),
        INVALID,
        "state",
    ),
)
cases(
    AD + "SetAlias",
    lambda w: apb.SetAliasRequest(adapter_name="bi-bot", alias="production", version=1),
    C("empty alias", apb.SetAliasRequest(adapter_name="bi-bot", version=1), INVALID, "alias"),
    C(
        "alias like a version",
        apb.SetAliasRequest(adapter_name="bi-bot", alias="v2", version=1),
        INVALID,
        "alias",
    ),
    C(
        "alias over 32 characters",
        apb.SetAliasRequest(adapter_name="bi-bot", alias="a" * 33, version=1),
        INVALID,
        "alias",
    ),
    C("version 0", apb.SetAliasRequest(adapter_name="bi-bot", alias="blue"), INVALID, "version"),
    C(
        "negative version",
        apb.SetAliasRequest(adapter_name="bi-bot", alias="blue", version=-1),
        INVALID,
        "version",
    ),
    C(
        "unknown version",
        apb.SetAliasRequest(adapter_name="bi-bot", alias="blue", version=INT32_MAX),
        NOT_FOUND,
        "version",
    ),
    C(
        "weight 101",
        apb.SetAliasRequest(adapter_name="bi-bot", alias="canary", version=1, traffic_weight=101),
        INVALID,
        "traffic_weight",
    ),
    C(
        "negative weight",
        apb.SetAliasRequest(adapter_name="bi-bot", alias="canary", version=1, traffic_weight=INT32_MIN),
        INVALID,
        "traffic_weight",
    ),
    C(
        "weight on a plain alias",
        apb.SetAliasRequest(adapter_name="bi-bot", alias="blue", version=1, traffic_weight=5),
        INVALID,
        "traffic_weight",
    ),
    C(
        "unknown adapter",
        apb.SetAliasRequest(adapter_name="no-such-adapter", alias="blue", version=1),
        NOT_FOUND,
        "no-such-adapter",
    ),
    C(
        "user role",
        apb.SetAliasRequest(adapter_name="bi-bot", alias="blue", version=1),
        DENIED,
        "admin",
        key="user",
    ),
)
cases(
    AD + "DeleteAlias",
    lambda w: apb.DeleteAliasRequest(adapter_name="bi-bot", alias="never-set"),
    C("empty alias", apb.DeleteAliasRequest(adapter_name="bi-bot"), INVALID, "alias"),
    C(
        "unknown adapter",
        apb.DeleteAliasRequest(adapter_name="no-such-adapter", alias="blue"),
        NOT_FOUND,
        "no-such-adapter",
    ),
    C("malformed alias", apb.DeleteAliasRequest(adapter_name="bi-bot", alias="Bad Alias"), INVALID, "alias"),
)
cases(
    AD + "ListAliases",
    lambda w: apb.ListAliasesRequest(adapter_name="bi-bot"),
    *_paged(apb.ListAliasesRequest),
    C(
        "unknown adapter",
        apb.ListAliasesRequest(adapter_name="no-such-adapter"),
        NOT_FOUND,
        "no-such-adapter",
    ),
)
cases(
    AD + "Rollback",
    lambda w: apb.ListAliasesRequest(),  # sent to a sibling RPC (GOOD_PATH): bi-bot has no alias history
    C("empty adapter", apb.RollbackRequest(alias="production"), INVALID, "adapter_name"),
    C(
        "no previous version",
        apb.RollbackRequest(adapter_name="bi-bot", alias="production"),
        PRECONDITION,
        "previous",
    ),
    C("unknown alias", apb.RollbackRequest(adapter_name="bi-bot", alias="nope"), NOT_FOUND, "nope"),
    C(
        "unknown adapter",
        apb.RollbackRequest(adapter_name="no-such-adapter", alias="production"),
        NOT_FOUND,
        "no-such-adapter",
    ),
)
cases(
    AD + "Resolve",
    lambda w: apb.ResolveRequest(ref=common_pb2.AdapterRef(ref="bi-bot"), request_id="r-1"),
    C("empty ref", apb.ResolveRequest(), INVALID, "ref"),
    C("ref with two @", apb.ResolveRequest(ref=common_pb2.AdapterRef(ref="bi-bot@v1@v2")), INVALID, "ref"),
    C("ref over the limit", apb.ResolveRequest(ref=common_pb2.AdapterRef(ref="a" * 300)), INVALID, "ref"),
    C(
        "request id over the limit",
        apb.ResolveRequest(ref=common_pb2.AdapterRef(ref="bi-bot"), request_id="r" * 10_000),
        INVALID,
        "request_id",
    ),
    C(
        "unknown adapter",
        apb.ResolveRequest(ref=common_pb2.AdapterRef(ref="no-such-adapter")),
        NOT_FOUND,
        "no-such-adapter",
    ),
)
cases(
    AD + "Download",
    lambda w: apb.DownloadRequest(version_id=w.ids["version_id"]),
    C("empty id", apb.DownloadRequest(), INVALID, "version_id"),
    C("unknown id", apb.DownloadRequest(version_id="av_nope"), NOT_FOUND, "av_nope"),
    C("id over the limit", apb.DownloadRequest(version_id="av_" + "f" * 300), INVALID, "version_id"),
)
cases(
    AD + "WatchRevisions",
    lambda w: apb.WatchRevisionsRequest(),
    C(
        "from_revision int64 max",
        apb.WatchRevisionsRequest(from_revision=INT64_MAX),
        OUT_OF_RANGE,
        "from_revision",
    ),
    C("negative from_revision", apb.WatchRevisionsRequest(from_revision=-1), OUT_OF_RANGE, "from_revision"),
    C(
        "from_revision int64 min",
        apb.WatchRevisionsRequest(from_revision=INT64_MIN),
        OUT_OF_RANGE,
        "from_revision",
    ),
)


def _ts(seconds: int):
    from google.protobuf import timestamp_pb2

    return timestamp_pb2.Timestamp(seconds=seconds)


cases(
    AD + "ListAuditEvents",
    lambda w: apb.ListAuditEventsRequest(page=_page(5)),
    *_paged(apb.ListAuditEventsRequest),
    C(
        "start after end",
        apb.ListAuditEventsRequest(start_time=_ts(2_000_000_000), end_time=_ts(1_000_000_000)),
        INVALID,
        "start_time",
    ),
    C("timestamp out of range", apb.ListAuditEventsRequest(start_time=_ts(INT64_MAX)), INVALID, "start_time"),
    C("user role", apb.ListAuditEventsRequest(), DENIED, "admin", key="user"),
)

# ---- training ----
TR = "lorag.adapters.v1.TrainingService/"


def _ds_meta(**kw) -> tpb.UploadDatasetRequest:
    kw.setdefault("name", "bi-upload")
    kw.setdefault("kind", apb.ADAPTER_KIND_GENERATION)
    kw.setdefault("format", tpb.DATASET_FORMAT_JSONL)
    return tpb.UploadDatasetRequest(metadata=tpb.DatasetUploadMetadata(**kw))


def _ds(data: bytes, **kw) -> list:
    kw.setdefault("total_size", len(data))
    return [_ds_meta(**kw), tpb.UploadDatasetRequest(chunk=data)]


cases(
    TR + "UploadDataset",
    lambda w: _ds(_records(), name="bi-data", dry_run=True),
    C("empty stream", [], INVALID, "metadata"),
    C("chunk first", [tpb.UploadDatasetRequest(chunk=b"{}")], INVALID, "metadata"),
    C("total_size 0", _ds(_records(), total_size=0), INVALID, "total_size"),
    C("total_size int64 max", _ds(_records(), total_size=INT64_MAX), INVALID, "total_size"),
    C("total_size negative", _ds(_records(), total_size=-5), INVALID, "total_size"),
    C("truncated", _ds(_records(), total_size=len(_records()) + 10), INVALID, "total_size"),
    C("unknown format", _ds(_records(), format=UNKNOWN_ENUM), INVALID, "format"),
    C("unknown kind", _ds(_records(), kind=UNKNOWN_ENUM), INVALID, "kind"),
    C("bad name", _ds(_records(), name="../x"), INVALID, "name"),
    C("description over 1000 characters", _ds(_records(), description="d" * 1001), INVALID, "description"),
    C("expected sha256 not hex", _ds(_records(), expected_sha256="nothex"), INVALID, "expected_sha256"),
    Case(
        "records with wrong JSON types (dry run)",
        _ds(b'{"prompt": 5, "completion": ["x"]}\n' * 12, dry_run=True),
        grpc.StatusCode.OK,
        "",
        check=lambda r: (
            None
            if r.dataset.state == tpb.DATASET_STATE_INVALID and "prompt" in str(r)
            else f"want an INVALID report naming prompt, got {r}"
        ),
    ),
    # a dataset that fails validation is stored INVALID with its report (documented); dry_run stores nothing
    Case(
        "invalid UTF-8 data (dry run)",
        _ds(BAD_UTF8 * 8, dry_run=True),
        grpc.StatusCode.OK,
        "",
        check=lambda r: (
            None
            if r.dataset.state == tpb.DATASET_STATE_INVALID and "utf-8" in str(r).lower()
            else f"want an INVALID report naming UTF-8, got {r}"
        ),
    ),
    C("user role", _ds(_records()), DENIED, "admin", key="user"),
)
cases(
    TR + "GetDataset",
    lambda w: tpb.GetDatasetRequest(dataset_id=w.ids["dataset_id"]),
    C("no selector", tpb.GetDatasetRequest(), INVALID, "selector"),
    C("unknown id", tpb.GetDatasetRequest(dataset_id="ds_nope"), NOT_FOUND, "ds_nope"),
    C(
        "unknown name",
        tpb.GetDatasetRequest(ref=tpb.DatasetRef(name="no-such-data")),
        NOT_FOUND,
        "no-such-data",
    ),
    C(
        "negative version",
        tpb.GetDatasetRequest(ref=tpb.DatasetRef(name="bi-data", version=-1)),
        INVALID,
        "ref.version",
    ),
    C(
        "version int32 max",
        tpb.GetDatasetRequest(ref=tpb.DatasetRef(name="bi-data", version=INT32_MAX)),
        NOT_FOUND,
        "bi-data",
    ),
)
cases(
    TR + "ListDatasets",
    lambda w: tpb.ListDatasetsRequest(page=_page(5)),
    *_paged(tpb.ListDatasetsRequest),
    C("unknown kind", tpb.ListDatasetsRequest(kind=UNKNOWN_ENUM), INVALID, "kind"),
)


def _hp(**kw) -> tpb.Hyperparameters:
    return tpb.Hyperparameters(**kw)


def _train(**kw) -> tpb.StartTrainingRequest:
    kw.setdefault("adapter_name", "bi-trained")
    kw.setdefault("kind", apb.ADAPTER_KIND_GENERATION)
    kw.setdefault("dataset", tpb.DatasetRef(name="bi-data"))
    return tpb.StartTrainingRequest(**kw)


TRAIN_CASES = [
    C("unknown dataset", _train(dataset=tpb.DatasetRef(name="no-such-data")), NOT_FOUND, "no-such-data"),
    C("no dataset", _train(dataset=None), INVALID, "dataset"),
    C("rank 65", _train(hyperparameters=_hp(rank=65)), INVALID, "rank"),
    C("negative rank", _train(hyperparameters=_hp(rank=-1)), INVALID, "rank"),
    C("NaN alpha", _train(hyperparameters=_hp(alpha=NAN)), INVALID, "alpha"),
    C("infinite learning rate", _train(hyperparameters=_hp(learning_rate=INF)), INVALID, "learning_rate"),
    C("negative learning rate", _train(hyperparameters=_hp(learning_rate=-1e-4)), INVALID, "learning_rate"),
    C("dropout 1", _train(hyperparameters=_hp(dropout=1.0)), INVALID, "dropout"),
    C("NaN dropout", _train(hyperparameters=_hp(dropout=NAN)), INVALID, "dropout"),
    C("21 epochs", _train(hyperparameters=_hp(epochs=21)), INVALID, "epochs"),
    C("batch size 257", _train(hyperparameters=_hp(batch_size=257)), INVALID, "batch_size"),
    C("negative max steps", _train(hyperparameters=_hp(max_steps=-1)), INVALID, "max_steps"),
    C(
        "general ratio above 1",
        _train(hyperparameters=_hp(general_data_ratio=1.5)),
        INVALID,
        "general_data_ratio",
    ),
    C(
        "NaN general ratio",
        _train(hyperparameters=_hp(general_data_ratio=NAN)),
        INVALID,
        "general_data_ratio",
    ),
    C(
        "unknown target module",
        _train(hyperparameters=_hp(target_modules=["attn_c"])),
        INVALID,
        "target_modules",
    ),
    C("canary weight 101", _train(set_canary=True, canary_weight=101), INVALID, "canary_weight"),
    C("unknown kind", _train(kind=UNKNOWN_ENUM), INVALID, "kind"),
    C("bad adapter name", _train(adapter_name="Bad!"), INVALID, "adapter_name"),
    C(
        "kind of another adapter",
        _train(adapter_name="bi-bot", kind=apb.ADAPTER_KIND_RERANKING),
        PRECONDITION,
        "reranking",
    ),
    C(
        "foreign parent version",
        _train(parent_version_id="av_000000000000000000000000"),
        NOT_FOUND,
        "av_000000000000000000000000",
    ),
    C("description over 1000 characters", _train(description="d" * 1001), INVALID, "description"),
]
cases(
    TR + "StartTraining",
    lambda w: (
        tpb.ListTrainingJobsRequest()
    ),  # sent to a sibling RPC (GOOD_PATH): a good job would train a model
    *TRAIN_CASES,
    C("user role", _train(), DENIED, "admin", key="user"),
)
cases(
    TR + "GetTrainingJob",
    lambda w: tpb.ListTrainingJobsRequest(),
    C("empty id", tpb.GetTrainingJobRequest(), INVALID, "job_id"),
    C("unknown id", tpb.GetTrainingJobRequest(job_id="job_nope"), NOT_FOUND, "job_nope"),
)
cases(
    TR + "ListTrainingJobs",
    lambda w: tpb.ListTrainingJobsRequest(page=_page(5)),
    *_paged(tpb.ListTrainingJobsRequest),
    C("unknown phase", tpb.ListTrainingJobsRequest(phase=UNKNOWN_ENUM), INVALID, "phase"),
    C("bad adapter name", tpb.ListTrainingJobsRequest(adapter_name="Bad!"), INVALID, "adapter_name"),
)
cases(
    TR + "WatchTrainingJob",
    lambda w: tpb.ListTrainingJobsRequest(),
    C("empty id", tpb.WatchTrainingJobRequest(), INVALID, "job_id"),
    C("unknown id", tpb.WatchTrainingJobRequest(job_id="job_nope"), NOT_FOUND, "job_nope"),
    C(
        "negative sequence",
        tpb.WatchTrainingJobRequest(job_id="job_nope", from_sequence=INT64_MIN),
        INVALID,
        "from_sequence",
    ),
)
cases(
    TR + "CancelTrainingJob",
    lambda w: tpb.ListTrainingJobsRequest(),
    C("empty id", tpb.CancelTrainingJobRequest(), INVALID, "job_id"),
    C("unknown id", tpb.CancelTrainingJobRequest(job_id="job_nope"), NOT_FOUND, "job_nope"),
    C("user role", tpb.CancelTrainingJobRequest(job_id="job_nope"), DENIED, "admin", key="user"),
)
cases(
    TR + "BuildDatasetFromFeedback",
    lambda w: tpb.ListDatasetsRequest(),  # sent to a sibling RPC (GOOD_PATH): no feedback to build from
    C(
        "bad name",
        tpb.BuildDatasetFromFeedbackRequest(dataset_name="Bad!", kind=apb.ADAPTER_KIND_GENERATION),
        INVALID,
        "dataset_name",
    ),
    C("unspecified kind", tpb.BuildDatasetFromFeedbackRequest(dataset_name="bi-fb"), INVALID, "kind"),
    C(
        "unknown kind",
        tpb.BuildDatasetFromFeedbackRequest(dataset_name="bi-fb", kind=UNKNOWN_ENUM),
        INVALID,
        "kind",
    ),
    C(
        "negative min_records",
        tpb.BuildDatasetFromFeedbackRequest(
            dataset_name="bi-fb", kind=apb.ADAPTER_KIND_GENERATION, min_records=-1
        ),
        INVALID,
        "min_records",
    ),
    C(
        "min_records int32 max",
        tpb.BuildDatasetFromFeedbackRequest(
            dataset_name="bi-fb", kind=apb.ADAPTER_KIND_GENERATION, min_records=INT32_MAX
        ),
        INVALID,
        "min_records",
    ),
    C(
        "since out of range",
        tpb.BuildDatasetFromFeedbackRequest(
            dataset_name="bi-fb", kind=apb.ADAPTER_KIND_GENERATION, since=_ts(INT64_MAX)
        ),
        INVALID,
        "since",
    ),
    C(
        "too few records",
        tpb.BuildDatasetFromFeedbackRequest(
            dataset_name="bi-fb", kind=apb.ADAPTER_KIND_GENERATION, min_records=1000
        ),
        PRECONDITION,
        "1000",
    ),
    C(
        "start with bad hyperparameters",
        tpb.BuildDatasetFromFeedbackRequest(
            dataset_name="bi-fb",
            kind=apb.ADAPTER_KIND_GENERATION,
            min_records=1,
            start=_train(hyperparameters=_hp(rank=-1)),
        ),
        INVALID,
        "rank",
    ),
    C(
        "user role",
        tpb.BuildDatasetFromFeedbackRequest(dataset_name="bi-fb", kind=apb.ADAPTER_KIND_GENERATION),
        DENIED,
        "admin",
        key="user",
    ),
)
cases(
    TR + "PromoteCanary",
    lambda w: tpb.ListTrainingJobsRequest(),
    C("empty adapter", tpb.PromoteCanaryRequest(), INVALID, "adapter_name"),
    C(
        "unknown adapter",
        tpb.PromoteCanaryRequest(adapter_name="no-such-adapter"),
        NOT_FOUND,
        "no-such-adapter",
    ),
    C("no canary", tpb.PromoteCanaryRequest(adapter_name="bi-bot", dry_run=True), NOT_FOUND, "canary"),
    C(
        "negative min_feedback",
        tpb.PromoteCanaryRequest(adapter_name="bi-bot", min_feedback=-1),
        INVALID,
        "min_feedback",
    ),
    C("user role", tpb.PromoteCanaryRequest(adapter_name="bi-bot"), DENIED, "admin", key="user"),
)

# ---- admin ----
ADM = "lorag.admin.v1.AdminService/"
QUOTA_CASES = [
    ("negative max_documents", admin_pb2.TenantQuota(max_documents=-1), "max_documents"),
    ("int64 min max_storage_bytes", admin_pb2.TenantQuota(max_storage_bytes=INT64_MIN), "max_storage_bytes"),
    ("negative max_adapters", admin_pb2.TenantQuota(max_adapters=-5), "max_adapters"),
    ("negative rate", admin_pb2.TenantQuota(max_requests_per_minute=-1), "max_requests_per_minute"),
]
cases(
    ADM + "CreateTenant",
    lambda w: admin_pb2.GetTenantRequest(
        tenant_id=TENANT
    ),  # sent to a sibling RPC (GOOD_PATH): needs the operator key
    C("admin role", admin_pb2.CreateTenantRequest(tenant_id="bi-other"), DENIED, "operator"),
)
cases(
    ADM + "GetTenant",
    lambda w: admin_pb2.GetTenantRequest(tenant_id=TENANT),
    C("another tenant", admin_pb2.GetTenantRequest(tenant_id="default"), NOT_FOUND, "default"),
    C("malformed id", admin_pb2.GetTenantRequest(tenant_id="../" * 30), NOT_FOUND, "tenant"),
)
cases(
    ADM + "ListTenants",
    lambda w: admin_pb2.WhoAmIRequest(),  # sent to a sibling RPC (GOOD_PATH): needs the operator key
    C("admin role", admin_pb2.ListTenantsRequest(), DENIED, "operator"),
)
cases(
    ADM + "SetTenantQuota",
    lambda w: admin_pb2.WhoAmIRequest(),  # sent to a sibling RPC (GOOD_PATH): needs the operator key
    C(
        "admin role",
        admin_pb2.SetTenantQuotaRequest(tenant_id=TENANT, quota=admin_pb2.TenantQuota(max_adapters=1)),
        DENIED,
        "operator",
    ),
)
cases(
    ADM + "CreateApiKey",
    lambda w: admin_pb2.ListApiKeysRequest(),  # sent to a sibling RPC (GOOD_PATH): a new key is a write
    C("unspecified role", admin_pb2.CreateApiKeyRequest(), INVALID, "role"),
    C("unknown role", admin_pb2.CreateApiKeyRequest(role=UNKNOWN_ENUM), INVALID, "role"),
    C(
        "role above the caller's",
        admin_pb2.CreateApiKeyRequest(role=admin_pb2.ROLE_OPERATOR),
        INVALID,
        "role",
    ),
    C(
        "description over 200 characters",
        admin_pb2.CreateApiKeyRequest(role=admin_pb2.ROLE_USER, description="d" * 201),
        INVALID,
        "description",
    ),
    C("user role", admin_pb2.CreateApiKeyRequest(role=admin_pb2.ROLE_USER), DENIED, "admin", key="user"),
)
cases(
    ADM + "ListApiKeys",
    lambda w: admin_pb2.ListApiKeysRequest(page=_page(5)),
    *_paged(admin_pb2.ListApiKeysRequest),
)
cases(
    ADM + "RevokeApiKey",
    lambda w: admin_pb2.ListApiKeysRequest(),  # sent to a sibling RPC (GOOD_PATH): a revocation is a write
    C("empty id", admin_pb2.RevokeApiKeyRequest(), INVALID, "key_id"),
    C("unknown id", admin_pb2.RevokeApiKeyRequest(key_id="nope"), NOT_FOUND, "nope"),
    C("id over the limit", admin_pb2.RevokeApiKeyRequest(key_id="k" * 1000), INVALID, "key_id"),
    C(
        "user role",
        lambda w: admin_pb2.RevokeApiKeyRequest(key_id=w.ids["key_id"]),
        DENIED,
        "admin",
        key="user",
    ),
)
cases(ADM + "WhoAmI", lambda w: admin_pb2.WhoAmIRequest())
cases(
    ADM + "GetUsage",
    lambda w: admin_pb2.GetUsageRequest(),
    C("malformed start date", admin_pb2.GetUsageRequest(start_date="yesterday"), INVALID, "start_date"),
    C("impossible date", admin_pb2.GetUsageRequest(start_date="2026-02-30"), INVALID, "start_date"),
    C(
        "end before start",
        admin_pb2.GetUsageRequest(start_date="2026-05-02", end_date="2026-05-01"),
        INVALID,
        "end_date",
    ),
    C("another tenant", admin_pb2.GetUsageRequest(tenant_id="default"), NOT_FOUND, "default"),
)

# ---- rag ----
RAG = "lorag.rag.v1.RagService/"


def _ingest_cases(wrap) -> list[Case]:
    """Bad documents: the ingest RPCs answer them with a FAILED result (the call goes on)."""
    return [
        failed("empty doc id", wrap(_doc("", "x")), "doc_id"),
        failed("doc id over 256 characters", wrap(_doc("d" * 257, "x")), "doc_id"),
        failed("no content", wrap(rag_pb2.Document(doc_id="bi-new")), "content"),
        failed(
            "title over 1024 characters",
            wrap(rag_pb2.Document(doc_id="bi-new", title="t" * 1025, text="x")),
            "title",
        ),
        failed("metadata: reserved tenant_id", wrap(_doc("bi-new", "x", tenant_id="other")), "tenant_id"),
        failed("metadata: NaN", wrap(_doc("bi-new", "x", score=NAN)), "metadata"),
        failed("metadata: -Infinity", wrap(_doc("bi-new", "x", score=-INF)), "metadata"),
        failed("metadata: bad key", wrap(_doc("bi-new", "x", **{"bad key!": 1})), "metadata"),
        failed("metadata: nested NaN", wrap(_doc("bi-new", "x", deep={"list": [1, NAN]})), "metadata"),
        failed("metadata over 16 KiB", wrap(_doc("bi-new", "x", blob="x" * 17000)), "16"),
        failed(
            "invalid UTF-8 bytes as text/plain",
            wrap(rag_pb2.Document(doc_id="bi-new", data=BAD_UTF8, mime_type="text/plain")),
            "UTF-8",
        ),
        failed(
            "unknown mime type", wrap(rag_pb2.Document(doc_id="bi-new", data=b"x", mime_type="x/y")), "x/y"
        ),
    ]


SEED_DOC = ("bi-doc", "The lighthouse keeper writes the storm into the logbook.")


def _ingest_docs(*docs, **kw) -> rag_pb2.IngestDocumentsRequest:
    return rag_pb2.IngestDocumentsRequest(documents=list(docs), **kw)


cases(
    RAG + "IngestDocuments",
    lambda w: _ingest_docs(
        _doc("bi-doc", "The lighthouse keeper writes the storm into the logbook.", team="red")
    ),
    C("no documents", _ingest_docs(), INVALID, "documents"),
    C("101 documents", _ingest_docs(*[_doc(f"d{i}", "x") for i in range(101)]), INVALID, "100"),
    C("duplicate ids", _ingest_docs(_doc("same", "x"), _doc("same", "y")), INVALID, "distinct"),
    C(
        "negative chunk tokens",
        _ingest_docs(_doc("bi-new", "x"), options=rag_pb2.IngestOptions(chunk_tokens=-1)),
        INVALID,
        "chunk_tokens",
    ),
    C(
        "int32 max overlap",
        _ingest_docs(_doc("bi-new", "x"), options=rag_pb2.IngestOptions(overlap_tokens=INT32_MAX)),
        INVALID,
        "overlap_tokens",
    ),
    C(
        "unknown embedding model",
        _ingest_docs(_doc("bi-new", "x"), options=rag_pb2.IngestOptions(embedding_model="nope")),
        NOT_FOUND,
        "nope",
    ),
    failed("unchanged and bad", _ingest_docs(_doc(*SEED_DOC, team="red"), _doc("", "y")), "doc_id"),
    *_ingest_cases(lambda d: _ingest_docs(d)),
)
cases(
    RAG + "Ingest",
    lambda w: [
        rag_pb2.IngestRequest(
            document=_doc("bi-doc", "The lighthouse keeper writes the storm into the logbook.", team="red")
        )
    ],
    failed("no document", [rag_pb2.IngestRequest()], "doc_id"),
    C(
        "options after the first message",
        [
            rag_pb2.IngestRequest(document=_doc(*SEED_DOC, team="red")),
            rag_pb2.IngestRequest(document=_doc("bi-new2", "y"), options=rag_pb2.IngestOptions(force=True)),
        ],
        INVALID,
        "options",
    ),
    C(
        "negative chunk tokens",
        [rag_pb2.IngestRequest(document=_doc("bi-new", "x"), options=rag_pb2.IngestOptions(chunk_tokens=-1))],
        INVALID,
        "chunk_tokens",
    ),
    *_ingest_cases(lambda d: [rag_pb2.IngestRequest(document=d)]),
)
cases(
    RAG + "DeleteDocuments",
    lambda w: rag_pb2.DeleteDocumentsRequest(doc_ids=["never-existed"]),
    C("no ids", rag_pb2.DeleteDocumentsRequest(), INVALID, "doc_ids"),
    C("1001 ids", rag_pb2.DeleteDocumentsRequest(doc_ids=[f"d{i}" for i in range(1001)]), INVALID, "1,000"),
    C("empty id", rag_pb2.DeleteDocumentsRequest(doc_ids=["bi-doc", ""]), INVALID, "doc_ids"),
)


def _ask_cases(cls) -> list[Case]:
    def a(**kw):
        kw.setdefault("question", "What does the keeper write?")
        return cls(**kw)

    ro, go = rag_pb2.RetrievalOptions, rag_pb2.GenerationOptions
    return [
        C("empty question", a(question=""), INVALID, "question"),
        C("question over 4096 characters", a(question="q" * 4097), INVALID, "question"),
        C("whitespace question", a(question=" \n\t "), INVALID, "question"),
        C("top_k 201", a(retrieval=ro(top_k=201)), INVALID, "top_k"),
        C("negative top_k", a(retrieval=ro(top_k=-1)), INVALID, "top_k"),
        C("rerank_top_n above top_k", a(retrieval=ro(top_k=5, rerank_top_n=6)), INVALID, "rerank_top_n"),
        C("NaN min_relevance", a(retrieval=ro(min_relevance=NAN)), INVALID, "min_relevance"),
        C("infinite min_relevance", a(retrieval=ro(min_relevance=INF)), INVALID, "min_relevance"),
        C("unknown mode", a(retrieval=ro(mode=UNKNOWN_ENUM)), INVALID, "mode"),
        C("unknown fusion", a(retrieval=ro(fusion=UNKNOWN_ENUM)), INVALID, "fusion"),
        C("unknown routing", a(routing=UNKNOWN_ENUM), INVALID, "routing"),
        C("NaN temperature", a(generation=go(sampling=_sampling(temperature=NAN))), INVALID, "temperature"),
        C(
            "negative max_new_tokens",
            a(generation=go(sampling=_sampling(max_new_tokens=INT32_MIN))),
            INVALID,
            "max_new_tokens",
        ),
        C("unknown template", a(template="no-such-template"), NOT_FOUND, "no-such-template"),
        C("unknown model", a(generation=go(model="nope")), NOT_FOUND, "nope"),
        C(
            "unknown adapter",
            a(adapter=common_pb2.AdapterRef(ref="no-such-adapter")),
            NOT_FOUND,
            "no-such-adapter",
        ),
        C(
            "unknown reranker adapter",
            a(reranker_adapter=common_pb2.AdapterRef(ref="no-such-adapter")),
            NOT_FOUND,
            "no-such-adapter",
        ),
        C(
            "21 history turns",
            a(history=[rag_pb2.ConversationTurn(question="q", answer="a")] * 21),
            INVALID,
            "history",
        ),
        C(
            "history question over 4096",
            a(history=[rag_pb2.ConversationTurn(question="q" * 4097, answer="a")]),
            INVALID,
            "history",
        ),
        C("negative multi_query", a(multi_query=-1), INVALID, "multi_query"),
        C("multi_query int32 max", a(multi_query=INT32_MAX), INVALID, "multi_query"),
        C(
            "filter on tenant_id",
            a(
                filter=common_pb2.Filter(
                    conditions=[_cond("tenant_id", common_pb2.FILTER_OP_EQ, {"string_value": "x"})]
                )
            ),
            INVALID,
            "tenant_id",
        ),
        C(
            "filter: NaN value",
            a(
                filter=common_pb2.Filter(
                    conditions=[_cond("level", common_pb2.FILTER_OP_GTE, {"number_value": NAN})]
                )
            ),
            INVALID,
            "values",
        ),
    ]


ASK_GOOD = dict(question="What does the keeper write?", retrieval=rag_pb2.RetrievalOptions(min_relevance=1.0))
cases(RAG + "Ask", lambda w: rag_pb2.AskRequest(**ASK_GOOD), *_ask_cases(rag_pb2.AskRequest))
cases(
    RAG + "AskStream", lambda w: rag_pb2.AskStreamRequest(**ASK_GOOD), *_ask_cases(rag_pb2.AskStreamRequest)
)
cases(
    RAG + "Feedback",
    lambda w: rag_pb2.FeedbackRequest(answer_id=w.ids["answer_id"], rating=rag_pb2.FEEDBACK_RATING_THUMBS_UP),
    C(
        "empty answer id",
        rag_pb2.FeedbackRequest(rating=rag_pb2.FEEDBACK_RATING_THUMBS_UP),
        NOT_FOUND,
        "answer",
    ),
    C(
        "unknown answer",
        rag_pb2.FeedbackRequest(answer_id="ans_nope", rating=rag_pb2.FEEDBACK_RATING_THUMBS_UP),
        NOT_FOUND,
        "ans_nope",
    ),
    C(
        "neither rating nor score",
        lambda w: rag_pb2.FeedbackRequest(answer_id=w.ids["answer_id"]),
        INVALID,
        "rating",
    ),
    C(
        "unknown rating",
        lambda w: rag_pb2.FeedbackRequest(answer_id=w.ids["answer_id"], rating=UNKNOWN_ENUM),
        INVALID,
        "rating",
    ),
    C(
        "NaN score",
        lambda w: rag_pb2.FeedbackRequest(answer_id=w.ids["answer_id"], score=NAN),
        INVALID,
        "score",
    ),
    C(
        "infinite score",
        lambda w: rag_pb2.FeedbackRequest(answer_id=w.ids["answer_id"], score=INF),
        INVALID,
        "score",
    ),
    C(
        "score above 1",
        lambda w: rag_pb2.FeedbackRequest(answer_id=w.ids["answer_id"], score=1.5),
        INVALID,
        "score",
    ),
    C(
        "comment over 4096",
        lambda w: rag_pb2.FeedbackRequest(
            answer_id=w.ids["answer_id"], rating=rag_pb2.FEEDBACK_RATING_THUMBS_UP, comment="c" * 4097
        ),
        INVALID,
        "comment",
    ),
    C(
        "corrected answer over 16384",
        lambda w: rag_pb2.FeedbackRequest(
            answer_id=w.ids["answer_id"],
            rating=rag_pb2.FEEDBACK_RATING_THUMBS_DOWN,
            corrected_answer="c" * 16385,
        ),
        INVALID,
        "corrected_answer",
    ),
    C(
        "chunk not in the answer",
        lambda w: rag_pb2.FeedbackRequest(
            answer_id=w.ids["answer_id"],
            rating=rag_pb2.FEEDBACK_RATING_THUMBS_UP,
            relevant_chunk_ids=["c_nope"],
        ),
        INVALID,
        "relevant_chunk_ids",
    ),
    C(
        "chunk in both lists",
        lambda w: rag_pb2.FeedbackRequest(
            answer_id=w.ids["answer_id"],
            rating=rag_pb2.FEEDBACK_RATING_THUMBS_UP,
            relevant_chunk_ids=["c1"],
            irrelevant_chunk_ids=["c1"],
        ),
        INVALID,
        "chunk_ids",
    ),
)

# Good requests that need another key, or that would change state for good: run as a sibling RPC.
GOOD_KEY = {
    ADM + "CreateTenant": "operator",
    ADM + "ListTenants": "operator",
    ADM + "SetTenantQuota": "operator",
}
GOOD_PATH = {
    TR + "BuildDatasetFromFeedback": TR + "ListDatasets",  # the tenant has no feedback to build from
    AD + "DeleteAlias": AD + "ListAliases",
    AD + "Rollback": AD + "ListAliases",
    TR + "StartTraining": TR + "ListTrainingJobs",
    TR + "GetTrainingJob": TR + "ListTrainingJobs",
    TR + "WatchTrainingJob": TR + "ListTrainingJobs",
    TR + "CancelTrainingJob": TR + "ListTrainingJobs",
    TR + "PromoteCanary": TR + "ListTrainingJobs",
    ADM + "CreateTenant": ADM + "GetTenant",
    ADM + "ListTenants": ADM + "ListTenants",
    ADM + "SetTenantQuota": ADM + "GetTenant",
    ADM + "CreateApiKey": ADM + "ListApiKeys",
    ADM + "RevokeApiKey": ADM + "ListApiKeys",
}
GOOD[ADM + "ListTenants"] = lambda w: admin_pb2.ListTenantsRequest()
GOOD[AD + "DeleteAlias"] = lambda w: apb.ListAliasesRequest(adapter_name="bi-bot")
GOOD[TR + "BuildDatasetFromFeedback"] = lambda w: tpb.ListDatasetsRequest(name="bi-data")

# Operator-only calls with bad input (sent with the operator key).
TABLE[ADM + "CreateTenant"] += [
    C("empty id", admin_pb2.CreateTenantRequest(), INVALID, "tenant_id", key="operator"),
    C(
        "id with a slash",
        admin_pb2.CreateTenantRequest(tenant_id="a/b"),
        INVALID,
        "tenant_id",
        key="operator",
    ),
    C(
        "id over the limit",
        admin_pb2.CreateTenantRequest(tenant_id="t" * 65),
        INVALID,
        "tenant_id",
        key="operator",
    ),
    C(
        "display name over 200",
        admin_pb2.CreateTenantRequest(tenant_id="bi-other", display_name="d" * 201),
        INVALID,
        "display_name",
        key="operator",
    ),
    C(
        "existing id",
        admin_pb2.CreateTenantRequest(tenant_id=TENANT),
        grpc.StatusCode.ALREADY_EXISTS,
        TENANT,
        key="operator",
    ),
    *[
        C(
            f"quota: {what}",
            admin_pb2.CreateTenantRequest(tenant_id="bi-other", quota=q),
            INVALID,
            needle,
            key="operator",
        )
        for what, q, needle in QUOTA_CASES
    ],
]
TABLE[ADM + "ListTenants"] += [
    C(what, admin_pb2.ListTenantsRequest(**kw), code, needle, key="operator")
    for what, kw, code, needle in PAGE_CASES
]
TABLE[ADM + "SetTenantQuota"] += [
    C(
        "unknown tenant",
        admin_pb2.SetTenantQuotaRequest(tenant_id="no-such-tenant", quota=admin_pb2.TenantQuota()),
        NOT_FOUND,
        "no-such-tenant",
        key="operator",
    ),
    C(
        "no tenant",
        admin_pb2.SetTenantQuotaRequest(quota=admin_pb2.TenantQuota()),
        INVALID,
        "tenant_id",
        key="operator",
    ),
    *[
        C(
            f"quota: {what}",
            admin_pb2.SetTenantQuotaRequest(tenant_id=TENANT, quota=q),
            INVALID,
            needle,
            key="operator",
        )
        for what, q, needle in QUOTA_CASES
    ],
]


# -- generic cases every RPC gets -------------------------------------------------------------------


def _first_string_field(descriptor) -> FieldDescriptor | None:
    for f in descriptor.fields:
        if f.type == FieldDescriptor.TYPE_STRING:
            return f
    for f in descriptor.fields:  # one level down (e.g. a document's doc_id)
        if f.type == FieldDescriptor.TYPE_MESSAGE and not f.message_type.full_name.startswith("google."):
            inner = _first_string_field(f.message_type)
            if inner is not None:
                return f
    return None


def _bad_utf8_bytes(descriptor) -> bytes | None:
    """A serialized ``descriptor`` message whose first string field holds invalid UTF-8."""
    f = _first_string_field(descriptor)
    if f is None:
        return None
    payload = BAD_UTF8
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        payload = _bad_utf8_bytes(f.message_type)
    return _varint(f.number << 3 | 2) + _varint(len(payload)) + payload


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _oversize(good: bytes) -> bytes:
    """``good`` plus an unknown field that takes the message past the server's limit."""
    filler = b"x" * (MESSAGE_LIMIT + 1)
    return good + _varint(9999 << 3 | 2) + _varint(len(filler)) + filler


def generic_cases(path: str, good: Any, *, key: str = "admin") -> list[Case]:
    m = METHODS[path]
    first = good[0] if isinstance(good, list) else good
    wire = _wire(first)
    rest = good[1:] if isinstance(good, list) else []

    def shaped(head: bytes) -> Any:
        return [head, *rest] if m.client_streaming else head

    out = [
        C("deadline 0", good, DEADLINE, "deadline", timeout=0, key=key),
        C("deadline already passed", good, DEADLINE, "deadline", timeout=-1, key=key),
        C("message over the size limit", shaped(_oversize(wire)), EXHAUSTED, str(MESSAGE_LIMIT), key=key),
        C(
            "not a protobuf message",
            shaped(b"\xff\xff\xff\xff\x0f"),
            INVALID,
            m.input_type.full_name,
            key=key,
        ),
    ]
    bad = _bad_utf8_bytes(m.input_type)
    if bad is not None:
        out.append(C("invalid UTF-8 in a string field", shaped(bad), INVALID, "UTF-8", key=key))
    return out


# -- the tests -----------------------------------------------------------------------------------------


def test_the_table_covers_every_rpc_of_every_service():
    assert set(TABLE) == set(METHODS), {
        "rpcs without bad-input cases": sorted(set(METHODS) - set(TABLE)),
        "cases for rpcs that do not exist": sorted(set(TABLE) - set(METHODS)),
    }
    for path, items in TABLE.items():
        has_fields = len(METHODS[path].input_type.fields) > 0
        assert items or not has_fields, f"{path} takes fields but has no bad-input cases"
    assert sum(len(v) for v in TABLE.values()) >= 400


@pytest.mark.parametrize("path", sorted(TABLE), ids=lambda p: p.rsplit(".", 1)[-1])
async def test_bad_input_is_refused_with_its_status_and_nothing_is_written(world, operator_key, path):
    w = world
    w.keys.setdefault("operator", operator_key)
    good_path = GOOD_PATH.get(path, path)
    good = GOOD[path](w)
    wrong: list[str] = []
    generic = generic_cases(
        path, good if good_path == path else _generic_good(w, path), key=GOOD_KEY.get(path, "admin")
    )
    before = await _snapshot(w)
    for case in [*TABLE[path], *generic]:
        response = None
        try:
            response = await _invoke(w, path, case.build(w), key=case.key, timeout=case.timeout)
        except grpc.aio.AioRpcError as exc:
            got, details = exc.code(), exc.details() or ""
        except asyncio.CancelledError:
            # grpc.aio's client now and then raises this instead of DEADLINE_EXCEEDED when a
            # client stream starts with no time left (the server's answer is the same)
            if case.timeout is None or case.timeout > 0:
                raise
            got, details = DEADLINE, "deadline exceeded (the client cancelled the call)"
        else:
            got, details = grpc.StatusCode.OK, ""
            problem = case.check(response) if case.check is not None else "no check for an OK answer"
            if problem and case.code == grpc.StatusCode.OK:
                wrong.append(f"{case.what}: {problem[:400]}")
        if got != case.code or (got != grpc.StatusCode.OK and case.needle.lower() not in details.lower()):
            wrong.append(
                f"{case.what}: want {case.code.name} with {case.needle!r}, got {got.name}: {details[:300]}"
            )
        changed, before = await _settled(w, before)
        if changed:
            wrong.append(f"{case.what}: the request changed {changed}")
    try:  # the server keeps serving
        await _invoke(w, good_path, good, key=GOOD_KEY.get(path, "admin"), max_responses=1)
    except grpc.aio.AioRpcError as exc:
        wrong.append(f"good request: {exc.code().name}: {exc.details()}")
    assert not wrong, "\n".join([path, *wrong])


def _generic_good(w: World, path: str) -> Any:
    """A well-formed request of ``path`` itself (for the generic cases) when its group's good
    request runs on a sibling RPC: the generic cases never get past the transport or validation."""
    first_case = TABLE[path][0] if TABLE[path] else None
    return (
        first_case.build(w)
        if first_case is not None
        else message_factory.GetMessageClass(METHODS[path].input_type)()
    )

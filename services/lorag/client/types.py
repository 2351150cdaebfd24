"""Typed results of the SDK: frozen dataclasses converted from the response protos.

Every result keeps the message it came from in ``raw`` (not part of equality or ``repr``), so
fields the dataclass does not carry stay reachable. Enum values become short lower-case names
(``ROLE_ADMIN`` -> ``"admin"``), timestamps aware ``datetime`` objects (or None when unset),
``Struct`` metadata plain dicts.

>>> answer = client.rag.ask("How do I reset my password?")
>>> answer.citations[0].doc_id, answer.raw.trace_id
('faq/accounts.md', '4bf92f3577b34da6a3ce929d0e0e4736')
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message


def enum_name(enum_type: Any, value: int) -> str:
    """``"admin"`` for ``ROLE_ADMIN``: the value's name without the enum's prefix, lower-case;
    ``""`` for the ``_UNSPECIFIED`` zero and ``"<n>"`` for numbers this SDK does not know."""
    names = enum_type.keys()
    prefix = names[0][: -len("UNSPECIFIED")] if names[0].endswith("_UNSPECIFIED") else ""
    try:
        name = enum_type.Name(value)
    except ValueError:
        return str(value)
    return "" if value == 0 else name[len(prefix) :].lower()


def enum_value(enum_type: Any, name: str | int) -> int:
    """The number of ``"admin"`` / ``"ROLE_ADMIN"`` / ``2`` in ``enum_type``; ValueError if unknown."""
    if isinstance(name, int):
        return name
    names = enum_type.keys()
    prefix = names[0][: -len("UNSPECIFIED")] if names[0].endswith("_UNSPECIFIED") else ""
    key = name.strip().upper().replace("-", "_")
    for candidate in (key, prefix + key):
        if candidate in names:
            return enum_type.Value(candidate)
    choices = ", ".join(n[len(prefix) :].lower() for n in names[1:])
    raise ValueError(f"unknown value {name!r}; choose one of: {choices}")


def timestamp(message: Message, name: str) -> dt.datetime | None:
    """Field ``name`` (a Timestamp) as an aware UTC datetime, None when unset."""
    if not message.HasField(name):
        return None
    return getattr(message, name).ToDatetime(dt.UTC)


def struct(message: Message, name: str) -> dict[str, Any]:
    """Field ``name`` (a Struct) as a dict, {} when unset."""
    if not message.HasField(name):
        return {}
    return json_format.MessageToDict(getattr(message, name))


def _raw() -> Any:
    return field(default=None, repr=False, compare=False, kw_only=True)


# -- common ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """Tokens of a model call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_proto(cls, m) -> Usage:
        return cls(m.prompt_tokens, m.completion_tokens, m.total_tokens)


@dataclass(frozen=True)
class StageTiming:
    """Time spent in one stage of a request."""

    stage: str
    duration_ms: float

    @classmethod
    def from_proto(cls, m) -> StageTiming:
        return cls(m.stage, m.duration_ms)


# -- admin ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantQuota:
    """Limits of a tenant; 0 means unlimited."""

    max_documents: int = 0
    max_adapters: int = 0
    max_requests_per_minute: int = 0
    max_storage_bytes: int = 0

    @classmethod
    def from_proto(cls, m) -> TenantQuota:
        return cls(m.max_documents, m.max_adapters, m.max_requests_per_minute, m.max_storage_bytes)


@dataclass(frozen=True)
class Tenant:
    """A tenant of the platform."""

    tenant_id: str
    display_name: str
    quota: TenantQuota
    create_time: dt.datetime | None
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> Tenant:
        return cls(
            m.tenant_id, m.display_name, TenantQuota.from_proto(m.quota), timestamp(m, "create_time"), raw=m
        )


@dataclass(frozen=True)
class ApiKey:
    """An API key's record (never its secret, which is shown once at creation)."""

    key_id: str
    role: str
    description: str
    create_time: dt.datetime | None
    revoke_time: dt.datetime | None
    created_by: str
    raw: Any = _raw()

    @property
    def revoked(self) -> bool:
        return self.revoke_time is not None

    @classmethod
    def from_proto(cls, m) -> ApiKey:
        from lorag.admin.v1 import admin_pb2

        return cls(
            m.key_id,
            enum_name(admin_pb2.Role, m.role),
            m.description,
            timestamp(m, "create_time"),
            timestamp(m, "revoke_time"),
            m.created_by,
            raw=m,
        )


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: its record and its secret ``api_key`` (shown only this once)."""

    key: ApiKey
    api_key: str
    raw: Any = _raw()


@dataclass(frozen=True)
class NewTenant:
    """A tenant just created, with its first admin key when one was asked for."""

    tenant: Tenant
    admin_key: ApiKey | None
    admin_api_key: str | None
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> NewTenant:
        has_key = m.HasField("admin_key")
        return cls(
            Tenant.from_proto(m.tenant),
            ApiKey.from_proto(m.admin_key) if has_key else None,
            m.admin_api_key or None,
            raw=m,
        )


@dataclass(frozen=True)
class Identity:
    """Who an API key is: its tenant, role and key id."""

    tenant_id: str
    role: str
    key_id: str
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> Identity:
        from lorag.admin.v1 import admin_pb2

        return cls(m.tenant_id, enum_name(admin_pb2.Role, m.role), m.key_id, raw=m)


@dataclass(frozen=True)
class UsageRecord:
    """Requests, errors and tokens of one service (on one UTC day, or over the period)."""

    service: str
    date: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int

    @classmethod
    def from_proto(cls, m) -> UsageRecord:
        return cls(m.service, m.date, m.requests, m.errors, m.input_tokens, m.output_tokens)


@dataclass(frozen=True)
class UsageReport:
    """A tenant's usage over a period of UTC days, per day and service and in total."""

    tenant_id: str
    start_date: str
    end_date: str
    days: list[UsageRecord]
    totals: list[UsageRecord]
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> UsageReport:
        return cls(
            m.tenant_id,
            m.start_date,
            m.end_date,
            [UsageRecord.from_proto(d) for d in m.days],
            [UsageRecord.from_proto(d) for d in m.totals],
            raw=m,
        )


# -- adapters -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alias:
    """A movable name (``production``, ``canary``, ...) pointing at one version of an adapter."""

    adapter_name: str
    name: str
    version: int
    version_id: str
    traffic_weight: int
    previous_version_id: str
    updated_by: str
    update_time: dt.datetime | None
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> Alias:
        return cls(
            m.adapter_name,
            m.name,
            m.version,
            m.version_id,
            m.traffic_weight,
            m.previous_version_id,
            m.updated_by,
            timestamp(m, "update_time"),
            raw=m,
        )


@dataclass(frozen=True)
class AliasChange:
    """An alias after SetAlias / Rollback and the registry revision of the change."""

    alias: Alias
    revision: int
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> AliasChange:
        return cls(Alias.from_proto(m.alias), m.revision, raw=m)


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter of your tenant with its aliases."""

    name: str
    kind: str
    base_model: str
    description: str
    latest_version: int
    aliases: tuple[Alias, ...]
    create_time: dt.datetime | None
    update_time: dt.datetime | None
    raw: Any = _raw()

    def alias(self, name: str) -> Alias | None:
        """The alias called ``name``, or None."""
        return next((a for a in self.aliases if a.name == name), None)

    @classmethod
    def from_proto(cls, m) -> Adapter:
        from lorag.adapters.v1 import adapters_pb2

        return cls(
            m.name,
            enum_name(adapters_pb2.AdapterKind, m.kind),
            m.base_model,
            m.description,
            m.latest_version,
            tuple(Alias.from_proto(a) for a in m.aliases),
            timestamp(m, "create_time"),
            timestamp(m, "update_time"),
            raw=m,
        )


@dataclass(frozen=True)
class AdapterFile:
    """One file of an adapter version."""

    name: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class AdapterVersion:
    """An immutable version of an adapter."""

    version_id: str
    adapter_name: str
    version: int
    kind: str
    base_model: str
    sha256: str
    rank: int
    alpha: float
    target_modules: tuple[str, ...]
    size_bytes: int
    files: tuple[AdapterFile, ...]
    parent_version_id: str
    metrics: dict[str, float]
    created_by: str
    training_job_id: str
    description: str
    state: str
    create_time: dt.datetime | None
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> AdapterVersion:
        from lorag.adapters.v1 import adapters_pb2

        return cls(
            m.version_id,
            m.adapter_name,
            m.version,
            enum_name(adapters_pb2.AdapterKind, m.kind),
            m.base_model,
            m.sha256,
            m.rank,
            m.alpha,
            tuple(m.target_modules),
            m.size_bytes,
            tuple(AdapterFile(f.name, f.size_bytes, f.sha256) for f in m.files),
            m.parent_version_id,
            dict(m.metrics),
            m.created_by,
            m.training_job_id,
            m.description,
            enum_name(adapters_pb2.AdapterVersionState, m.state),
            timestamp(m, "create_time"),
            raw=m,
        )


@dataclass(frozen=True)
class Resolution:
    """What an adapter reference resolves to now (and for which request id)."""

    version_id: str
    adapter_name: str
    version: int
    kind: str
    base_model: str
    alias: str
    revision: int
    sha256: str
    request_id: str
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> Resolution:
        from lorag.adapters.v1 import adapters_pb2

        return cls(
            m.version_id,
            m.adapter_name,
            m.version,
            enum_name(adapters_pb2.AdapterKind, m.kind),
            m.base_model,
            m.alias,
            m.revision,
            m.sha256,
            m.request_id,
            raw=m,
        )


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the tenant's audit log."""

    event_id: str
    event_time: dt.datetime | None
    actor: str
    action: str
    resource: str
    details: dict[str, Any]
    trace_id: str
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> AuditEvent:
        return cls(
            m.event_id,
            timestamp(m, "event_time"),
            m.actor,
            m.action,
            m.resource,
            struct(m, "details"),
            m.trace_id,
            raw=m,
        )


@dataclass(frozen=True)
class RevisionEvent:
    """A registry revision seen by ``adapters.watch``; ``type`` is empty for the first message
    (the current revision) and for changes of other tenants."""

    revision: int
    type: str
    adapter_name: str
    alias: str
    version_id: str
    version: int
    traffic_weight: int
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> RevisionEvent:
        from lorag.adapters.v1 import adapters_pb2

        e = m.event
        return cls(
            m.revision,
            enum_name(adapters_pb2.AdapterEventType, e.type) if m.HasField("event") else "",
            e.adapter_name,
            e.alias,
            e.version_id,
            e.version,
            e.traffic_weight,
            raw=m,
        )


@dataclass(frozen=True)
class AdapterDeleted:
    """What deleting an adapter removed, and the registry revision of the change."""

    deleted_version_count: int
    revision: int
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> AdapterDeleted:
        return cls(m.deleted_version_count, m.revision, raw=m)


# -- training -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A validated training dataset of your tenant."""

    dataset_id: str
    name: str
    version: int
    kind: str
    sha256: str
    size_bytes: int
    record_count: int
    state: str
    description: str
    create_time: dt.datetime | None
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> Dataset:
        from lorag.adapters.v1 import adapters_pb2, training_pb2

        return cls(
            m.dataset_id,
            m.name,
            m.version,
            enum_name(adapters_pb2.AdapterKind, m.kind),
            m.sha256,
            m.size_bytes,
            m.record_count,
            enum_name(training_pb2.DatasetState, m.state),
            m.description,
            timestamp(m, "create_time"),
            raw=m,
        )


@dataclass(frozen=True)
class TrainingEvent:
    """Progress of a training job: phase, step of total, loss, ETA and evaluation metrics."""

    job_id: str
    sequence: int
    phase: str
    step: int
    total_steps: int
    loss: float | None
    eval_metrics: dict[str, float]
    eta_seconds: float | None
    message: str
    event_time: dt.datetime | None
    raw: Any = _raw()

    @property
    def finished(self) -> bool:
        """True in a final phase (succeeded, failed, cancelled)."""
        return self.phase in FINAL_PHASES

    @classmethod
    def from_proto(cls, m) -> TrainingEvent:
        from lorag.adapters.v1 import training_pb2

        return cls(
            m.job_id,
            m.sequence,
            enum_name(training_pb2.TrainingPhase, m.phase),
            m.step,
            m.total_steps,
            m.loss if m.HasField("loss") else None,
            dict(m.eval_metrics),
            m.eta_seconds if m.HasField("eta_seconds") else None,
            m.message,
            timestamp(m, "event_time"),
            raw=m,
        )


FINAL_PHASES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class TrainingJob:
    """A training job and, when it succeeded, the adapter version it registered."""

    job_id: str
    adapter_name: str
    kind: str
    base_model: str
    dataset_id: str
    phase: str
    last_event: TrainingEvent | None
    result_version_id: str
    result_version: int
    metrics: dict[str, float]
    error_message: str
    created_by: str
    create_time: dt.datetime | None
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    raw: Any = _raw()

    @property
    def finished(self) -> bool:
        return self.phase in FINAL_PHASES

    @classmethod
    def from_proto(cls, m) -> TrainingJob:
        from lorag.adapters.v1 import adapters_pb2, training_pb2

        return cls(
            m.job_id,
            m.adapter_name,
            enum_name(adapters_pb2.AdapterKind, m.kind),
            m.base_model,
            m.dataset_id,
            enum_name(training_pb2.TrainingPhase, m.phase),
            TrainingEvent.from_proto(m.last_event) if m.HasField("last_event") else None,
            m.result_version_id,
            m.result_version,
            dict(m.metrics),
            m.error_message,
            m.created_by,
            timestamp(m, "create_time"),
            timestamp(m, "start_time"),
            timestamp(m, "end_time"),
            raw=m,
        )


@dataclass(frozen=True)
class ModelInfo:
    """A model a service offers: its name, whether it is the default, and its other fields."""

    name: str
    is_default: bool
    details: dict[str, Any]
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> ModelInfo:
        details = json_format.MessageToDict(m, preserving_proto_field_name=True)
        details.pop("name", None)
        details.pop("is_default", None)
        return cls(m.name, m.is_default, details, raw=m)


# -- embedding, reranking, generation -------------------------------------------------------------


@dataclass(frozen=True)
class Embeddings:
    """Vectors of the texts, in input order."""

    vectors: tuple[tuple[float, ...], ...]
    token_counts: tuple[int, ...]
    truncated: tuple[bool, ...]
    model: str
    dimension: int
    usage: Usage
    raw: Any = _raw()

    def __len__(self) -> int:
        return len(self.vectors)

    def __iter__(self):
        return iter(self.vectors)

    def __getitem__(self, i: int) -> tuple[float, ...]:
        return self.vectors[i]

    def to_numpy(self):
        """The vectors as a float32 array of shape (texts, dimension)."""
        import numpy as np

        return np.array(self.vectors, dtype=np.float32).reshape(len(self.vectors), self.dimension)

    @classmethod
    def from_proto(cls, m) -> Embeddings:
        return cls(
            tuple(tuple(e.values) for e in m.embeddings),
            tuple(e.token_count for e in m.embeddings),
            tuple(e.truncated for e in m.embeddings),
            m.model,
            m.dimension,
            Usage.from_proto(m.usage),
            raw=m,
        )


@dataclass(frozen=True)
class RerankedPassage:
    """One passage after reranking: its position in the input, its id, text and score."""

    index: int
    id: str
    score: float
    text: str


@dataclass(frozen=True)
class Reranking:
    """Passages sorted by score, best first (at most ``top_n``)."""

    results: tuple[RerankedPassage, ...]
    model: str
    adapter_version_id: str
    scoring_method: str
    usage: Usage
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m, texts: list[str]) -> Reranking:
        from lorag.reranking.v1 import reranking_pb2

        return cls(
            tuple(
                RerankedPassage(r.index, r.id, r.score, texts[r.index] if r.index < len(texts) else "")
                for r in m.results
            ),
            m.model,
            m.adapter_version_id,
            enum_name(reranking_pb2.ScoringMethod, m.scoring_method),
            Usage.from_proto(m.usage),
            raw=m,
        )


@dataclass(frozen=True)
class Generation:
    """A completion with why it stopped, token usage and timings."""

    text: str
    finish_reason: str
    usage: Usage
    model: str
    adapter_version_id: str
    time_to_first_token_ms: float
    total_ms: float
    tokens_per_second: float
    token_ids: tuple[int, ...] = ()
    raw: Any = _raw()

    @classmethod
    def from_summary(cls, text: str, summary, *, token_ids=(), raw=None) -> Generation:
        from lorag.generation.v1 import generation_pb2

        t = summary.timings
        return cls(
            text,
            enum_name(generation_pb2.FinishReason, summary.finish_reason),
            Usage.from_proto(summary.usage),
            summary.model,
            summary.adapter_version_id,
            t.time_to_first_token_ms,
            t.total_ms,
            t.tokens_per_second,
            tuple(token_ids),
            raw=raw,
        )

    @classmethod
    def from_proto(cls, m) -> Generation:
        return cls.from_summary(m.text, m.summary, token_ids=m.token_ids, raw=m)


# -- retrieval ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchHit:
    """One retrieved chunk."""

    doc_id: str
    chunk_id: str
    chunk_index: int
    text: str
    score: float
    title: str
    metadata: dict[str, Any]
    span: tuple[int, int] | None
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> SearchHit:
        return cls(
            m.chunk.doc_id,
            m.chunk.chunk_id,
            m.chunk.chunk_index,
            m.text,
            m.score,
            m.title,
            struct(m, "metadata"),
            (m.span.start, m.span.end) if m.HasField("span") else None,
            raw=m,
        )


@dataclass(frozen=True)
class SearchResult:
    """Hits, best first, with the mode used and the server's search time."""

    hits: tuple[SearchHit, ...]
    mode: str
    took_ms: float
    embedding_model: str
    raw: Any = _raw()

    def __len__(self) -> int:
        return len(self.hits)

    def __iter__(self):
        return iter(self.hits)

    def __getitem__(self, i: int) -> SearchHit:
        return self.hits[i]

    @classmethod
    def from_proto(cls, m) -> SearchResult:
        from lorag.retrieval.v1 import retrieval_pb2

        return cls(
            tuple(SearchHit.from_proto(h) for h in m.hits),
            enum_name(retrieval_pb2.SearchMode, m.mode),
            m.took_ms,
            m.embedding_model,
            raw=m,
        )


@dataclass(frozen=True)
class UpsertProgress:
    """Result of one document of ``retrieval.upsert`` and the counts so far."""

    doc_id: str
    status: str
    chunk_count: int
    replaced_chunk_count: int
    chunk_ids: tuple[str, ...]
    error: str
    documents_total: int
    documents_done: int
    documents_failed: int
    chunks_written: int
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> UpsertProgress:
        from lorag.retrieval.v1 import retrieval_pb2

        r, p = m.result, m.progress
        return cls(
            r.doc_id,
            enum_name(retrieval_pb2.DocumentStatus, r.status),
            r.chunk_count,
            r.replaced_chunk_count,
            tuple(r.chunk_ids),
            r.error,
            p.documents_total,
            p.documents_done,
            p.documents_failed,
            p.chunks_written,
            raw=m,
        )


@dataclass(frozen=True)
class StoredDocument:
    """A document as the retrieval service holds it."""

    doc_id: str
    title: str
    metadata: dict[str, Any]
    chunk_count: int
    content_sha256: str
    embedding_model: str
    create_time: dt.datetime | None
    update_time: dt.datetime | None
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> StoredDocument:
        return cls(
            m.doc_id,
            m.title,
            struct(m, "metadata"),
            m.chunk_count,
            m.content_sha256,
            m.embedding_model,
            timestamp(m, "create_time"),
            timestamp(m, "update_time"),
            raw=m,
        )


@dataclass(frozen=True)
class Deleted:
    """What a delete removed."""

    documents: int
    chunks: int
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> Deleted:
        return cls(m.deleted_document_count, m.deleted_chunk_count, raw=m)


@dataclass(frozen=True)
class RetrievalStats:
    """Documents and chunks of your tenant, in total and per collection (embedding model)."""

    document_count: int
    chunk_count: int
    collections: tuple[dict[str, Any], ...]
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> RetrievalStats:
        return cls(
            m.document_count,
            m.chunk_count,
            tuple(json_format.MessageToDict(c, preserving_proto_field_name=True) for c in m.collections),
            raw=m,
        )


# -- rag ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Citation:
    """A passage an answer cites as ``[index]``."""

    index: int
    doc_id: str
    chunk_id: str
    score: float
    text: str
    title: str
    char_start: int | None
    char_end: int | None
    raw: Any = _raw()

    @classmethod
    def from_proto(cls, m) -> Citation:
        return cls(
            m.index,
            m.doc_id,
            m.chunk_id,
            m.score,
            m.text,
            m.title,
            m.char_start if m.char_start >= 0 else None,
            m.char_end if m.char_end >= 0 else None,
            raw=m,
        )


@dataclass(frozen=True)
class Answer:
    """The answer to a question, with citations, the rejection flag, timings and usage.

    ``rejected`` is True when your documents did not support an answer; ``answer`` then holds
    the server's fixed refusal text.
    """

    answer: str
    citations: tuple[Citation, ...]
    rejected: bool
    timings: tuple[StageTiming, ...]
    usage: Usage
    answer_id: str
    trace_id: str
    adapter_version_id: str
    reranker_adapter_version_id: str
    contexts: tuple[Citation, ...]
    search_queries: tuple[str, ...]
    retrieval_performed: bool
    raw: Any = _raw()

    def __str__(self) -> str:
        return self.answer

    @classmethod
    def from_proto(cls, m) -> Answer:
        return cls(
            m.answer,
            tuple(Citation.from_proto(c) for c in m.citations),
            m.rejected,
            tuple(StageTiming.from_proto(t) for t in m.timings),
            Usage.from_proto(m.usage),
            m.answer_id,
            m.trace_id,
            m.adapter_version_id,
            m.reranker_adapter_version_id,
            tuple(Citation.from_proto(c) for c in m.contexts),
            tuple(m.search_queries),
            m.retrieval_performed,
            raw=m,
        )


@dataclass(frozen=True)
class IngestTotals:
    """Counts over the documents processed so far."""

    received: int = 0
    indexed: int = 0
    failed: int = 0
    skipped: int = 0
    chunks: int = 0

    @classmethod
    def from_proto(cls, m) -> IngestTotals:
        return cls(m.received, m.indexed, m.failed, m.skipped, m.chunks)


@dataclass(frozen=True)
class IngestProgress:
    """The outcome of one document (``status``: indexed, failed or skipped) and the totals."""

    doc_id: str
    status: str
    chunk_count: int
    error: str
    totals: IngestTotals
    raw: Any = _raw()

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @classmethod
    def from_result(cls, result, totals, raw=None) -> IngestProgress:
        from lorag.rag.v1 import rag_pb2

        return cls(
            result.doc_id,
            enum_name(rag_pb2.IngestStatus, result.status),
            result.chunk_count,
            result.error,
            IngestTotals.from_proto(totals),
            raw=raw,
        )

    @classmethod
    def from_proto(cls, m) -> IngestProgress:
        return cls.from_result(m.result, m.totals, raw=m)

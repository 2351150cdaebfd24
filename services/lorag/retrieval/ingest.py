"""The ingest pipeline: documents -> (parse -> chunk by tokens -> embed) -> replace their chunks.

``IngestPipeline.run`` checks the whole batch first (nothing is written when any document is
malformed: INVALID_ARGUMENT naming the field), then processes documents one by one and yields a
result and the running totals after each. A document that fails while being processed (content
that does not parse, embedding or storage failure) is reported FAILED and leaves its earlier
chunks untouched; the other documents go on. Each document is written with one upsert, then its
surplus chunks (from a longer earlier version) are removed, so re-ingesting is idempotent.

When the vector store itself is down (every write of a group fails with UNAVAILABLE), the request
ends with UNAVAILABLE instead: the documents reported INDEXED before are stored, the others were
not written (they keep their earlier chunks), and sending the same request again is safe.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lorag.common import errors
from lorag.common.errors import FailedPrecondition, InvalidArgument
from lorag.common.tenancy import validate_tenant_id
from lorag.retrieval import parsing
from lorag.retrieval.chunking import (
    TextChunk,
    chunk_text,
    regex_token_starts,
    tokenizer_token_starts,
)
from lorag.retrieval.core import (
    DocumentWrite,
    RetrievalCore,
    StoredChunk,
    check_vector,
    validate_doc_id,
)

log = logging.getLogger("lorag.retrieval.ingest")

META_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
RESERVED_META_KEYS = frozenset({"tenant_id"})
MAX_TITLE_CHARS = 1024
MAX_SHA_CHARS = 128
_EMBED_BATCH = 64  # texts per embedding call
_GROUP_DOCS = 32  # documents prepared, embedded and written together (one lookup, one upsert)
_MAX_META_DEPTH = 8


# -- inputs and outputs --------------------------------------------------------------------------
@dataclass
class ChunkSpec:
    text: str
    vector: Sequence[float] | None = None
    span: tuple[int, int] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class DocumentSpec:
    doc_id: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    content_sha256: str = ""
    chunks: list[ChunkSpec] | None = None
    text: str | None = None
    data: bytes | None = None
    mime_type: str = ""


@dataclass(frozen=True)
class ChunkingSpec:
    chunk_tokens: int = 0  # 0: server default
    overlap_tokens: int | None = None  # None: server default


@dataclass(frozen=True)
class DocumentOutcome:
    doc_id: str
    ok: bool
    chunk_count: int = 0
    replaced_chunk_count: int = 0
    chunk_ids: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class Progress:
    total: int
    done: int
    failed: int
    chunks_written: int


# -- validation ----------------------------------------------------------------------------------
def validate_metadata(meta: Any, *, field: str, limit: int) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise InvalidArgument("must be an object", field=field)
    for key in meta:
        if not isinstance(key, str) or not META_KEY_RE.fullmatch(key):
            raise InvalidArgument(
                f"key {str(key)[:80]!r} must be 1-64 letters, digits, '_' or '-' "
                "(not starting with '_' or '-')",
                field=field,
            )
        if key in RESERVED_META_KEYS:
            raise InvalidArgument(f"key {key!r} is reserved", field=field)
    _check_json_values(meta, field=field, depth=0)
    size = len(json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limit:
        raise InvalidArgument(f"is {size} bytes as JSON; the limit is {limit}", field=field)
    return meta


def _check_json_values(value: Any, *, field: str, depth: int) -> None:
    if depth > _MAX_META_DEPTH:
        raise InvalidArgument(f"nests deeper than {_MAX_META_DEPTH} levels", field=field)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument("numbers must be finite", field=field)
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidArgument("keys must be strings", field=field)
            _check_json_values(v, field=field, depth=depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            _check_json_values(v, field=field, depth=depth + 1)
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise InvalidArgument(f"unsupported value type {type(value).__name__}", field=field)


def _check_plain_text(value: str, *, field: str, max_chars: int) -> None:
    if len(value) > max_chars:
        raise InvalidArgument(f"at most {max_chars} characters (got {len(value)})", field=field)
    if any(ord(ch) < 32 and ch != "\t" for ch in value):
        raise InvalidArgument("control characters are not allowed", field=field)


@dataclass
class _Planned:
    spec: DocumentSpec
    metadata: dict[str, Any]
    mime: str = ""
    # for caller chunks: validated vectors (None where the server embeds)
    vectors: list[np.ndarray | None] = field(default_factory=list)


@dataclass
class _Plan:
    model: str
    dimension: int
    chunk_tokens: int
    overlap_tokens: int
    docs: list[_Planned]


@dataclass
class _Prepared:
    planned: _Planned
    title: str
    texts: list[str]
    spans: list[tuple[int, int] | None]
    metas: list[dict[str, Any]]
    vectors: list[np.ndarray | None]
    error: DocumentOutcome | None = None


def _failed(doc_id: str, stage: str, exc: BaseException) -> DocumentOutcome:
    """A FAILED outcome whose message is safe to show (no internal details)."""
    if isinstance(exc, parsing.ParseError):
        return DocumentOutcome(doc_id, False, error=str(exc))
    if isinstance(exc, errors.LoragError):
        log.info("document %s failed while %s: %s", doc_id, stage, exc)
        return DocumentOutcome(doc_id, False, error=f"{stage} failed: {exc.message}")
    log.error("document %s failed while %s", doc_id, stage, exc_info=exc)
    return DocumentOutcome(doc_id, False, error=f"internal error while {stage}")


class IngestPipeline:
    def __init__(self, core: RetrievalCore) -> None:
        self.core = core
        self.settings = core.settings
        self._tokenizers: dict[str, Any] = {}

    async def plan(
        self,
        tenant_id: str,
        docs: Sequence[DocumentSpec],
        *,
        model: str = "",
        chunking: ChunkingSpec | None = None,
    ) -> _Plan:
        """Check the whole batch; raises (nothing written) on the first malformed field."""
        s = self.settings
        validate_tenant_id(tenant_id)
        if not 1 <= len(docs) <= s.max_documents_per_request:
            raise InvalidArgument(
                f"1-{s.max_documents_per_request} documents per request (got {len(docs)})", field="documents"
            )
        chunking = chunking or ChunkingSpec()
        chunk_tokens = chunking.chunk_tokens or s.chunk_tokens
        if not 16 <= chunk_tokens <= 8192:
            raise InvalidArgument(
                f"must be 0 or 16-8192 (got {chunking.chunk_tokens})", field="chunking.chunk_tokens"
            )
        overlap = s.chunk_overlap_tokens if chunking.overlap_tokens is None else chunking.overlap_tokens
        if chunking.overlap_tokens is None:
            overlap = min(overlap, chunk_tokens // 4)
        if not 0 <= overlap < chunk_tokens:
            raise InvalidArgument(
                f"must be between 0 and chunk_tokens - 1 (got {overlap})", field="chunking.overlap_tokens"
            )
        model, dim = await self.core.resolve_model(model)
        seen: dict[str, int] = {}
        planned: list[_Planned] = []
        needs_embedding = False
        for i, d in enumerate(docs):
            path = f"documents[{i}]"
            validate_doc_id(d.doc_id, field=f"{path}.doc_id")
            if d.doc_id in seen:
                raise InvalidArgument(
                    f"duplicate of documents[{seen[d.doc_id]}].doc_id", field=f"{path}.doc_id"
                )
            seen[d.doc_id] = i
            _check_plain_text(d.title or "", field=f"{path}.title", max_chars=MAX_TITLE_CHARS)
            sha = d.content_sha256 or ""
            if len(sha) > MAX_SHA_CHARS or not sha.isprintable():
                raise InvalidArgument(
                    f"at most {MAX_SHA_CHARS} printable characters", field=f"{path}.content_sha256"
                )
            meta = validate_metadata(d.metadata, field=f"{path}.metadata", limit=s.max_metadata_bytes)
            given = [x is not None for x in (d.chunks, d.text, d.data)]
            if sum(given) != 1:
                raise InvalidArgument("exactly one of chunks, text or data is required", field=path)
            p = _Planned(d, meta)
            if d.chunks is not None:
                n = len(d.chunks)
                if not 1 <= n <= s.max_chunks_per_document:
                    raise InvalidArgument(
                        f"1-{s.max_chunks_per_document} chunks per document (got {n})", field=f"{path}.chunks"
                    )
                for j, c in enumerate(d.chunks):
                    cpath = f"{path}.chunks[{j}]"
                    self._check_chunk_text(c.text, field=f"{cpath}.text")
                    if c.vector is not None and len(c.vector) > 0:
                        p.vectors.append(check_vector(c.vector, dim, field=f"{cpath}.dense"))
                    else:
                        p.vectors.append(None)
                        needs_embedding = True
                    if c.span is not None and not 0 <= c.span[0] <= c.span[1]:
                        raise InvalidArgument("needs 0 <= start <= end", field=f"{cpath}.span")
                    cmeta = validate_metadata(
                        c.metadata, field=f"{cpath}.metadata", limit=s.max_metadata_bytes
                    )
                    validate_metadata(
                        {**meta, **cmeta}, field=f"{cpath}.metadata", limit=s.max_metadata_bytes
                    )
            else:
                p.mime = parsing.normalize_mime(d.mime_type, field=f"{path}.mime_type")
                content = d.text if d.text is not None else d.data
                key = "text" if d.text is not None else "data"
                size = len(content.encode()) if isinstance(content, str) else len(content)
                if size > s.max_content_bytes:
                    raise InvalidArgument(
                        f"is {size} bytes; the limit is {s.max_content_bytes}", field=f"{path}.{key}"
                    )
                if (isinstance(content, str) and not content.strip()) or not content:
                    raise InvalidArgument("is empty", field=f"{path}.{key}")
                if p.mime == parsing.PDF and isinstance(content, str):
                    raise InvalidArgument("PDF content must be sent as data (bytes)", field=f"{path}.text")
                parsing.check_supported(p.mime, field=f"{path}.mime_type")
                needs_embedding = True
            planned.append(p)
        if needs_embedding and self.core.embedder is None:
            raise FailedPrecondition("text embedding is not available in this deployment; send vectors")
        return _Plan(model, dim, chunk_tokens, overlap, planned)

    def _check_chunk_text(self, text: str, *, field: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument("is empty", field=field)
        limit = self.settings.max_chunk_chars
        if len(text) > limit:
            raise InvalidArgument(f"at most {limit} characters (got {len(text)})", field=field)
        if len(text.encode()) > 65535:
            raise InvalidArgument("at most 65,535 bytes of UTF-8", field=field)
        if "\x00" in text:
            raise InvalidArgument("NUL characters are not allowed", field=field)

    async def run(
        self,
        tenant_id: str,
        docs: Sequence[DocumentSpec],
        *,
        model: str = "",
        chunking: ChunkingSpec | None = None,
    ) -> AsyncIterator[tuple[DocumentOutcome, Progress]]:
        plan = await self.plan(tenant_id, docs, model=model, chunking=chunking)
        info = await asyncio.to_thread(self.core.store.ensure_collection, plan.model, plan.dimension)
        done = failed = written = 0
        group: list[_Prepared | DocumentOutcome] = []
        pending = 0
        for n, p in enumerate(plan.docs, 1):
            prepared = await self._prepare(plan, p)
            group.append(prepared)
            if isinstance(prepared, _Prepared):
                pending += sum(v is None for v in prepared.vectors)
            if pending < _EMBED_BATCH and len(group) < _GROUP_DOCS and n < len(plan.docs):
                continue
            # one embedding call for the group's texts, then one write per document
            await self._embed_group(plan, [g for g in group if isinstance(g, _Prepared)])
            outcomes = await self._write_group(tenant_id, info, group)
            if outcomes is None:
                raise errors.Unavailable(
                    f"the vector store is unavailable; {done - failed} of {len(plan.docs)} documents were "
                    "indexed before it failed and the others were not written: send the request again "
                    "once it is back (ingest is idempotent)"
                )
            if any(o.ok for o in outcomes):
                await asyncio.to_thread(self.core.store.settle, info)
            for outcome in outcomes:
                done += 1
                failed += not outcome.ok
                written += outcome.chunk_count
                yield outcome, Progress(len(plan.docs), done, failed, written)
            group, pending = [], 0

    async def _prepare(self, plan: _Plan, p: _Planned) -> _Prepared | DocumentOutcome:
        """Parse and chunk (raw content) or take the caller's chunks; a failure is the outcome."""
        d = p.spec
        stage = "parsing"
        try:
            if d.chunks is not None:
                return _Prepared(
                    p,
                    d.title or "",
                    texts=[c.text for c in d.chunks],
                    spans=[c.span for c in d.chunks],
                    metas=[{**p.metadata, **(c.metadata or {})} for c in d.chunks],
                    vectors=list(p.vectors),
                )
            content = d.text if d.text is not None else d.data
            parsed = await asyncio.to_thread(parsing.parse, content, p.mime)
            stage = "chunking"
            pieces = await asyncio.to_thread(self._chunk, parsed, plan)
        except Exception as exc:  # noqa: BLE001 - one document's failure must not stop the batch
            return _failed(d.doc_id, stage, exc)
        if not pieces:
            return DocumentOutcome(d.doc_id, False, error="the document has no text content")
        if len(pieces) > self.settings.max_chunks_per_document:
            return DocumentOutcome(
                d.doc_id,
                False,
                error=f"the document makes {len(pieces)} chunks; the limit is "
                f"{self.settings.max_chunks_per_document} (raise chunk_tokens)",
            )
        return _Prepared(
            p,
            d.title or parsed.title,
            texts=[c.text for c in pieces],
            spans=[(c.start, c.end) for c in pieces],
            metas=[dict(p.metadata) for _ in pieces],
            vectors=[None] * len(pieces),
        )

    async def _embed_group(self, plan: _Plan, group: list[_Prepared]) -> None:
        """Fill missing vectors; if a shared call fails, retry per document to isolate it."""
        todo = [(g, i) for g in group for i, v in enumerate(g.vectors) if v is None]
        if not todo:
            return
        try:
            await self._embed_into(plan, todo)
        except Exception:  # noqa: BLE001 - fall back to one call per document
            for g in group:
                mine = [(g, i) for i, v in enumerate(g.vectors) if v is None]
                if not mine:
                    continue
                try:
                    await self._embed_into(plan, mine)
                except Exception as exc:  # noqa: BLE001 - this document fails, the others go on
                    g.error = _failed(g.planned.spec.doc_id, "embedding", exc)

    async def _embed_into(self, plan: _Plan, todo: list[tuple[_Prepared, int]]) -> None:
        for start in range(0, len(todo), _EMBED_BATCH):
            part = todo[start : start + _EMBED_BATCH]
            out = await self.core.embed([g.texts[i] for g, i in part], model=plan.model, input_type="passage")
            if out.shape != (len(part), plan.dimension):
                raise RuntimeError(f"the embedder returned shape {out.shape}")
            for k, (g, i) in enumerate(part):
                g.vectors[i] = check_vector(out[k], plan.dimension, field="embedding")

    async def _write_group(
        self, tenant_id: str, info, group: list[_Prepared | DocumentOutcome]
    ) -> list[DocumentOutcome] | None:
        """One outcome per entry of ``group``; None when the store was unavailable for every write."""
        ready = [g for g in group if isinstance(g, _Prepared) and g.error is None]
        writes = [
            DocumentWrite(
                g.planned.spec.doc_id,
                g.title,
                g.planned.metadata,
                g.planned.spec.content_sha256 or "",
                [StoredChunk(g.texts[i], g.vectors[i], g.metas[i], g.spans[i]) for i in range(len(g.texts))],
            )
            for g in ready
        ]
        results: dict[int, Any] = {}
        if writes:
            try:
                done = await asyncio.to_thread(self.core.store.write_documents, tenant_id, info, writes)
            except Exception as exc:  # noqa: BLE001 - the shared lookup failed: every document fails
                done = [exc] * len(writes)
            if all(isinstance(r, errors.Unavailable) for r in done):
                return None
            results = {id(g): r for g, r in zip(ready, done, strict=True)}
        outcomes = []
        for g in group:
            if isinstance(g, DocumentOutcome):
                outcomes.append(g)
            elif g.error is not None:
                outcomes.append(g.error)
            else:
                r = results[id(g)]
                doc_id = g.planned.spec.doc_id
                if isinstance(r, BaseException):
                    outcomes.append(_failed(doc_id, "storing", r))
                else:
                    outcomes.append(
                        DocumentOutcome(doc_id, True, len(r.chunk_ids), r.replaced, tuple(r.chunk_ids))
                    )
        return outcomes

    def _chunk(self, parsed: parsing.ParsedText, plan: _Plan) -> list[TextChunk]:
        starts = self._token_starts(plan.model)
        pieces = chunk_text(
            parsed.text,
            chunk_tokens=plan.chunk_tokens,
            overlap_tokens=plan.overlap_tokens,
            token_starts=starts,
            markdown=parsed.markdown,
        )
        # a few tokens can span many characters (e.g. long unknown words): keep under the limits
        limit = min(self.settings.max_chunk_chars, 16383)
        out: list[TextChunk] = []
        for c in pieces:
            if len(c.text) <= limit:
                out.append(c)
                continue
            for a in range(c.start, c.end, limit):
                b = min(a + limit, c.end)
                if parsed.text[a:b].strip():
                    out.append(TextChunk(parsed.text[a:b], a, b, len(starts(parsed.text[a:b]))))
        return out

    def _token_starts(self, model: str):
        if model not in self._tokenizers:
            tok = None
            try:
                tok = self.core.embedder.tokenizer(model) if self.core.embedder else None
            except Exception:  # noqa: BLE001 - fall back to word counting, loudly
                log.warning("no tokenizer for %s; chunking by words", model, exc_info=True)
            self._tokenizers[model] = tokenizer_token_starts(tok) if tok is not None else regex_token_starts
        return self._tokenizers[model]

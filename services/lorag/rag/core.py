"""The RAG pipeline: small replaceable stages, each timed, composed over a :class:`Downstream`.

Ask runs ``route → rewrite → expand → embed → search → rerank → reject? → assemble → generate →
cite``. Each stage is a method of :class:`RagCore` working on plain values; the services behind it
(embedding, retrieval, reranking, generation) are reached through the downstream protocol with the
authenticated tenant passed explicitly. No grpc and no ray here: downstream contracts are protobuf
messages, which need only ``protobuf``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from lorag.common import errors, metrics, telemetry
from lorag.common.convert import json_value
from lorag.common.errors import FailedPrecondition, InvalidArgument, NotFound
from lorag.generation.v1 import generation_pb2 as gen_pb
from lorag.rag import templates
from lorag.rag.downstream import Downstream, GenerationInfo
from lorag.rag.settings import RagSettings
from lorag.rag.store import AnswerStore, FeedbackInput
from lorag.reranking.v1 import reranking_pb2 as rr_pb
from lorag.retrieval.v1 import retrieval_pb2 as ret_pb

log = logging.getLogger("lorag.rag")

REFUSAL = "I could not find an answer to this question in your documents."
RRF_K = 60
CHAT_OVERHEAD_TOKENS = 24  # chat-template tokens around messages, with room to spare
MIN_CONTEXT_TOKENS = 64
MAX_MULTI_QUERY = 5
MAX_DOC_BYTES = 8 * 1024 * 1024
MAX_METADATA_BYTES = 16 * 1024
_DOC_FIELD = re.compile(r"^documents\[(\d+)\]")
_CITE = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = frozenset(
    "a an and are as at be by can did do does for from had has have how i in is it its of on or "
    "that the their there this to was were what when where which who whom why will with you your".split()
)
# Messages that need no documents: greetings, thanks, small talk, and questions about the chat.
_CHITCHAT = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|thx|good (morning|afternoon|evening)|bye|goodbye|ok|okay|"
    r"great|cool|how are you)\b[\s!.?,]*\w{0,12}[\s!.?]*$",
    re.IGNORECASE,
)
_ABOUT_CHAT = re.compile(
    r"\b(what did (you|i) (just )?(say|ask)|repeat (that|your (last )?answer)|"
    r"(summari[sz]e|translate|shorten|rephrase) (that|this|your (last )?answer|our conversation))\b",
    re.IGNORECASE,
)


# -- plain request / result types -----------------------------------------------------------------
@dataclass
class Sampling:
    temperature: float | None = None
    top_p: float | None = None
    top_k: int = 0
    max_new_tokens: int = 0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    repetition_penalty: float | None = None


@dataclass
class AskInput:
    question: str
    adapter_ref: str = ""
    reranker_ref: str = ""
    filter: Any = None  # lorag.common.v1.Filter, passed to retrieval unchanged
    mode: int = 0  # lorag.retrieval.v1.SearchMode
    fusion: int = 0  # lorag.retrieval.v1.FusionMethod
    top_k: int = 0
    rerank: bool | None = None
    rerank_top_n: int = 0
    min_relevance: float | None = None
    model: str = ""
    sampling: Sampling | None = None
    template: str = ""
    history: list[tuple[str, str]] = field(default_factory=list)
    query_rewrite: bool = False
    multi_query: int = 0
    routing: str = ""  # "", "auto", "always", "never"
    return_contexts: bool = False
    request_id: str = ""
    trace_id: str = ""


@dataclass
class Passage:
    chunk_id: str
    doc_id: str
    text: str
    score: float
    title: str = ""
    char_start: int = -1
    char_end: int = -1
    index: int = 0  # label in the prompt, from 1
    prompt_text: str = ""  # the text put in the prompt (may be compressed)


@dataclass
class AskResult:
    answer: str = ""
    citations: list[Passage] = field(default_factory=list)
    contexts: list[Passage] = field(default_factory=list)
    rejected: bool = False
    timings: list[tuple[str, float]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    adapter_version_id: str = ""
    reranker_adapter_version_id: str = ""
    trace_id: str = ""
    answer_id: str = ""
    search_queries: list[str] = field(default_factory=list)
    retrieval_performed: bool = False


@dataclass
class DocInput:
    doc_id: str
    title: str = ""
    text: str | None = None
    data: bytes | None = None
    mime_type: str = ""
    metadata: Any = None  # google.protobuf.Struct


@dataclass(frozen=True)
class IngestOptions:
    embedding_model: str = ""
    force: bool = False
    chunk_tokens: int = 0
    overlap_tokens: int | None = None


@dataclass
class DocResult:
    doc_id: str
    status: str  # "indexed" | "failed" | "skipped"
    chunk_count: int = 0
    error: str = ""


# -- helpers -----------------------------------------------------------------------------------
def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1}


def compact(text: str) -> str:
    """Whitespace runs collapsed (the cheapest prompt compression)."""
    return re.sub(r"[ \t]+", " ", re.sub(r"\n\s*\n+", "\n", text)).strip()


def needs_retrieval(question: str, history: list[tuple[str, str]]) -> bool:
    """The AUTO router: small talk and questions about the conversation itself skip retrieval."""
    if _CHITCHAT.match(question):
        return False
    return not (history and _ABOUT_CHAT.search(question))


def fuse(result_lists: list[list[Passage]], *, k: int = RRF_K) -> list[Passage]:
    """Reciprocal-rank fusion of several ranked lists; one list is returned as it is."""
    if len(result_lists) == 1:
        return list(result_lists[0])
    scores: dict[str, float] = {}
    first: dict[str, Passage] = {}
    for results in result_lists:
        for rank, p in enumerate(results):
            scores[p.chunk_id] = scores.get(p.chunk_id, 0.0) + 1.0 / (k + rank + 1)
            first.setdefault(p.chunk_id, p)
    fused = []
    for chunk_id, score in sorted(scores.items(), key=lambda kv: -kv[1]):
        p = first[chunk_id]
        fused.append(Passage(**{**p.__dict__, "score": score}))
    return fused


def dedupe(passages: list[Passage], *, threshold: float = 0.85) -> list[Passage]:
    """Drop passages whose words mostly repeat a better-scored one (overlapping chunks, copies)."""
    kept: list[tuple[Passage, set[str]]] = []
    for p in sorted(passages, key=lambda p: -p.score):
        words = content_words(p.text)
        text = compact(p.text).lower()
        duplicate = any(
            len(words & other) / min(len(words), len(other)) >= threshold
            if words and other
            else text == compact(k.text).lower()
            for k, other in kept
        )
        if not duplicate:
            kept.append((p, words))
    return [p for p, _ in kept]


def compress(text: str, query_words: set[str], budget: int, count) -> str:
    """The sentences of ``text`` that share most words with the query, in their order, within
    ``budget`` tokens; empty when no sentence fits or none shares a word."""
    sentences = [s for s in _SENTENCE.split(compact(text)) if s]
    ranked = sorted(range(len(sentences)), key=lambda i: -len(content_words(sentences[i]) & query_words))
    chosen: list[int] = []
    used = 0
    for i in ranked:
        if not content_words(sentences[i]) & query_words:
            break
        tokens = count(sentences[i]) + 1
        if used + tokens <= budget:
            chosen.append(i)
            used += tokens
    return " ".join(sentences[i] for i in sorted(chosen))


def cited_indexes(answer: str) -> list[int]:
    out: list[int] = []
    for match in _CITE.finditer(answer):
        for part in match.group(1).split(","):
            n = int(part)
            if n not in out:
                out.append(n)
    return out


def attribute(answer: str, passages: list[Passage], *, min_shared: int = 2) -> list[Passage]:
    """Citations of an answer: its ``[n]`` markers, else sentence-level attribution.

    Small models often answer from a passage without writing the marker; then each answer sentence
    is attributed to the passage sharing most content words with it (at least ``min_shared``; ties
    go to the better-ranked passage).
    """
    by_index = {p.index: p for p in passages}
    marked = [by_index[n] for n in cited_indexes(answer) if n in by_index]
    if marked:
        return sorted(marked, key=lambda p: p.index)
    words = [(p, content_words(p.text)) for p in passages]
    cited: dict[int, Passage] = {}
    for sentence in _SENTENCE.split(answer):
        sentence_words = content_words(sentence)
        best, shared = None, min_shared - 1
        for p, passage_words in words:
            n = len(sentence_words & passage_words)
            if n > shared:
                best, shared = p, n
        if best is not None:
            cited[best.index] = best
    return [cited[i] for i in sorted(cited)]


def document_hash(doc: DocInput, options: IngestOptions) -> str:
    """What decides whether a re-ingest changes anything: content, title, type, metadata, chunking."""
    h = hashlib.sha256()
    content = doc.data if doc.data is not None else (doc.text or "").encode()
    meta = doc.metadata
    meta_json = json.dumps(_struct_dict(meta), sort_keys=True, default=str) if meta is not None else "{}"
    h.update(content)
    h.update(
        json.dumps(
            [
                doc.title,
                doc.mime_type,
                meta_json,
                options.chunk_tokens,
                options.overlap_tokens,
                options.embedding_model,
            ]
        ).encode()
    )
    return h.hexdigest()


def _struct_dict(struct) -> dict:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(struct)


def _range(value: float, low: float, high: float, name: str) -> None:
    if not (low <= value <= high):
        raise InvalidArgument(f"must be between {low} and {high} (got {value})", field=name)


class Timings:
    def __init__(self) -> None:
        self.items: list[tuple[str, float]] = []

    @asynccontextmanager
    async def stage(self, name: str) -> AsyncIterator[None]:
        """Time a stage; a downstream failure ends the request as UNAVAILABLE naming the stage."""
        started = time.perf_counter()
        try:
            with telemetry.span(name):
                yield
        except (errors.Unavailable, errors.DeadlineExceeded) as exc:
            raise type(exc)(f"{name} stage failed: {exc.message}") from None
        except errors.LoragError:
            raise
        except Exception as exc:  # noqa: BLE001 - a service behind the stage failed
            log.error("%s stage failed", name, exc_info=exc)
            raise errors.Unavailable(f"{name} stage failed: its service did not answer") from None
        finally:
            elapsed = time.perf_counter() - started
            self.items.append((name, elapsed * 1000))
            metrics.RAG_STAGE_LATENCY.labels(name).observe(elapsed)


# -- the pipeline --------------------------------------------------------------------------------
class RagCore:
    def __init__(self, settings: RagSettings, downstream: Downstream, store: AnswerStore) -> None:
        self.settings = settings
        self.downstream = downstream
        self.store = store
        self._gen_info: dict[str, GenerationInfo] = {}

    # ---- validation -------------------------------------------------------------------------
    def validate(self, inp: AskInput) -> None:
        s = self.settings
        if not inp.question or not inp.question.strip():
            raise InvalidArgument("must not be empty", field="question")
        if len(inp.question) > s.max_question_chars:
            raise InvalidArgument(
                f"at most {s.max_question_chars} characters (got {len(inp.question)})", field="question"
            )
        if len(inp.history) > s.max_history_turns:
            raise InvalidArgument(f"at most {s.max_history_turns} turns", field="history")
        for i, (q, a) in enumerate(inp.history):
            if len(q) > 4096 or len(a) > 16384:
                raise InvalidArgument(
                    "question ≤ 4,096 and answer ≤ 16,384 characters", field=f"history[{i}]"
                )
        _range(inp.top_k, 0, 200, "retrieval.top_k")
        _range(inp.rerank_top_n, 0, 200, "retrieval.rerank_top_n")
        if inp.top_k and inp.rerank_top_n > inp.top_k:
            raise InvalidArgument(
                f"must not exceed top_k ({inp.top_k}) (got {inp.rerank_top_n})",
                field="retrieval.rerank_top_n",
            )
        if inp.min_relevance is not None:
            _range(inp.min_relevance, 0.0, 1.0, "retrieval.min_relevance")
        _range(inp.multi_query, 0, MAX_MULTI_QUERY, "multi_query")
        tokens = self.downstream.count_tokens(inp.question)
        if tokens > s.max_question_tokens:
            raise InvalidArgument(
                f"question has {tokens} tokens; the limit is {s.max_question_tokens} "
                "(LORAG_RAG_MAX_QUESTION_TOKENS)",
                field="question",
            )

    async def generation_info(self, model: str) -> GenerationInfo:
        if model not in self._gen_info:
            self._gen_info[model] = await self.downstream.generation_info(model)
        return self._gen_info[model]

    # ---- Ask ----------------------------------------------------------------------------------
    async def ask(self, tenant_id: str, inp: AskInput) -> AskResult:
        result = None
        async for kind, value in self.ask_stream(tenant_id, inp):
            if kind == "result":
                result = value
        assert result is not None
        return result

    async def ask_stream(self, tenant_id: str, inp: AskInput) -> AsyncIterator[tuple[str, Any]]:
        """Events ``("delta", text)`` as the answer is generated, then one ``("result", AskResult)``."""
        self.validate(inp)
        tenant = self.settings.for_tenant(tenant_id)
        template = templates.lookup(
            inp.template or tenant.template or self.settings.template, tenant.templates
        )
        timings = Timings()
        result = AskResult(trace_id=inp.trace_id)
        async with timings.stage("route"):
            routing = inp.routing or tenant.routing or self.settings.routing
            retrieve = routing == "always" or (
                routing == "auto" and needs_retrieval(inp.question, inp.history)
            )
            info = await self.generation_info(inp.model)
            adapter_version = ""
            if inp.adapter_ref:  # unknown or foreign adapters fail before any retrieval work
                adapter_version = await self.downstream.resolve_adapter(
                    tenant_id, inp.adapter_ref, request_id=inp.request_id
                )
        sampling = self._sampling(inp.sampling, info)

        passages: list[Passage] = []
        if retrieve:
            result.retrieval_performed = True
            queries = await self._queries(tenant_id, inp, timings, result)
            result.search_queries = queries
            candidates = await self._search(tenant_id, inp, queries, timings, result)
            passages, rejected = await self._rerank(tenant_id, inp, queries[0], candidates, timings, result)
            if rejected:
                tenant_label = metrics.tenant_label(tenant_id)
                reason = "no_passages" if not candidates else "below_threshold"
                metrics.RAG_REJECTIONS.labels(tenant_label, reason).inc()
                metrics.RAG_ANSWERS.labels(tenant_label, "rejected").inc()
                result.rejected = True
                result.answer = REFUSAL
                result.timings = timings.items
                result.contexts = passages if inp.return_contexts else []
                await self._save(tenant_id, inp, result, template.name, passages)
                yield "delta", REFUSAL
                yield "result", result
                return

        async with timings.stage("assemble"):
            history = self._history(inp.history, info)
            system, user = template.render(context="", question=inp.question)
            overhead = (
                self.downstream.count_tokens(system)
                + self.downstream.count_tokens(user)
                + sum(self.downstream.count_tokens(q) + self.downstream.count_tokens(a) for q, a in history)
                + CHAT_OVERHEAD_TOKENS * (2 + 2 * len(history))
            )
            context_budget = self._prompt_limit(info, sampling) - overhead
            if self.settings.context_token_budget:
                context_budget = min(context_budget, self.settings.context_token_budget)
            if passages and context_budget < MIN_CONTEXT_TOKENS:
                raise InvalidArgument(
                    "the question and history leave no room for passages in the model's prompt; shorten them",
                    field="question",
                )
            query = result.search_queries[0] if result.search_queries else inp.question
            used = self.assemble(passages, query, context_budget)
            context = "\n\n".join(
                f"[{p.index}] {p.title + ': ' if p.title else ''}{p.prompt_text}" for p in used
            )
            system, user = template.render(context=context, question=inp.question)
            messages = [gen_pb.ChatMessage(role=gen_pb.CHAT_ROLE_SYSTEM, content=system)]
            for q, a in history:
                messages.append(gen_pb.ChatMessage(role=gen_pb.CHAT_ROLE_USER, content=q))
                messages.append(gen_pb.ChatMessage(role=gen_pb.CHAT_ROLE_ASSISTANT, content=a))
            messages.append(gen_pb.ChatMessage(role=gen_pb.CHAT_ROLE_USER, content=user))

        request = gen_pb.GenerateStreamRequest(
            chat=gen_pb.Chat(messages=messages),
            adapter=_adapter(inp.adapter_ref),
            model=inp.model,
            sampling=sampling,
        )
        final = templates.FinalAnswerFilter(template.final_marker) if template.final_marker else None
        parts: list[str] = []
        leading = True
        async with timings.stage("generate"):
            stream = self.downstream.generate_stream(
                tenant_id, request, request_id=inp.request_id, adapter_version=adapter_version
            )
            async for msg in stream:
                text = msg.text
                if final is not None:
                    text = final.feed(text)
                elif leading:
                    text = text.lstrip()
                    leading = not text
                if text:
                    parts.append(text)
                    yield "delta", text
                if msg.HasField("summary"):
                    result.prompt_tokens += msg.summary.usage.prompt_tokens
                    result.completion_tokens += msg.summary.usage.completion_tokens
                    result.adapter_version_id = msg.summary.adapter_version_id
            if final is not None:
                rest = final.finish()
                if rest:
                    parts.append(rest)
                    yield "delta", rest
        result.answer = "".join(parts)
        result.citations = attribute(result.answer, used) if used else []
        result.contexts = used if inp.return_contexts else []
        result.timings = timings.items
        await self._save(tenant_id, inp, result, template.name, used)
        outcome = "answered" if result.retrieval_performed else "no_retrieval"
        metrics.RAG_ANSWERS.labels(metrics.tenant_label(tenant_id), outcome).inc()
        yield "result", result

    # ---- stages ---------------------------------------------------------------------------------
    def _sampling(self, s: Sampling | None, info: GenerationInfo) -> gen_pb.SamplingParams:
        s = s or Sampling()
        out = gen_pb.SamplingParams(
            temperature=0.0 if s.temperature is None else s.temperature,
            top_k=s.top_k,
            max_new_tokens=min(s.max_new_tokens or self.settings.answer_tokens, info.max_new_tokens),
            stop=s.stop,
            # small models loop on greedy decoding without a mild penalty
            repetition_penalty=self.settings.repetition_penalty
            if s.repetition_penalty is None
            else s.repetition_penalty,
        )
        if s.top_p is not None:
            out.top_p = s.top_p
        if s.seed is not None:
            out.seed = s.seed
        return out

    @staticmethod
    def _prompt_limit(info: GenerationInfo, sampling: gen_pb.SamplingParams) -> int:
        limit = info.max_prompt_tokens
        if info.max_context:
            limit = min(limit, info.max_context - sampling.max_new_tokens)
        return limit

    def _history(self, history: list[tuple[str, str]], info: GenerationInfo) -> list[tuple[str, str]]:
        """The most recent turns within a quarter of the prompt limit."""
        budget = info.max_prompt_tokens // 4
        kept: list[tuple[str, str]] = []
        for q, a in reversed(history):
            cost = (
                self.downstream.count_tokens(q) + self.downstream.count_tokens(a) + 2 * CHAT_OVERHEAD_TOKENS
            )
            if cost > budget:
                break
            budget -= cost
            kept.append((q, a))
        return list(reversed(kept))

    async def _complete(
        self, tenant_id: str, inp: AskInput, prompt: str, result: AskResult, *, tokens: int
    ) -> str:
        """A short greedy completion of the base model (query rewriting and expansion)."""
        request = gen_pb.GenerateStreamRequest(
            chat=gen_pb.Chat(messages=[gen_pb.ChatMessage(role=gen_pb.CHAT_ROLE_USER, content=prompt)]),
            model=inp.model,
            sampling=gen_pb.SamplingParams(temperature=0.0, max_new_tokens=tokens),
        )
        parts = []
        async for msg in self.downstream.generate_stream(tenant_id, request, request_id=inp.request_id):
            parts.append(msg.text)
            if msg.HasField("summary"):
                result.prompt_tokens += msg.summary.usage.prompt_tokens
                result.completion_tokens += msg.summary.usage.completion_tokens
        return "".join(parts)

    async def _queries(self, tenant_id: str, inp: AskInput, timings: Timings, result: AskResult) -> list[str]:
        """The search queries: the question (rewritten to stand alone when asked) and variants."""
        query = inp.question.strip()
        if inp.query_rewrite and inp.history:
            async with timings.stage("rewrite"):
                convo = "\n".join(f"User: {q}\nAssistant: {a}" for q, a in inp.history[-4:])
                text = await self._complete(
                    tenant_id,
                    inp,
                    f"Conversation:\n{convo}\n\nLast question: {query}\n\nRewrite the last question so "
                    "that it can be understood without the conversation. Reply with the rewritten "
                    "question only.",
                    result,
                    tokens=48,
                )
                rewritten = _first_line(text)
                if rewritten and len(rewritten) <= 3 * len(query) + 80:
                    query = rewritten
        queries = [query]
        if inp.multi_query:
            async with timings.stage("expand"):
                text = await self._complete(
                    tenant_id,
                    inp,
                    f"Write {inp.multi_query} different search queries that would find passages "
                    f"answering this question. One query per line, no numbering.\nQuestion: {query}",
                    result,
                    tokens=24 * inp.multi_query,
                )
                seen = {query.lower()}
                for line in text.splitlines():
                    variant = _clean_query(line)
                    if variant and variant.lower() not in seen and len(queries) <= inp.multi_query:
                        seen.add(variant.lower())
                        queries.append(variant)
        return queries

    async def _search(
        self, tenant_id: str, inp: AskInput, queries: list[str], timings: Timings, result: AskResult
    ) -> list[Passage]:
        tenant = self.settings.for_tenant(tenant_id)
        top_k = inp.top_k or tenant.top_k or self.settings.top_k
        vectors: list[list[float]] = [[] for _ in queries]
        if inp.mode != ret_pb.SEARCH_MODE_SPARSE:
            async with timings.stage("embed"):
                out = await self.downstream.embed(queries)
                vectors = out["vectors"]
                result.prompt_tokens += sum(out.get("token_counts") or [])
        async with timings.stage("search"):
            requests = [
                ret_pb.SearchRequest(
                    query_text=q,
                    query_vector=v,
                    mode=inp.mode or ret_pb.SEARCH_MODE_HYBRID,
                    fusion=inp.fusion,
                    top_k=top_k,
                    filter=inp.filter,
                )
                for q, v in zip(queries, vectors, strict=True)
            ]
            responses = await asyncio.gather(*(self.downstream.search(tenant_id, r) for r in requests))
        lists = [[_passage(h) for h in r.hits] for r in responses]
        return fuse(lists)[:top_k]

    async def _rerank(
        self,
        tenant_id: str,
        inp: AskInput,
        query: str,
        candidates: list[Passage],
        timings: Timings,
        result: AskResult,
    ) -> tuple[list[Passage], bool]:
        """Keep the best ``rerank_top_n`` candidates; reject when none is relevant enough."""
        tenant = self.settings.for_tenant(tenant_id)
        top_n = inp.rerank_top_n or tenant.rerank_top_n or self.settings.rerank_top_n
        if not candidates:
            return [], True
        use_reranker = inp.rerank if inp.rerank is not None else self.downstream.has_reranker()
        if use_reranker and not self.downstream.has_reranker():
            raise FailedPrecondition("reranking was requested but no reranker is deployed")
        if not use_reranker:
            if inp.reranker_ref:
                raise InvalidArgument("a reranker adapter needs reranking on", field="reranker_adapter")
            return candidates[:top_n], False
        async with timings.stage("rerank"):
            response = await self.downstream.rerank(
                tenant_id,
                rr_pb.RerankRequest(
                    query=query,
                    passages=[rr_pb.Passage(id=p.chunk_id, text=p.text) for p in candidates],
                    top_n=min(top_n, len(candidates)),
                    adapter=_adapter(inp.reranker_ref),
                ),
                request_id=inp.request_id,  # a bare adapter name splits canary traffic by it
            )
        result.prompt_tokens += response.usage.prompt_tokens
        result.reranker_adapter_version_id = response.adapter_version_id
        threshold = inp.min_relevance
        if threshold is None and response.scoring_method == rr_pb.SCORING_METHOD_BI_ENCODER_COSINE:
            threshold = self.settings.min_relevance_cosine
        if threshold is None:
            threshold = (
                tenant.min_relevance if tenant.min_relevance is not None else self.settings.min_relevance
            )
        kept = []
        for r in response.results:
            p = candidates[r.index]
            p.score = r.score
            if r.score >= threshold:
                kept.append(p)
        return kept or [candidates[r.index] for r in response.results], not kept

    def assemble(self, passages: list[Passage], query: str, budget: int) -> list[Passage]:
        """Deduplicate, order by score, fit within ``budget`` tokens (compressing what does not fit);
        label the passages 1..n in that order."""
        query_words = content_words(query)
        out: list[Passage] = []
        left = budget
        for p in dedupe(passages):
            label = len(out) + 1
            overhead = self.downstream.count_tokens(f"[{label}] {p.title}: ") + 2
            text = compact(p.text)
            cost = self.downstream.count_tokens(text) + overhead
            if cost > left:
                text = compress(p.text, query_words, left - overhead, self.downstream.count_tokens)
                if not text:
                    continue
                cost = self.downstream.count_tokens(text) + overhead
            p.index, p.prompt_text = label, text
            out.append(p)
            left -= cost
            if left <= MIN_CONTEXT_TOKENS // 4:
                break
        return out

    async def _save(
        self, tenant_id: str, inp: AskInput, result: AskResult, template: str, passages: list[Passage]
    ) -> None:
        cited = {p.chunk_id for p in result.citations}
        contexts = [
            {
                "index": p.index,
                "chunk_id": p.chunk_id,
                "doc_id": p.doc_id,
                "score": p.score,
                "text": p.text,
                "cited": p.chunk_id in cited,
            }
            for p in passages
        ]
        result.answer_id = await asyncio.to_thread(
            self.store.save_answer,
            tenant_id,
            question=inp.question,
            answer=result.answer,
            rejected=result.rejected,
            contexts=contexts,
            adapter_version_id=result.adapter_version_id,
            reranker_adapter_version_id=result.reranker_adapter_version_id,
            template=template,
            trace_id=result.trace_id,
        )

    # ---- Ingest -------------------------------------------------------------------------------
    def check_document(self, doc: DocInput) -> str:
        """Why ``doc`` cannot be ingested, or ''."""
        if not 1 <= len(doc.doc_id) <= 256:
            return "doc_id must be 1-256 characters"
        if len(doc.title) > 1024:
            return "title must be at most 1,024 characters"
        if doc.text is None and doc.data is None:
            return "the document has no content (set text or data)"
        size = len(doc.data) if doc.data is not None else len((doc.text or "").encode())
        if size > MAX_DOC_BYTES:
            return f"the content is {size} bytes; the limit is {MAX_DOC_BYTES}"
        if doc.metadata is not None and doc.metadata.ByteSize() > MAX_METADATA_BYTES:
            return f"metadata is over {MAX_METADATA_BYTES} bytes"
        if doc.metadata is not None:
            try:
                json_value(doc.metadata, field="metadata")
            except InvalidArgument as exc:
                return str(exc)
        return ""

    async def ingest(self, tenant_id: str, docs: list[DocInput], options: IngestOptions) -> list[DocResult]:
        """Ingest a batch; one result per document in order. Unchanged documents are SKIPPED."""
        ids = [d.doc_id for d in docs]
        if len(set(ids)) != len(ids):
            raise InvalidArgument("doc ids must be distinct within one request", field="documents")
        results: dict[int, DocResult] = {}
        todo: list[tuple[int, DocInput, str]] = []
        for i, doc in enumerate(docs):
            problem = self.check_document(doc)
            if problem:
                results[i] = DocResult(doc.doc_id, "failed", error=problem)
                continue
            digest = document_hash(doc, options)
            if not options.force:
                existing = await self._existing(tenant_id, doc.doc_id, options.embedding_model)
                if existing is not None and existing.content_sha256 == digest:
                    results[i] = DocResult(doc.doc_id, "skipped", chunk_count=existing.chunk_count)
                    continue
            todo.append((i, doc, digest))
        while todo:
            try:
                await self._upsert(tenant_id, todo, options, results)
                break
            except InvalidArgument as exc:
                # the batch is checked before anything is written: fail that document, retry the rest
                match = _DOC_FIELD.match(str(exc))
                if match is None or int(match.group(1)) >= len(todo):
                    raise
                i, doc, _ = todo.pop(int(match.group(1)))
                # "documents[2].metadata: key …" -> "metadata: key …" (the field stays named)
                results[i] = DocResult(doc.doc_id, "failed", error=str(exc)[match.end() :].lstrip(".: "))
        return [results[i] for i in range(len(docs))]

    async def _upsert(
        self,
        tenant_id: str,
        todo: list[tuple[int, DocInput, str]],
        options: IngestOptions,
        results: dict[int, DocResult],
    ) -> None:
        request = ret_pb.UpsertRequest(
            documents=[_document_input(doc, digest) for _, doc, digest in todo],
            embedding_model=options.embedding_model,
        )
        if options.chunk_tokens or options.overlap_tokens is not None:
            request.chunking.chunk_tokens = options.chunk_tokens
            if options.overlap_tokens is not None:
                request.chunking.overlap_tokens = options.overlap_tokens
        position = {doc.doc_id: i for i, doc, _ in todo}
        async for msg in self.downstream.upsert_stream(tenant_id, request):
            r = msg.result
            ok = r.status == ret_pb.DOCUMENT_STATUS_INDEXED
            results[position[r.doc_id]] = DocResult(
                r.doc_id, "indexed" if ok else "failed", r.chunk_count if ok else 0, r.error
            )

    async def _existing(self, tenant_id: str, doc_id: str, model: str):
        try:
            response = await self.downstream.get_document(
                tenant_id, ret_pb.GetDocumentRequest(doc_id=doc_id, embedding_model=model)
            )
        except NotFound:
            return None
        return response.document

    async def delete(self, tenant_id: str, doc_ids: list[str]) -> tuple[int, int]:
        if not 1 <= len(doc_ids) <= 1000:
            raise InvalidArgument(f"give 1-1,000 doc ids (got {len(doc_ids)})", field="doc_ids")
        response = await self.downstream.delete_documents(
            tenant_id, ret_pb.DeleteDocumentsRequest(doc_ids=doc_ids)
        )
        return response.deleted_document_count, response.deleted_chunk_count

    # ---- Feedback -----------------------------------------------------------------------------
    async def feedback(self, tenant_id: str, fb: FeedbackInput, *, created_by: str = "") -> str:
        return await asyncio.to_thread(self.store.add_feedback, tenant_id, fb, created_by=created_by)


def _adapter(ref: str):
    from lorag.common.v1 import common_pb2

    return common_pb2.AdapterRef(ref=ref)


def _passage(hit: ret_pb.SearchHit) -> Passage:
    has_span = hit.HasField("span") and hit.span.end > hit.span.start
    return Passage(
        chunk_id=hit.chunk.chunk_id,
        doc_id=hit.chunk.doc_id,
        text=hit.text,
        score=hit.score,
        title=hit.title,
        char_start=hit.span.start if has_span else -1,
        char_end=hit.span.end if has_span else -1,
    )


def _document_input(doc: DocInput, digest: str) -> ret_pb.DocumentInput:
    out = ret_pb.DocumentInput(
        doc_id=doc.doc_id, title=doc.title, mime_type=doc.mime_type, content_sha256=digest
    )
    if doc.data is not None:
        out.data = doc.data
    else:
        out.text = doc.text or ""
    if doc.metadata is not None:
        out.metadata.CopyFrom(doc.metadata)
    return out


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = _clean_query(line)
        if line:
            return line
    return ""


def _clean_query(line: str) -> str:
    line = re.sub(r"^\s*(?:[-*•]|\d+[.)]|(?:rewritten )?(?:question|query)\s*:)\s*", "", line, flags=re.I)
    return line.strip().strip("\"'").strip()


def tally(results: Iterable[DocResult]) -> dict[str, int]:
    totals = {"received": 0, "indexed": 0, "failed": 0, "skipped": 0, "chunks": 0}
    for r in results:
        totals["received"] += 1
        totals[r.status] += 1
        if r.status == "indexed":
            totals["chunks"] += r.chunk_count
    return totals

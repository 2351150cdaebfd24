"""RAG pipeline logic on a scripted downstream: stages, budgets, rejection, citations, failures."""

from __future__ import annotations

import pytest

from lorag.common import errors
from lorag.common.db import Database
from lorag.common.tenancy import TenantStore
from lorag.generation.v1 import generation_pb2 as gen_pb
from lorag.rag import templates
from lorag.rag.core import (
    REFUSAL,
    AskInput,
    DocInput,
    IngestOptions,
    Passage,
    RagCore,
    attribute,
    compress,
    dedupe,
    fuse,
    needs_retrieval,
)
from lorag.rag.downstream import GenerationInfo
from lorag.rag.settings import DEFAULT_MIN_RELEVANCE, RagSettings, TenantRagConfig
from lorag.rag.store import AnswerStore, FeedbackInput
from lorag.reranking.v1 import reranking_pb2 as rr_pb
from lorag.retrieval.v1 import retrieval_pb2 as ret_pb

CHUNKS = {
    "c-paris": ("paris", "Paris is the capital of France. The Eiffel Tower stands in Paris."),
    "c-berlin": ("berlin", "Berlin is the capital of Germany. The Brandenburg Gate is in Berlin."),
    "c-rome": ("rome", "Rome is the capital of Italy. The Colosseum is in Rome."),
}


class Scripted:
    """A downstream whose services answer from a fixed table and record what they were asked."""

    def __init__(self, *, answer="Paris is the capital [1].", scores=None, fail=None, max_prompt=1536):
        self.answer = answer
        self.scores = scores or {"c-paris": 0.9, "c-berlin": 0.2, "c-rome": 0.1}
        self.fail = fail  # stage name whose service raises
        self.max_prompt = max_prompt
        self.searches: list[ret_pb.SearchRequest] = []
        self.prompts: list[gen_pb.GenerateStreamRequest] = []
        self.reranks: list[rr_pb.RerankRequest] = []
        self.completions: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def has_reranker(self) -> bool:
        return True

    async def generation_info(self, model=""):
        return GenerationInfo("m", max_context=4096, max_prompt_tokens=self.max_prompt, max_new_tokens=512)

    async def embed(self, texts, *, model=""):
        if self.fail == "embed":
            raise RuntimeError("connection reset")
        return {"vectors": [[1.0, 0.0]] * len(texts), "token_counts": [3] * len(texts)}

    async def search(self, tenant_id, request):
        if self.fail == "search":
            raise errors.Unavailable("the retrieval service is unavailable")
        self.searches.append(request)
        hits = [
            ret_pb.SearchHit(chunk={"doc_id": doc, "chunk_id": cid}, text=text, score=1.0 / (i + 1))
            for i, (cid, (doc, text)) in enumerate(CHUNKS.items())
        ]
        return ret_pb.SearchResponse(hits=hits[: request.top_k])

    async def rerank(self, tenant_id, request, *, request_id=""):
        self.reranks.append(request)
        scored = sorted(((i, self.scores[p.id]) for i, p in enumerate(request.passages)), key=lambda t: -t[1])
        return rr_pb.RerankResponse(
            results=[rr_pb.RerankResult(index=i, id=request.passages[i].id, score=s) for i, s in scored][
                : request.top_n
            ],
            scoring_method=rr_pb.SCORING_METHOD_CROSS_ENCODER,
            usage={"prompt_tokens": 10},
        )

    async def resolve_adapter(self, tenant_id, ref, *, request_id):
        if ref != "bot":
            raise errors.NotFound(f"adapter {ref!r} not found")
        return "ver-1"

    async def generate_stream(self, tenant_id, request, *, request_id, adapter_version=""):
        user = request.chat.messages[-1].content
        if "search queries" in user:  # multi-query expansion
            text = "capital city of France\n2. French capital"
        elif "Rewrite the last question" in user:
            text = "What is the capital of France?"
        else:
            self.prompts.append(request)
            text = self.answer
        words = text.split(" ")
        for i, w in enumerate(words):
            if self.fail == "generate" and i == 2:
                raise errors.Unavailable("replica died")
            yield gen_pb.GenerateStreamResponse(text=w if i == 0 else " " + w)
        yield gen_pb.GenerateStreamResponse(
            summary=gen_pb.GenerationSummary(usage={"prompt_tokens": 50, "completion_tokens": len(words)})
        )

    async def get_document(self, tenant_id, request):
        raise errors.NotFound("no such document")

    async def upsert_stream(self, tenant_id, request):
        for d in request.documents:
            yield ret_pb.UpsertResponse(
                result=ret_pb.DocumentResult(
                    doc_id=d.doc_id, status=ret_pb.DOCUMENT_STATUS_INDEXED, chunk_count=2
                )
            )


@pytest.fixture
def store(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    TenantStore(db).bootstrap()
    yield AnswerStore(db)
    db.dispose()


def core(store, downstream, **settings) -> RagCore:
    """The orchestrator over scripted services; their scores are spread over 0-1, so the service
    threshold is 0.3 here unless a test sets one (the shipped default suits the built reranker)."""
    settings.setdefault("min_relevance", 0.3)
    return RagCore(RagSettings(**settings), downstream, store)


async def events(c: RagCore, inp: AskInput, tenant="default"):
    return [e async for e in c.ask_stream(tenant, inp)]


async def test_grounded_answer_cites_the_marked_passage_and_times_every_stage(store):
    ds = Scripted()
    out = await events(core(store, ds), AskInput(question="What is the capital of France?"))
    deltas = [v for k, v in out if k == "delta"]
    kind, result = out[-1]
    assert kind == "result" and "".join(deltas) == result.answer == "Paris is the capital [1]."
    assert [c.chunk_id for c in result.citations] == ["c-paris"]
    assert [name for name, _ in result.timings] == [
        "route",
        "embed",
        "search",
        "rerank",
        "assemble",
        "generate",
    ]
    assert result.prompt_tokens == 3 + 10 + 50 and result.completion_tokens == 5
    assert not result.rejected and result.answer_id.startswith("ans_")
    prompt = ds.prompts[0].chat.messages[-1].content
    assert "[1] Paris is the capital" in prompt and "Berlin" not in prompt  # below the threshold


async def test_no_relevant_passage_rejects_without_generating(store):
    ds = Scripted(scores={"c-paris": 0.1, "c-berlin": 0.05, "c-rome": 0.2})
    result = await core(store, ds).ask("default", AskInput(question="How do I bake bread?"))
    assert result.rejected and result.answer == REFUSAL and not result.citations
    assert ds.prompts == [] and "generate" not in [n for n, _ in result.timings]


async def test_threshold_comes_from_request_then_tenant_then_default(store):
    ds = Scripted(scores={"c-paris": 0.5, "c-berlin": 0.05, "c-rome": 0.05})
    q = "capital of France?"
    assert not (await core(store, ds).ask("default", AskInput(question=q))).rejected  # service 0.3
    shipped = RagCore(RagSettings(), ds, store)  # DEFAULT_MIN_RELEVANCE, on the reranker's scale
    assert shipped.settings.min_relevance == DEFAULT_MIN_RELEVANCE
    assert (await shipped.ask("default", AskInput(question=q))).rejected
    strict = core(store, ds, tenants={"default": TenantRagConfig(min_relevance=0.6)})
    assert (await strict.ask("default", AskInput(question=q))).rejected
    assert not (await strict.ask("default", AskInput(question=q, min_relevance=0.4))).rejected


async def test_multi_query_searches_every_variant_and_fuses(store):
    ds = Scripted()
    result = await core(store, ds).ask("default", AskInput(question="capital of France?", multi_query=2))
    assert result.search_queries == ["capital of France?", "capital city of France", "French capital"]
    assert [r.query_text for r in ds.searches] == result.search_queries
    assert "expand" in [n for n, _ in result.timings]


async def test_rewrite_uses_history_to_make_a_standalone_query(store):
    ds = Scripted()
    inp = AskInput(
        question="and its capital?", history=[("Tell me about France", "France is...")], query_rewrite=True
    )
    result = await core(store, ds).ask("default", inp)
    assert result.search_queries == ["What is the capital of France?"]
    assert ds.reranks[0].query == "What is the capital of France?"


async def test_routing_never_and_auto_skip_retrieval(store):
    ds = Scripted(answer="Hello! How can I help?")
    c = core(store, ds)
    never = await c.ask("default", AskInput(question="What is the capital of France?", routing="never"))
    auto = await c.ask("default", AskInput(question="hello there!", routing="auto"))
    assert not never.retrieval_performed and not auto.retrieval_performed and ds.searches == []
    assert not never.citations and not never.rejected
    assert (await c.ask("default", AskInput(question="What is BM25?", routing="auto"))).retrieval_performed


def test_router_rules():
    assert not needs_retrieval("Thanks!", [])
    assert not needs_retrieval("What did you just say?", [("q", "a")])
    assert needs_retrieval("What did you just say?", [])  # nothing to refer to
    assert needs_retrieval("How does the Calvin cycle fix carbon?", [])


async def test_chain_of_thought_returns_only_the_final_answer(store):
    ds = Scripted(answer="Passage [1] says Paris. Final answer: Paris [1].")
    out = await events(core(store, ds), AskInput(question="capital of France?", template="cot"))
    deltas = "".join(v for k, v in out if k == "delta")
    assert deltas == out[-1][1].answer == "Paris [1]."


def test_final_answer_filter_handles_split_markers_and_missing_markers():
    f = templates.FinalAnswerFilter("Final answer:")
    pieces = [f.feed(t) for t in ["Reasoning... Fin", "al ans", "wer:", "  Paris", " [1]."]]
    assert "".join(pieces) == "Paris [1]." and f.finish() == ""
    g = templates.FinalAnswerFilter("Final answer:")
    assert g.feed("Just Paris.") == "" and g.finish() == "Just Paris."


async def test_unknown_template_and_bad_options_are_invalid(store):
    c = core(store, Scripted())
    with pytest.raises(errors.NotFound, match="unknown template 'nope'"):
        await c.ask("default", AskInput(question="q?", template="nope"))
    for inp, field in [
        (AskInput(question="  "), "question"),
        (AskInput(question="x " * 600), "question"),
        (AskInput(question="q", top_k=500), "retrieval.top_k"),
        (AskInput(question="q", top_k=3, rerank_top_n=5), "retrieval.rerank_top_n"),
        (AskInput(question="q", multi_query=6), "multi_query"),
        (AskInput(question="q", min_relevance=1.5), "retrieval.min_relevance"),
    ]:
        with pytest.raises(errors.InvalidArgument) as info:
            await c.ask("default", inp)
        assert info.value.field == field


def test_tenant_templates_need_both_placeholders():
    t = templates.lookup("faq", {"faq": "Docs:\n{context}\nQ: {question}"})
    assert t.render(context="[1] x", question="{weird}") == (t.system, "Docs:\n[1] x\nQ: {weird}")
    with pytest.raises(errors.InvalidArgument, match="must contain \\{context\\}"):
        templates.lookup("bad", {"bad": "Q: {question}"})


@pytest.mark.parametrize("stage", ["embed", "search", "generate"])
async def test_a_failing_service_ends_the_stream_unavailable_naming_the_stage(store, stage):
    ds = Scripted(fail=stage)
    seen = []
    with pytest.raises(errors.Unavailable, match=f"^{stage} stage failed"):
        async for kind, _value in core(store, ds).ask_stream(
            "default", AskInput(question="capital of France?")
        ):
            seen.append(kind)
    assert "result" not in seen  # never a partial answer presented as complete


async def test_context_is_trimmed_to_the_budget_and_compressed():
    class Tiny(Scripted):
        pass

    long = Passage(
        "c1", "d1", "Unrelated filler sentence here. " * 40 + "Paris is the capital of France.", 0.9
    )
    short = Passage("c2", "d2", "Berlin is in Germany.", 0.8)
    c = RagCore(RagSettings(), Tiny(), store=None)
    used = c.assemble([long, short], "capital of France", budget=30)
    assert [p.chunk_id for p in used][0] == "c1"
    assert used[0].prompt_text == "Paris is the capital of France."  # only the sentence that matters
    assert sum(len(p.prompt_text.split()) + 4 for p in used) <= 30


def test_fuse_dedupe_compress_attribute():
    a = [Passage("x", "d", "alpha", 1), Passage("y", "d", "beta", 0.5)]
    b = [Passage("y", "d", "beta", 1), Passage("z", "d", "gamma", 0.5)]
    assert [p.chunk_id for p in fuse([a, b])] == ["y", "x", "z"]
    dup = [
        Passage("1", "d", "the quick brown fox jumps", 0.9),
        Passage("2", "d", "quick brown fox jumps high", 0.5),
    ]
    assert [p.chunk_id for p in dedupe(dup)] == ["1"]
    assert compress("No. Nothing here.", {"paris"}, 50, lambda t: len(t.split())) == ""
    p1 = Passage("1", "d", "Paris is the capital of France.", 0.9, index=1)
    p2 = Passage("2", "d", "Berlin is the capital of Germany.", 0.8, index=2)
    assert attribute("See [2] and [9].", [p1, p2]) == [p2]
    assert attribute("The capital of France is Paris.", [p1, p2]) == [p1]
    assert attribute("I do not know.", [p1, p2]) == []


async def test_feedback_is_stored_and_checked_against_the_answer(store):
    c = core(store, Scripted())
    result = await c.ask("default", AskInput(question="capital of France?"))
    fid = await c.feedback(
        "default",
        FeedbackInput(
            answer_id=result.answer_id,
            rating="down",
            corrected_answer="Paris.",
            relevant_chunk_ids=["c-paris"],
        ),
    )
    (row,) = store.feedback_for("default", result.answer_id)
    assert (
        row.feedback_id == fid and row.corrected_answer == "Paris." and row.relevant_chunk_ids == ["c-paris"]
    )
    with pytest.raises(errors.NotFound):
        await c.feedback("other", FeedbackInput(answer_id=result.answer_id, rating="up"))
    with pytest.raises(errors.InvalidArgument, match="rating"):
        await c.feedback("default", FeedbackInput(answer_id=result.answer_id))
    with pytest.raises(errors.InvalidArgument, match="not passages of this answer"):
        await c.feedback(
            "default", FeedbackInput(answer_id=result.answer_id, rating="up", relevant_chunk_ids=["zz"])
        )
    with pytest.raises(errors.InvalidArgument, match="both lists"):
        await c.feedback(
            "default",
            FeedbackInput(
                answer_id=result.answer_id,
                rating="up",
                relevant_chunk_ids=["c-paris"],
                irrelevant_chunk_ids=["c-paris"],
            ),
        )
    assert len(store.feedback_for("default", result.answer_id)) == 1  # nothing else was stored


async def test_ingest_validates_each_document_and_keeps_order(store):
    c = core(store, Scripted())
    docs = [DocInput("a", text="hello"), DocInput("", text="x"), DocInput("c")]
    results = await c.ingest("default", docs, IngestOptions())
    assert [(r.doc_id, r.status) for r in results] == [("a", "indexed"), ("", "failed"), ("c", "failed")]
    assert "doc_id" in results[1].error and "no content" in results[2].error
    with pytest.raises(errors.InvalidArgument, match="distinct"):
        await c.ingest("default", [DocInput("a", text="1"), DocInput("a", text="2")], IngestOptions())

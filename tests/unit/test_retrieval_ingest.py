"""Ingest pipeline: the whole batch is checked before anything is written; one bad document
never loses or half-writes the others. Runs on an in-memory stand-in for Milvus."""

import re

import numpy as np
import pytest

from lorag.common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from lorag.retrieval.core import CollectionInfo, RetrievalCore, WriteOutcome, chunk_id
from lorag.retrieval.ingest import ChunkingSpec, ChunkSpec, DocumentSpec, IngestPipeline
from lorag.retrieval.settings import RetrievalSettings
from tests.retrieval_helpers import HashEmbedder, minimal_pdf, unit

DIM = 8


class MemoryStore:
    """Just enough of MilvusStore for the pipeline: records writes, can fail on a doc id."""

    def __init__(self, fail_doc: str | None = None, down_after: int | None = None):
        self.docs: dict[tuple[str, str], list] = {}
        self.fail_doc = fail_doc
        self.down_after = down_after  # documents written before the store goes down
        self.writes = 0

    def find_collection(self, model):
        return None

    def ensure_collection(self, model, dim):
        return CollectionInfo(f"c_{dim}", model, dim, 1)

    def settle(self, info):
        pass

    def write_documents(self, tenant_id, info, docs):
        out = []
        for d in docs:
            if self.down_after is not None and self.writes >= self.down_after:
                out.append(Unavailable("the vector store failed during upsert"))
                continue
            if d.doc_id == self.fail_doc:
                out.append(ConnectionError("milvus went away"))
                continue
            self.writes += 1
            old = self.docs.get((tenant_id, d.doc_id), [])
            self.docs[(tenant_id, d.doc_id)] = list(d.chunks)
            out.append(
                WriteOutcome([chunk_id(tenant_id, d.doc_id, i) for i in range(len(d.chunks))], len(old))
            )
        return out


def make(store=None, embedder=None, **settings):
    s = RetrievalSettings(model_dimensions={"vec-8": DIM}, default_embedding_model="vec-8", **settings)
    store = store or MemoryStore()
    return IngestPipeline(RetrievalCore(s, store=store, embedder=embedder)), store


def vec(seed=0):
    return unit(np.random.default_rng(seed).normal(size=DIM))


def doc(doc_id="d1", n=2, **kw):
    return DocumentSpec(
        doc_id=doc_id, chunks=[ChunkSpec(f"chunk {i} of {doc_id}", vec(i)) for i in range(n)], **kw
    )


async def collect(pipeline, docs, **kw):
    return [x async for x in pipeline.run("acme", docs, **kw)]


async def test_progress_is_streamed_per_document():
    pipeline, store = make()
    out = await collect(pipeline, [doc("a", 2), doc("b", 3)])
    assert [(o.doc_id, o.ok, o.chunk_count) for o, _ in out] == [("a", True, 2), ("b", True, 3)]
    assert [(p.done, p.failed, p.chunks_written, p.total) for _, p in out] == [(1, 0, 2, 2), (2, 0, 5, 2)]
    assert out[0][0].chunk_ids == tuple(chunk_id("acme", "a", i) for i in range(2))


def _bad(**changes):
    d = doc("ok", 2)
    for k, v in changes.items():
        setattr(d, k, v)
    return d


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        ([], "documents: 1-100 documents per request (got 0)"),
        ([doc(f"d{i}", 1) for i in range(101)], "documents: 1-100 documents per request (got 101)"),
        ([doc("same"), doc("same")], "documents[1].doc_id: duplicate of documents[0].doc_id"),
        ([doc(""), doc("x")], "documents[0].doc_id: is required"),
        ([doc("x" * 257)], "documents[0].doc_id: at most 256 characters"),
        ([doc("bad\nid")], "documents[0].doc_id: control characters"),
        ([doc("a"), _bad(chunks=[ChunkSpec("   ", vec())])], "documents[1].chunks[0].text: is empty"),
        (
            [_bad(chunks=[ChunkSpec("x" * 40000, vec())])],
            "documents[0].chunks[0].text: at most 32768 characters",
        ),
        (
            [_bad(chunks=[ChunkSpec("\u00e9" * 32768, vec())])],
            "documents[0].chunks[0].text: at most 65,535 bytes",
        ),
        (
            [_bad(chunks=[ChunkSpec("a", vec()), ChunkSpec("b", [1.0, 2.0, 3.0])])],
            "chunks[1].dense: has 3 dim",
        ),
        (
            [_bad(chunks=[ChunkSpec("a", [float("nan")] * DIM)])],
            "chunks[0].dense: must contain finite numbers",
        ),
        ([_bad(chunks=[ChunkSpec("a", [0.0] * DIM)])], "chunks[0].dense: must not be the zero vector"),
        ([_bad(chunks=[])], "documents[0].chunks: 1-1000 chunks per document (got 0)"),
        ([_bad(chunks=[ChunkSpec("a", vec())] * 1001)], "1-1000 chunks per document (got 1001)"),
        ([_bad(metadata={"tenant_id": "other"})], "documents[0].metadata: key 'tenant_id' is reserved"),
        ([_bad(metadata={"_system": 1})], "documents[0].metadata: key '_system' must be"),
        ([_bad(metadata={"a b": 1})], "documents[0].metadata: key 'a b' must be"),
        (
            [_bad(metadata={"blob": "x" * 17000})],
            "documents[0].metadata: is 17011 bytes as JSON; the limit is 16384",
        ),
        ([_bad(metadata={"n": float("inf")})], "documents[0].metadata: numbers must be finite"),
        (
            [_bad(chunks=[ChunkSpec("a", vec(), metadata={"tenant_id": "evil"})])],
            "documents[0].chunks[0].metadata: key 'tenant_id' is reserved",
        ),
        ([_bad(chunks=[ChunkSpec("a", vec(), span=(5, 2))])], "chunks[0].span: needs 0 <= start <= end"),
        ([_bad(title="t" * 1025)], "documents[0].title: at most 1024 characters"),
        ([_bad(text="also text")], "documents[0]: exactly one of chunks, text or data is required"),
        ([DocumentSpec("n")], "documents[0]: exactly one of chunks, text or data is required"),
        ([DocumentSpec("t", text="  ")], "documents[0].text: is empty"),
        ([DocumentSpec("t", text="hi", mime_type="image/png")], "documents[0].mime_type: unsupported type"),
        ([DocumentSpec("t", text="%PDF", mime_type="application/pdf")], "PDF content must be sent as data"),
    ],
)
async def test_malformed_batches_are_invalid_argument_and_write_nothing(docs, message):
    pipeline, store = make(embedder=HashEmbedder("vec-8", DIM))
    with pytest.raises(InvalidArgument) as info:
        await collect(pipeline, docs)
    assert message in str(info.value)
    assert store.writes == 0


async def test_oversize_raw_content_is_invalid_argument():
    pipeline, store = make(embedder=HashEmbedder("vec-8", DIM), max_content_bytes=1000)
    with pytest.raises(
        InvalidArgument, match=re.escape("documents[0].data: is 1001 bytes; the limit is 1000")
    ):
        await collect(pipeline, [DocumentSpec("big", data=b"x" * 1001)])
    assert store.writes == 0


@pytest.mark.parametrize(
    ("chunking", "message"),
    [
        (ChunkingSpec(chunk_tokens=8), "chunking.chunk_tokens: must be 0 or 16-8192 (got 8)"),
        (ChunkingSpec(chunk_tokens=9000), "chunking.chunk_tokens"),
        (ChunkingSpec(chunk_tokens=100, overlap_tokens=100), "chunking.overlap_tokens"),
        (ChunkingSpec(chunk_tokens=100, overlap_tokens=-1), "chunking.overlap_tokens"),
    ],
)
async def test_chunking_options_out_of_range(chunking, message):
    pipeline, _ = make(embedder=HashEmbedder("vec-8", DIM))
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        await collect(pipeline, [DocumentSpec("t", text="hello")], chunking=chunking)


async def test_texts_without_vectors_need_an_embedder():
    pipeline, store = make(embedder=None)
    with pytest.raises(FailedPrecondition, match="send vectors"):
        await collect(pipeline, [DocumentSpec("a", chunks=[ChunkSpec("no vector")])])
    assert store.writes == 0


async def test_unknown_embedding_model_is_not_found():
    pipeline, _ = make(embedder=HashEmbedder("vec-8", DIM))
    with pytest.raises(NotFound, match="unknown embedding model 'nope'"):
        await collect(pipeline, [doc("a")], model="nope")


async def test_a_failing_document_does_not_stop_or_spoil_the_others():
    store = MemoryStore(fail_doc="b")
    embedder = HashEmbedder("vec-8", DIM, fail_on="POISON")
    pipeline, _ = make(store=store, embedder=embedder)
    docs = [
        DocumentSpec("a", text="Alpha text. It is fine."),
        DocumentSpec("b", text="Bravo text, but storage fails for it."),
        DocumentSpec("c", text="Charlie text with POISON that the embedder rejects."),
        DocumentSpec("d", data=b"\xff\xfe not utf-8"),
        DocumentSpec("e", data=b"%PDF-1.4 broken", mime_type="application/pdf"),
        DocumentSpec("f", data=minimal_pdf(["Foxtrot is a real PDF."]), mime_type="application/pdf"),
        DocumentSpec("g", chunks=[ChunkSpec("Golf has a vector", vec(3)), ChunkSpec("and embeds the rest")]),
    ]
    out = await collect(pipeline, docs)
    status = {o.doc_id: (o.ok, o.error) for o, _ in out}
    assert status["a"] == (True, "")
    assert status["b"] == (False, "internal error while storing")
    assert status["c"] == (False, "internal error while embedding")
    assert status["d"] == (False, "content is not valid UTF-8")
    assert status["e"] == (False, "content is not a readable PDF")
    assert status["f"] == (True, "")
    assert status["g"] == (True, "")
    assert out[-1][1].done == 7 and out[-1][1].failed == 4
    assert sorted(d for _, d in store.docs) == ["a", "f", "g"]
    # the caller's vector is kept as given; only the chunk without one was embedded
    golf = store.docs[("acme", "g")]
    assert np.allclose(golf[0].vector, vec(3), atol=1e-6)
    embedded = [t for batch in embedder.calls for t in batch]
    assert "and embeds the rest" in embedded and "Golf has a vector" not in embedded


async def test_a_store_that_goes_down_ends_the_ingest_unavailable():
    """Documents written before the outage are reported; the rest are not reported as FAILED one
    by one: the request ends UNAVAILABLE saying how far it got (re-sending it is safe)."""
    store = MemoryStore(down_after=32)  # the first write group (32 documents) is stored
    pipeline, _ = make(store=store)
    docs = [doc(f"d{i}", 1) for i in range(70)]
    out = []
    with pytest.raises(Unavailable, match="32 of 70 documents were indexed before it failed"):
        async for item in pipeline.run("acme", docs):
            out.append(item)
    assert [o.doc_id for o, _ in out] == [f"d{i}" for i in range(32)] and all(o.ok for o, _ in out)
    assert len(store.docs) == 32
    store.down_after = None  # back: the same request indexes everything, nothing twice
    again = await collect(pipeline, docs)
    assert all(o.ok for o, _ in again) and len(store.docs) == 70
    assert [o.replaced_chunk_count for o, _ in again] == [1] * 32 + [0] * 38


async def test_raw_text_is_chunked_with_spans_and_document_metadata():
    pipeline, store = make(embedder=HashEmbedder("vec-8", DIM))
    text = "# Title From Markdown\n\n" + " ".join(f"Sentence number {i} is here." for i in range(60))
    out = await collect(
        pipeline,
        [DocumentSpec("md", text=text, mime_type="text/markdown", metadata={"lang": "en"})],
        chunking=ChunkingSpec(chunk_tokens=64, overlap_tokens=8),
    )
    outcome = out[0][0]
    assert outcome.ok and outcome.chunk_count > 3
    chunks = store.docs[("acme", "md")]
    for c in chunks:
        assert text[c.span[0] : c.span[1]] == c.text
        assert c.metadata == {"lang": "en"}


async def test_pdf_without_the_optional_parser_is_failed_precondition(monkeypatch):
    from lorag.retrieval import parsing

    monkeypatch.setattr(parsing, "pdf_available", lambda: False)
    pipeline, store = make(embedder=HashEmbedder("vec-8", DIM))
    with pytest.raises(FailedPrecondition, match=r"documents\[0\].mime_type: PDF needs the optional parser"):
        await collect(pipeline, [DocumentSpec("p", data=minimal_pdf(["x"]), mime_type="application/pdf")])
    assert store.writes == 0


def test_the_embedder_follows_the_setting_and_the_host():
    from lorag.retrieval.embedders import LocalEmbedder, ServeEmbedder, default_embedder

    assert default_embedder("none") is None
    assert isinstance(default_embedder("local"), LocalEmbedder)
    assert isinstance(default_embedder("auto"), LocalEmbedder)  # not inside a Ray Serve replica
    serve = default_embedder("serve", app_name="emb")
    assert isinstance(serve, ServeEmbedder) and serve.app_name == "emb"

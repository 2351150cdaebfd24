"""SDK and CLI request building and streaming for RagService, over real gRPC on 127.0.0.1.

The server here is a test double of the transport only: a RagService servicer that records what
it receives and answers with canned messages. It checks what the SDK sends and how it reads the
streams; the orchestrator's behaviour is tested end to end elsewhere.
"""

import threading
from concurrent import futures

import grpc
import pytest
from click.testing import CliRunner

from lorag.cli import cli
from lorag.client import AsyncClient, Client, errors
from lorag.client.types import Answer
from lorag.common.v1 import common_pb2 as cpb
from lorag.rag.v1 import rag_pb2 as pb
from lorag.rag.v1 import rag_pb2_grpc


def canned_answer(question: str) -> pb.AskResponse:
    return pb.AskResponse(
        answer="Use the reset link [1].",
        citations=[
            pb.Citation(
                index=1,
                doc_id="docs/faq.md",
                chunk_id="ch_1",
                score=0.87,
                text="To reset your password, open Settings and choose Reset.",
                title="FAQ",
                char_start=0,
                char_end=55,
            )
        ],
        timings=[
            cpb.StageTiming(stage="search", duration_ms=4.0),
            cpb.StageTiming(stage="generate", duration_ms=20),
        ],
        usage=cpb.Usage(prompt_tokens=50, completion_tokens=6, total_tokens=56),
        answer_id=f"ans_{len(question)}",
        retrieval_performed=True,
    )


class RagDouble(rag_pb2_grpc.RagServiceServicer):
    """Records requests and metadata; ``fail`` = {method: (code, message)} answers with an error."""

    def __init__(self):
        self.requests: dict[str, list] = {}
        self.metadata: list[dict] = []
        self.fail: dict[str, tuple[grpc.StatusCode, str]] = {}
        self.stream_without_result = False
        self.lock = threading.Lock()

    def _record(self, method, request, context):
        with self.lock:
            self.requests.setdefault(method, []).append(request)
            self.metadata.append(dict(context.invocation_metadata()))
        if method in self.fail:
            context.abort(*self.fail[method])

    def Ask(self, request, context):
        self._record("Ask", request, context)
        return canned_answer(request.question)

    def AskStream(self, request, context):
        self._record("AskStream", request, context)
        for piece in ("Use the ", "reset link", " [1]."):
            yield pb.AskStreamResponse(answer_delta=piece)
        if self.stream_without_result:
            return
        yield pb.AskStreamResponse(result=canned_answer(request.question))

    def Ingest(self, request_iterator, context):
        messages = list(request_iterator)
        self._record("Ingest", messages, context)
        totals = pb.IngestTotals()
        for m in messages:
            doc = m.document
            content = doc.text if doc.WhichOneof("content") == "text" else doc.data.decode("latin-1")
            totals.received += 1
            if "BROKEN" in content:
                totals.failed += 1
                result = pb.DocumentResult(
                    doc_id=doc.doc_id, status=pb.INGEST_STATUS_FAILED, error="cannot parse"
                )
            else:
                chunks = max(1, len(content) // 20)
                totals.indexed += 1
                totals.chunks += chunks
                result = pb.DocumentResult(
                    doc_id=doc.doc_id, status=pb.INGEST_STATUS_INDEXED, chunk_count=chunks
                )
            yield pb.IngestResponse(result=result, totals=totals)

    def IngestDocuments(self, request, context):
        self._record("IngestDocuments", request, context)
        results = [
            pb.DocumentResult(doc_id=d.doc_id, status=pb.INGEST_STATUS_SKIPPED, chunk_count=2)
            for d in request.documents
        ]
        return pb.IngestDocumentsResponse(
            results=results, totals=pb.IngestTotals(received=len(results), skipped=len(results))
        )

    def DeleteDocuments(self, request, context):
        self._record("DeleteDocuments", request, context)
        return pb.DeleteDocumentsResponse(deleted_document_count=len(request.doc_ids), deleted_chunk_count=7)

    def Feedback(self, request, context):
        self._record("Feedback", request, context)
        return pb.FeedbackResponse(feedback_id="fb_1")


@pytest.fixture
def rag():
    double = RagDouble()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    rag_pb2_grpc.add_RagServiceServicer_to_server(double, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    double.target = f"127.0.0.1:{port}"
    yield double
    server.stop(0)


def test_ask_builds_the_request_and_returns_a_typed_answer(rag):
    with Client(rag.target, api_key="k-1", timeout=5) as c:
        answer = c.rag.ask(
            "How do I reset my password?",
            adapter="support@production",
            reranker_adapter="rr@v2",
            filter={"lang": "en", "year": {"gte": 2020}},
            top_k=30,
            rerank_top_n=4,
            rerank=False,
            mode="sparse",
            min_relevance=0.25,
            template="concise",
            history=[("hi", "hello")],
            routing="auto",
            max_new_tokens=64,
            temperature=0.0,
        )
    (req,) = rag.requests["Ask"]
    assert req.question == "How do I reset my password?"
    assert (req.adapter.ref, req.reranker_adapter.ref, req.template) == (
        "support@production",
        "rr@v2",
        "concise",
    )
    assert [(c.field, c.op) for c in req.filter.conditions] == [
        ("lang", cpb.FILTER_OP_EQ),
        ("year", cpb.FILTER_OP_GTE),
    ]
    assert req.filter.conditions[1].values[0].number_value == 2020
    r = req.retrieval
    assert (r.top_k, r.rerank_top_n, r.HasField("rerank"), r.rerank) == (30, 4, True, False)
    assert r.mode == 2 and r.min_relevance == pytest.approx(0.25)  # SEARCH_MODE_SPARSE
    assert req.generation.sampling.max_new_tokens == 64 and req.generation.sampling.HasField("temperature")
    assert [(h.question, h.answer) for h in req.history] == [("hi", "hello")]
    assert req.routing == pb.RETRIEVAL_ROUTING_AUTO
    assert rag.metadata[-1]["authorization"] == "Bearer k-1" and rag.metadata[-1]["application"] == "rag"
    assert isinstance(answer, Answer) and answer.citations[0].doc_id == "docs/faq.md"
    assert answer.raw.answer_id == answer.answer_id


def test_ask_with_defaults_leaves_every_option_unset(rag):
    with Client(rag.target, timeout=5) as c:
        c.rag.ask("q")
    (req,) = rag.requests["Ask"]
    assert [f.name for f, _ in req.ListFields()] == ["question"]  # server defaults apply


def test_ask_stream_yields_deltas_then_the_final_answer(rag):
    with Client(rag.target, timeout=5) as c:
        pieces = list(c.rag.ask_stream("q", filter={"lang": ["en", "de"]}))
    assert pieces[:3] == ["Use the ", "reset link", " [1]."]
    assert isinstance(pieces[3], Answer) and len(pieces) == 4
    assert "".join(pieces[:3]) == pieces[3].answer
    assert rag.requests["AskStream"][0].filter.conditions[0].op == cpb.FILTER_OP_IN


def test_a_stream_without_its_final_result_is_an_error_not_an_answer(rag):
    rag.stream_without_result = True
    with Client(rag.target, timeout=5) as c:
        got = []
        with pytest.raises(errors.UnavailableError, match="ended before its final result"):
            for piece in c.rag.ask_stream("q"):
                got.append(piece)
    assert got == ["Use the ", "reset link", " [1]."]


async def test_async_client_streams_ask_and_ingest(rag):
    async with AsyncClient(rag.target, timeout=5) as c:
        pieces = [p async for p in c.rag.ask_stream("q")]
        progress = [p async for p in c.rag.ingest([{"doc_id": "a", "text": "x" * 50}])]
        answer = await c.rag.ask("q")
    assert isinstance(pieces[-1], Answer) and pieces[:-1] == ["Use the ", "reset link", " [1]."]
    assert [(p.doc_id, p.status, p.chunk_count) for p in progress] == [("a", "indexed", 2)]
    assert answer.answer_id == "ans_1"


def test_server_errors_become_exception_classes(rag):
    rag.fail["Ask"] = (grpc.StatusCode.NOT_FOUND, "adapter 'nope' not found")
    rag.fail["AskStream"] = (grpc.StatusCode.INVALID_ARGUMENT, "question: must not be empty")
    with Client(rag.target, timeout=5) as c:
        with pytest.raises(errors.NotFoundError) as info:
            c.rag.ask("q", adapter="nope")
        assert info.value.message == "adapter 'nope' not found"
        with pytest.raises(errors.InvalidArgumentError):
            list(c.rag.ask_stream(""))


def test_unavailable_is_retried_for_ask_but_not_for_ingest_or_feedback(rag):
    unavailable = (grpc.StatusCode.UNAVAILABLE, "replica restarting")
    rag.fail.update(Ask=unavailable, Ingest=unavailable, Feedback=unavailable)
    with Client(rag.target, timeout=10) as c:
        with pytest.raises(errors.UnavailableError):
            c.rag.ask("q")
        with pytest.raises(errors.UnavailableError):
            list(c.rag.ingest([{"doc_id": "a", "text": "x"}]))
        with pytest.raises(errors.UnavailableError):
            c.rag.feedback("ans_1", rating="up")
    assert len(rag.requests["Ask"]) == 4  # maxAttempts of the retry policy
    assert len(rag.requests["Ingest"]) == 1 and len(rag.requests["Feedback"]) == 1


def test_ingest_reads_paths_sends_options_once_and_reports_unreadable_files(rag, tmp_path, monkeypatch):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text("# A\n" + "alpha " * 20)
    (tmp_path / "docs" / "sub" / "b.html").write_text("<p>BROKEN</p>")
    (tmp_path / "docs" / "big.txt").write_bytes(b"x" * (8 * 1024 * 1024 + 1))
    monkeypatch.chdir(tmp_path)
    with Client(rag.target, timeout=10) as c:
        progress = list(
            c.rag.ingest("docs", chunk_size=400, chunk_overlap=50, force=True, metadata={"team": "kb"})
        )
    (messages,) = rag.requests["Ingest"]
    assert [m.document.doc_id for m in messages] == ["docs/a.md", "docs/sub/b.html"]
    assert [m.document.mime_type for m in messages] == ["text/markdown", "text/html"]
    assert messages[0].HasField("options") and not messages[1].HasField("options")
    options = {f.name: v for f, v in messages[0].options.ListFields()}
    assert 400 in options.values() and 50 in options.values() and options["force"] is True
    assert dict(messages[0].document.metadata) == {"team": "kb"}
    by_id = {p.doc_id: p for p in progress}
    assert by_id["docs/a.md"].status == "indexed" and by_id["docs/sub/b.html"].error == "cannot parse"
    assert by_id["docs/big.txt"].failed and "MiB limit" in by_id["docs/big.txt"].error
    assert progress[-1].totals.received == 3 and progress[-1].totals.failed == 2


def test_ingest_batch_delete_and_feedback(rag):
    with Client(rag.target, timeout=5) as c:
        results = c.rag.ingest_batch(
            [{"doc_id": "a", "text": "x"}, {"doc_id": "b", "data": b"%PDF", "mime_type": "application/pdf"}]
        )
        deleted = c.rag.delete(["a", "b"])
        feedback_id = c.rag.feedback(
            "ans_1", rating="down", score=0.2, corrected_answer="Use Settings.", irrelevant_chunk_ids=["ch_9"]
        )
    assert [(r.doc_id, r.status) for r in results] == [("a", "skipped"), ("b", "skipped")]
    assert rag.requests["IngestDocuments"][0].documents[1].data == b"%PDF"
    assert (deleted.documents, deleted.chunks) == (2, 7)
    (fb,) = rag.requests["Feedback"]
    assert feedback_id == "fb_1" and fb.rating == pb.FEEDBACK_RATING_THUMBS_DOWN and fb.HasField("score")
    assert list(fb.irrelevant_chunk_ids) == ["ch_9"] and fb.corrected_answer == "Use Settings."


# -- the CLI against the double --------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("LORAG_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("LORAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LORAG_API_KEY", raising=False)
    return CliRunner()


def test_cli_ask_streams_the_answer_then_a_citations_table(rag, runner):
    args = ["ask", "How do I reset?", "-a", "bot@canary", "-f", "lang=en", "-k", "12"]
    args += ["--no-rerank", "-t", "cot"]
    result = runner.invoke(cli, ["--endpoint", rag.target, "--api-key", "k-2", *args])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("Use the reset link [1].\n")
    assert "citations" in out and "docs/faq.md" in out and "0.870" in out and "To reset your password" in out
    assert "search 4 ms" in out and "56 tokens" in out and "answer ans_15" in out
    (req,) = rag.requests["AskStream"]
    assert (req.adapter.ref, req.template, req.retrieval.top_k, req.retrieval.rerank) == (
        "bot@canary",
        "cot",
        12,
        False,
    )
    assert req.filter.conditions[0].field == "lang"
    assert rag.metadata[-1]["authorization"] == "Bearer k-2"


def test_cli_ask_json_and_errors(rag, runner):
    import json

    result = runner.invoke(cli, ["--endpoint", rag.target, "ask", "q", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["citations"][0]["chunk_id"] == "ch_1"
    rag.fail["AskStream"] = (grpc.StatusCode.NOT_FOUND, "adapter 'x' not found")
    result = runner.invoke(cli, ["--endpoint", rag.target, "ask", "q", "-a", "x"])
    assert result.exit_code == 1 and result.stderr == "error: NOT_FOUND: adapter 'x' not found\n"


def test_cli_ingest_shows_progress_and_a_summary_and_fails_on_a_failed_document(
    rag, runner, tmp_path, monkeypatch
):
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "one.md").write_text("one " * 40)
    (tmp_path / "kb" / "two.txt").write_text("two " * 40)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        cli, ["--endpoint", rag.target, "ingest", "kb", "-m", "lang=en", "--chunk-size", "300"]
    )
    assert result.exit_code == 0, result.output
    assert "2/2" in result.stderr and "chunks/s" in result.stderr  # the progress bar
    assert (
        "indexed" in result.stdout
        and "2 of 2 documents" in result.stdout
        and "16 chunks stored" in result.stdout
    )
    (messages,) = rag.requests["Ingest"]
    assert [m.document.doc_id for m in messages] == ["kb/one.md", "kb/two.txt"]
    assert dict(messages[1].document.metadata) == {"lang": "en"}

    (tmp_path / "kb" / "three.md").write_text("BROKEN")
    result = runner.invoke(cli, ["--endpoint", rag.target, "ingest", "kb/*.md"])
    assert result.exit_code == 1
    assert (
        "failed documents" in result.stdout
        and "kb/three.md" in result.stdout
        and "cannot parse" in result.stdout
    )

"""``lorag eval retrieval``: ranking quality of every retrieval method on SQuAD-derived sets.

Protocol (per set, :mod:`lorag.evaluation.data`): a fresh tenant of an in-process platform
ingests the set's paragraphs through the normal ingest path (``RagService.IngestDocuments``:
parse, token-aware chunking, embedding, Milvus Lite upsert); every question is then searched
through ``RetrievalService.Search`` with the query vector computed once by ``EmbeddingService``:

* ``dense`` (HNSW, inner product), ``bm25`` (Milvus's BM25 function), ``hybrid_rrf`` and
  ``hybrid_weighted`` (the server's default weights), top 100 chunks each;
* ``hybrid_rerank``: the first ``rerank_depth`` documents of ``hybrid_rrf`` re-ordered by
  ``RerankingService.Rerank`` (the default reranker, whatever ``lorag serve`` would use; the
  report names its scoring method), the rest kept in hybrid order — so its Recall@100 equals
  hybrid_rrf's and only the head of the ranking changes.

Rankings are at document level (a document counts at its best-ranked chunk). Metrics: nDCG@10,
Recall@100, MRR@10 (:mod:`lorag.evaluation.metrics`), plus mean search latency.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lorag.evaluation import metrics
from lorag.evaluation.data import EvalSet

METHODS = ("dense", "bm25", "hybrid_rrf", "hybrid_weighted", "hybrid_rerank")
SEARCH = {
    "dense": {"mode": "dense"},
    "bm25": {"mode": "sparse"},
    "hybrid_rrf": {"mode": "hybrid", "fusion": "rrf"},
    "hybrid_weighted": {"mode": "hybrid", "fusion": "weighted"},
}
DEPTH = 100
INGEST_BATCH = 50
EMBED_BATCH = 64


def ingest(client, evalset: EvalSet, *, batch: int = INGEST_BATCH) -> dict:
    """Ingest every document of the set through the RAG ingest path; counts and seconds."""
    started = time.perf_counter()
    chunks = failed = 0
    docs = list(evalset.docs)
    for i in range(0, len(docs), batch):
        part = [{"doc_id": d.doc_id, "text": d.text} for d in docs[i : i + batch]]
        for result in client.rag.ingest_batch(part):
            if result.failed:
                failed += 1
            chunks += result.chunk_count
    if failed:
        raise RuntimeError(f"{failed} documents of {evalset.name} failed to ingest")
    seconds = time.perf_counter() - started
    return {"documents": len(docs), "chunks": chunks, "seconds": round(seconds, 2)}


def _embed_queries(client, texts: list[str]) -> list[tuple[float, ...]]:
    out: list[tuple[float, ...]] = []
    for i in range(0, len(texts), EMBED_BATCH):
        out.extend(client.embedding.embed(texts[i : i + EMBED_BATCH], input_type="query").vectors)
    return out


def rerank_head(client, query: str, ranked: Sequence[tuple[str, str]], depth: int) -> tuple[list[str], str]:
    """Doc ids with the first ``depth`` of ``ranked`` ((doc_id, text) pairs, best first)
    re-ordered by the reranker; and the reranker's scoring method."""
    head = list(ranked[:depth])
    if not head:
        return [], ""
    result = client.reranking.rerank(query, [(doc, text) for doc, text in head])
    order = [head[r.index][0] for r in result.results]
    return order + [doc for doc, _ in ranked[depth:]], result.scoring_method


@dataclass
class _Scores:
    ndcg: list[float]
    recall: list[float]
    mrr: list[float]
    seconds: list[float]

    def summary(self) -> dict:
        n = len(self.ndcg)
        return {
            "ndcg@10": sum(self.ndcg) / n,
            "recall@100": sum(self.recall) / n,
            "mrr@10": sum(self.mrr) / n,
            "mean_ms": 1000 * sum(self.seconds) / n,
        }


def evaluate_set(
    client,
    evalset: EvalSet,
    *,
    methods: Sequence[str] = METHODS,
    rerank_depth: int = 20,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Ingest ``evalset`` into the client's tenant and score every method on its questions."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    ingested = ingest(client, evalset)
    questions = list(evalset.questions)
    vectors = _embed_queries(client, [q.question for q in questions])
    scores = {m: _Scores([], [], [], []) for m in methods}
    scoring_method = ""
    for n, (q, vector) in enumerate(zip(questions, vectors, strict=True), start=1):
        relevant = {q.gold_doc: 1.0}
        rankings: dict[str, list[str]] = {}
        hybrid_hits = None
        for method in methods:
            started = time.perf_counter()
            if method == "hybrid_rerank":
                if hybrid_hits is None:
                    hybrid_hits = client.retrieval.search(
                        q.question, query_vector=vector, top_k=DEPTH, **SEARCH["hybrid_rrf"]
                    ).hits
                ranked = _doc_texts(hybrid_hits)
                ranking, scoring_method = rerank_head(client, q.question, ranked, rerank_depth)
            else:
                hits = client.retrieval.search(
                    q.question, query_vector=vector, top_k=DEPTH, **SEARCH[method]
                ).hits
                if method == "hybrid_rrf":
                    hybrid_hits = hits
                ranking = metrics.unique_docs(h.doc_id for h in hits)
            elapsed = time.perf_counter() - started
            rankings[method] = ranking
            s = scores[method]
            s.ndcg.append(metrics.ndcg_at_k(ranking, relevant, 10))
            s.recall.append(metrics.recall_at_k(ranking, relevant, DEPTH))
            s.mrr.append(metrics.mrr_at_k(ranking, relevant, 10))
            s.seconds.append(elapsed)
        if progress is not None:
            progress(n, len(questions))
    return {
        "set": evalset.name,
        "licence": evalset.licence,
        "documents": ingested["documents"],
        "chunks": ingested["chunks"],
        "ingest_seconds": ingested["seconds"],
        "questions": len(questions),
        "rerank_depth": rerank_depth,
        "reranker_scoring_method": scoring_method,
        "methods": {m: scores[m].summary() for m in methods},
    }


def _doc_texts(hits) -> list[tuple[str, str]]:
    """(doc_id, text of its best chunk) in rank order, one per document."""
    out: dict[str, str] = {}
    for h in hits:
        out.setdefault(h.doc_id, h.text)
    return list(out.items())


def run(
    sets: Sequence[EvalSet],
    *,
    methods: Sequence[str] = METHODS,
    rerank_depth: int = 20,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """Every set in its own fresh in-process platform; the report (plain JSON types)."""
    from lorag.evaluation.platform import local_platform

    started = time.perf_counter()
    results = []
    for evalset in sets:
        with local_platform() as platform:

            def step(n: int, total: int, name: str = evalset.name) -> None:
                if progress is not None:
                    progress(name, n, total)

            results.append(
                evaluate_set(
                    platform.client, evalset, methods=methods, rerank_depth=rerank_depth, progress=step
                )
            )
    return {"kind": "retrieval", "seconds": round(time.perf_counter() - started, 1), "sets": results}

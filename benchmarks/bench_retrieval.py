"""Retrieval benchmark: Milvus insert throughput and search latency at 10k and 100k chunks,
against an exact brute-force numpy search on the same vectors, measured side by side in one run
(1k/10k/100k: synthetic unit vectors and Zipf-distributed word texts; the schema is production's).

For each collection size N (fresh Milvus Lite collection with the production schema: HNSW on
the dense vector, BM25 function on the text, tenant partition key):

* insert rows/s — bulk inserts of 2,000 rows (BM25 runs on every row) and the flush that seals
  them, and the ingest pipeline (validation, grouped lookup + upsert + stale-chunk removal, flush)
  on 100 documents of 10 chunks with vectors;
* search latency p50/p95 of dense, sparse (BM25) and hybrid (RRF) top-10 searches with the
  tenant expression, and of ``numpy`` brute force (one matrix-vector product + argpartition, one
  BLAS thread);
* recall@10 of the dense search against the exact numpy result.

Writes ``<out>/bench_retrieval.json`` and ``<out>/bench_retrieval.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/targets.py
from targets import check, machine, print_targets  # noqa: E402

TENANT = "bench"
TOP_K = 10


def _texts(rng: np.random.Generator, n: int, vocab: list[str], words: int = 30) -> list[str]:
    ranks = np.arange(1, len(vocab) + 1)
    p = (1.0 / ranks) / (1.0 / ranks).sum()  # Zipf-like word frequencies
    idx = rng.choice(len(vocab), size=(n, words), p=p)
    return [" ".join(vocab[j] for j in row) for row in idx]


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _pct(lat: list[float]) -> dict:
    lat = sorted(lat)
    return {
        "p50_ms": 1000 * statistics.median(lat),
        "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))],
        "mean_ms": 1000 * statistics.fmean(lat),
    }


async def _ingest(store, settings, info, vectors: np.ndarray, texts: list[str]) -> tuple[float, int]:
    """Time the ingest pipeline writing 100 documents of 10 chunks (vectors given) in one request."""
    from lorag.retrieval.core import RetrievalCore
    from lorag.retrieval.ingest import ChunkSpec, DocumentSpec, IngestPipeline

    core = RetrievalCore(
        settings.model_copy(update={"model_dimensions": {info.model: info.dimension}}),
        store=store,
        embedder=None,
    )
    pipeline = IngestPipeline(core)
    n = len(texts)
    docs = [
        DocumentSpec(
            doc_id=f"w{d}",
            chunks=[ChunkSpec(texts[(d * 10 + j) % n], vectors[(d * 10 + j) % n]) for j in range(10)],
        )
        for d in range(100)
    ]
    started = time.perf_counter()
    written = 0
    for a in range(0, len(docs), 100):
        async for outcome, _ in pipeline.run("bench-docs", docs[a : a + 100], model=info.model):
            assert outcome.ok, outcome
            written += outcome.chunk_count
    return time.perf_counter() - started, written


def run_size(n: int, *, dim: int, queries: int, work: Path, seed: int) -> dict:
    from lorag.retrieval.core import MilvusStore, chunk_id
    from lorag.retrieval.settings import RetrievalSettings

    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(5000)]
    vectors = _unit(rng, n, dim)
    texts = _texts(rng, n, vocab)
    settings = RetrievalSettings(data_dir=work / f"n{n}", index_type="HNSW")
    store = MilvusStore(uri=str(settings.lite_path()), settings=settings)
    info = store.ensure_collection(f"bench-{dim}", dim)

    # bulk insert
    started = time.perf_counter()
    batch = 2000
    for a in range(0, n, batch):
        rows = [
            {
                "chunk_id": chunk_id(TENANT, f"doc{i // 10}", i % 10),
                "tenant_id": TENANT,
                "doc_id": f"doc{i // 10}",
                "chunk_index": i % 10,
                "title": "",
                "text": texts[i],
                "dense": vectors[i].tolist(),
                "metadata": {"n": i},
                "doc_metadata": {},
                "doc_chunk_count": 10,
                "content_sha256": "",
                "span_start": -1,
                "span_end": -1,
                "created_at": 0,
                "updated_at": 0,
            }
            for i in range(a, min(a + batch, n))
        ]
        store.insert_rows(info, rows)
    insert_s = time.perf_counter() - started
    started = time.perf_counter()
    store.settle(info)  # Milvus Lite: seal the rows so searches use the HNSW index
    flush_s = time.perf_counter() - started

    # queries: perturbed stored vectors (so there is a true neighbourhood) and word pairs
    qidx = rng.choice(n, size=queries, replace=False)
    qvecs = vectors[qidx] + 0.3 * _unit(rng, queries, dim)
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    qtexts = [" ".join(texts[i].split()[10:13]) for i in qidx]

    def timed(fn) -> tuple[list[float], list]:
        fn(0)  # warm-up
        lat, out = [], []
        for q in range(queries):
            t = time.perf_counter()
            out.append(fn(q))
            lat.append(time.perf_counter() - t)
        return lat, out

    def search(mode: str):
        return lambda q: store.search(
            TENANT,
            info,
            mode=mode,
            vector=qvecs[q],
            text=qtexts[q],
            top_k=TOP_K,
            user_expr="",
            fusion="rrf",
            rrf_k=60,
            weights=(0.5, 0.5),
        )

    dense_lat, dense_hits = timed(search("dense"))
    sparse_lat, _ = timed(search("sparse"))
    hybrid_lat, _ = timed(search("hybrid"))

    def brute(q: int) -> np.ndarray:
        scores = vectors @ qvecs[q]
        top = np.argpartition(-scores, TOP_K)[:TOP_K]
        return top[np.argsort(-scores[top])]

    try:  # one BLAS thread: a matrix-vector product gains nothing from more on a busy machine
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        numpy_lat, exact = timed(brute)
    else:
        with threadpool_limits(1):
            numpy_lat, exact = timed(brute)
    ids = [chunk_id(TENANT, f"doc{i // 10}", i % 10) for i in range(n)]
    recall = statistics.fmean(
        len({h.chunk_id for h in hits} & {ids[i] for i in ex}) / TOP_K
        for hits, ex in zip(dense_hits, exact, strict=True)
    )

    # the ingest pipeline on documents with vectors: validation, grouped writes, flush
    doc_write_s, doc_chunks = asyncio.run(_ingest(store, settings, info, vectors, texts))
    store.close()

    result = {
        "chunks": n,
        "dimension": dim,
        "insert_rows_per_s": n / insert_s,
        "insert_seconds": insert_s,
        "flush_seconds": flush_s,
        "insert_rows_per_s_with_flush": n / (insert_s + flush_s),
        "document_write_chunks_per_s": doc_chunks / doc_write_s,
        "search": {
            "dense": _pct(dense_lat),
            "sparse_bm25": _pct(sparse_lat),
            "hybrid_rrf": _pct(hybrid_lat),
            "numpy_bruteforce": _pct(numpy_lat),
        },
        "dense_recall_at_10_vs_exact": recall,
    }
    np_p50 = result["search"]["numpy_bruteforce"]["p50_ms"]
    result["ratio_p50_vs_numpy"] = {
        k: v["p50_ms"] / np_p50 for k, v in result["search"].items() if k != "numpy_bruteforce"
    }
    return result


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    sizes = [r["chunks"] for r in results]
    for key, label in [
        ("dense", "Milvus dense (HNSW)"),
        ("sparse_bm25", "Milvus BM25"),
        ("hybrid_rrf", "Milvus hybrid (RRF)"),
        ("numpy_bruteforce", "numpy brute force"),
    ]:
        ax1.plot(sizes, [r["search"][key]["p50_ms"] for r in results], marker="o", label=label)
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("chunks in the collection")
    ax1.set_ylabel("p50 latency, top-10 (ms)")
    ax1.set_title("Search latency (Milvus Lite)")
    ax1.legend(fontsize=8)
    x = np.arange(len(sizes))
    ax2.bar(x - 0.2, [r["insert_rows_per_s"] for r in results], 0.4, label="bulk insert")
    ax2.bar(x + 0.2, [r["document_write_chunks_per_s"] for r in results], 0.4, label="per-document write")
    ax2.set_xticks(x, [f"{s:,}" for s in sizes])
    ax2.set_xlabel("chunks in the collection")
    ax2.set_ylabel("rows / s")
    ax2.set_title("Insert throughput (BM25 + HNSW)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results", help="directory for the JSON and PNG reports")
    p.add_argument("--sizes", default="1000,10000,100000", help="collection sizes, comma-separated")
    p.add_argument("--dim", type=int, default=384, help="vector dimension (all-MiniLM-L6-v2: 384)")
    p.add_argument("--queries", type=int, default=12, help="queries per mode and size")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="lorag-bench-retrieval-") as tmp:
        for i, n in enumerate(int(s) for s in args.sizes.split(",")):
            r = run_size(n, dim=args.dim, queries=args.queries, work=Path(tmp), seed=i)
            results.append(r)
            s = r["search"]
            print(
                f"{n:>7} chunks: insert {r['insert_rows_per_s']:,.0f} rows/s "
                f"(per-document {r['document_write_chunks_per_s']:,.0f}/s); p50 dense "
                f"{s['dense']['p50_ms']:.1f} ms, bm25 {s['sparse_bm25']['p50_ms']:.1f} ms, hybrid "
                f"{s['hybrid_rrf']['p50_ms']:.1f} ms, numpy {s['numpy_bruteforce']['p50_ms']:.2f} ms; "
                f"recall@10 {r['dense_recall_at_10_vs_exact']:.3f}",
                flush=True,
            )
    targets = [
        check("retrieval_milvus_over_numpy_p50", r["ratio_p50_vs_numpy"][mode], chunks=r["chunks"], mode=mode)
        for r in results
        for mode in ("dense", "hybrid_rrf")
    ]
    report = {
        "benchmark": "retrieval",
        "backend": "milvus-lite (embedded)",
        "machine": {**machine(), "platform": platform.platform()},
        "top_k": TOP_K,
        "results": results,
        "targets": targets,
    }
    print_targets(targets)
    (out / "bench_retrieval.json").write_text(json.dumps(report, indent=2))
    plot(results, out / "bench_retrieval.png")
    print(f"wrote {out / 'bench_retrieval.json'} and {out / 'bench_retrieval.png'}")


if __name__ == "__main__":
    main()

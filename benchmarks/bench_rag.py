"""RAG orchestrator benchmark: Ask end to end under concurrency, and ingest against raw embedding.

All figures from one run of one in-process platform (every service in the ``grpc.aio`` host,
Milvus Lite, MiniLM, the default reranker, SmolLM2-135M), real SQuAD v1.1 dev paragraphs:

1. ingest ÷ raw embedding           ``RagService.IngestDocuments`` (parse, chunk, embed, upsert,
                                     batches of 50 documents) ÷ the embedding model alone on the
                                     same documents (64 per call, no gRPC, no Milvus; measured
                                     before and after the ingest, mean kept), documents/s over
                                     texts/s; chunks/s is reported too
2. Ask latency                       p50/p95/p99 of ``Ask`` at 1, 8 and 32 concurrent clients
                                     (each sends ``--per-client`` questions; greedy,
                                     ``--max-new-tokens``), with the median of every stage
                                     (route, embed, search, rerank, assemble, generate); the
                                     one tenant's generation concurrency quota is lifted to 256

Writes ``<out>/bench_rag.json`` and ``<out>/bench_rag.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LORAG_LOG_JSON", "false")
# One tenant sends every Ask: lift its generation concurrency quota (16 by default) above the
# highest level measured, so the figures are the pipeline's latency, not the quota's refusals
# (benchmarks/bench_load.py measures the quotas).
os.environ.setdefault("LORAG_GENERATION_MAX_CONCURRENT_PER_TENANT", "256")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import check, machine, print_targets  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def raw_embedding(texts: list[str]) -> dict:
    from lorag.embedding.core import EmbeddingCore
    from lorag.embedding.settings import EmbeddingSettings

    core = EmbeddingCore(EmbeddingSettings())
    core.embed(texts[:8])  # loads the model
    started = time.perf_counter()
    for i in range(0, len(texts), 64):
        core.embed(texts[i : i + 64])
    seconds = time.perf_counter() - started
    return {"texts": len(texts), "seconds": seconds, "texts_per_s": len(texts) / seconds}


def ask_level(client, questions: list[str], clients: int, per_client: int, max_new_tokens: int) -> dict:
    work = [questions[i % len(questions)] for i in range(clients * per_client)]
    latencies: list[float] = []
    stages: dict[str, list[float]] = {}
    rejected = 0

    def one(q: str):
        t0 = time.perf_counter()
        a = client.rag.ask(q, max_new_tokens=max_new_tokens, temperature=0.0)
        return time.perf_counter() - t0, a

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for seconds, a in pool.map(one, work):
            latencies.append(1000 * seconds)
            rejected += a.rejected
            for t in a.timings:
                stages.setdefault(t.stage, []).append(t.duration_ms)
    wall = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": len(work),
        "rejected": rejected,
        "p50_ms": _pct(latencies, 0.50),
        "p95_ms": _pct(latencies, 0.95),
        "p99_ms": _pct(latencies, 0.99),
        "requests_per_s": len(work) / wall,
        "stage_p50_ms": {k: statistics.median(v) for k, v in stages.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--documents", type=int, default=200, help="SQuAD paragraphs ingested")
    parser.add_argument("--clients", default="1,8,32", help="concurrency levels")
    parser.add_argument("--per-client", type=int, default=2, help="questions per client per level")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from lorag.evaluation.data import load_set
    from lorag.evaluation.platform import local_platform
    from lorag.evaluation.retrieval import ingest

    evalset = load_set("dev", max_docs=args.documents)
    texts = [d.text for d in evalset.docs]
    questions = [q.question for q in evalset.questions]
    levels = [int(c) for c in args.clients.split(",")]
    with local_platform() as platform:
        c = platform.client
        c.embedding.embed(["warm up"], input_type="passage")  # load the model before timing ingest
        before = raw_embedding(texts)
        ingested = ingest(c, evalset)
        after = raw_embedding(texts)
        raw = {
            "texts": len(texts),
            "texts_per_s": (before["texts_per_s"] + after["texts_per_s"]) / 2,
            "before": before,
            "after": after,
        }
        c.rag.ask(questions[0], max_new_tokens=4)  # warm up every stage
        results = []
        for n in levels:
            print(f"Ask at {n} concurrent clients ...", flush=True)
            results.append(ask_level(c, questions[1:], n, args.per_client, args.max_new_tokens))
        probe = c.reranking.rerank("probe", ["probe"])
    chunks_per_s = ingested["chunks"] / ingested["seconds"]
    docs_per_s = ingested["documents"] / ingested["seconds"]
    ingest_ratio = docs_per_s / raw["texts_per_s"]
    targets = [check("ingest_over_raw_embedding", ingest_ratio)]
    targets += [check("ask_p95_ms", r["p95_ms"], clients=r["clients"]) for r in results]
    report = {
        "benchmark": "rag",
        "machine": machine(),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "reranker_scoring_method": probe.scoring_method,
        "ingest": {**ingested, "chunks_per_s": chunks_per_s, "documents_per_s": docs_per_s},
        "raw_embedding": raw,
        "ratios": {"ingest_over_raw_embedding": ingest_ratio},
        "ask": results,
        "targets": targets,
    }
    (args.out / "bench_rag.json").write_text(json.dumps(report, indent=2))
    chart(report, args.out / "bench_rag.png")
    print_targets(targets)
    print(json.dumps(report, indent=2))


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ask = report["ask"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    labels = [str(r["clients"]) for r in ask]
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        left.plot(labels, [r[key] / 1000 for r in ask], marker="o", label=key.removesuffix("_ms"))
    left.set_xlabel("concurrent clients")
    left.set_ylabel("Ask latency (s)")
    left.legend()
    left.set_title("Ask end to end")
    stages = sorted({s for r in ask for s in r["stage_p50_ms"]})
    bottom = [0.0] * len(ask)
    for s in stages:
        values = [r["stage_p50_ms"].get(s, 0.0) / 1000 for r in ask]
        right.bar(labels, values, bottom=bottom, label=s)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    right.set_xlabel("concurrent clients")
    right.set_ylabel("median stage time (s)")
    right.legend(fontsize=8)
    right.set_title(f"per stage; ingest/raw embedding {report['ratios']['ingest_over_raw_embedding']:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()

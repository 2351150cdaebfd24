"""Generation benchmark: multi-LoRA batching cost, against naive serving, over gRPC, hot swap.

All figures come from one run on the same machine, side by side:

1. mixed / base      tokens/s of 8 distinct adapters mixed in one batch ÷ base model alone
2. mixed / naive     mixed batching ÷ a server that calls ``set_adapter`` and ``generate`` per request
3. grpc / raw        tokens/s through the gRPC service (in-process host, and through Ray Serve's
                     gRPC proxy) ÷ raw batched ``generate`` of the same prompts
4. hot swap          time from an alias move until requests use the new version; failed requests

Model: the default SmolLM2-135M-Instruct (converted from its PyPI package), greedy decoding.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LORAG_MODELS_DIR", str(Path.home() / ".cache" / "lorag" / "models"))

PROMPTS = [
    "Write a short note about the ocean.",
    "Explain why the sky is blue.",
    "List three uses of copper.",
    "Describe a quiet morning in a village.",
    "What makes a good cup of tea?",
    "Give advice to a new gardener.",
    "Summarise the rules of chess.",
    "Why do cats purr?",
]


def _adapters(base_dir: Path, root: Path, n: int) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = []
    for i in range(n):
        target = root / f"a{i}"
        torch.manual_seed(100 + i)
        model = AutoModelForCausalLM.from_pretrained(base_dir)
        cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        cfg.init_lora_weights = False
        peft_model = get_peft_model(model, cfg)
        peft_model.save_pretrained(target)
        out.append(target)
    return out


def _run_engine(engine, tok, items, max_new_tokens: int) -> tuple[int, float]:
    import threading

    from lorag.generation.engine import SamplingParams, Sequence

    done = threading.Event()
    left = [len(items)]
    tokens = [0]
    lock = threading.Lock()

    def sink(ev):
        if ev.finish_reason:
            with lock:
                tokens[0] += ev.completion_tokens
                left[0] -= 1
                if left[0] == 0:
                    done.set()

    started = time.perf_counter()
    for prompt, adapter in items:
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
        if not isinstance(ids, list):
            ids = ids["input_ids"]
        engine.submit(Sequence(list(ids), adapter, SamplingParams(max_new_tokens=max_new_tokens), sink))
    done.wait(3600)
    return tokens[0], time.perf_counter() - started


def engine_ratios(args, work: Path) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lorag.generation import lora_batch
    from lorag.generation.engine import BASE, BatchEngine
    from lorag.generation.models import prepare_builtin
    from lorag.generation.settings import GenerationSettings

    torch.set_num_threads(os.cpu_count() or 1)
    base_dir = prepare_builtin(GenerationSettings())
    paths = _adapters(base_dir, work / "adapters", args.adapters)
    tok = AutoTokenizer.from_pretrained(base_dir)
    tok.padding_side = "left"
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    model = PeftModel.from_pretrained(base, paths[0], adapter_name="a0")
    for i, p in enumerate(paths[1:], 1):
        model.load_adapter(p, adapter_name=f"a{i}")
    model.eval()
    lora_batch.install(model)  # as the service does: gathered multi-LoRA matmuls
    engine = BatchEngine(model, tok, max_batch_size=args.concurrency)
    n = args.requests
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
    names = [f"a{i % args.adapters}" for i in range(n)]
    # Warm up both paths with a full round each: the first passes over new shapes are slow.
    _run_engine(engine, tok, [(p, BASE) for p in prompts], args.max_new_tokens)
    _run_engine(engine, tok, list(zip(prompts, names, strict=True)), args.max_new_tokens)
    # Alternate base and mixed rounds and keep the median round of each, so that load from other
    # processes on the machine hits both sides alike.
    base_runs, mixed_runs = [], []
    for _ in range(args.rounds):
        base_runs.append(_run_engine(engine, tok, [(p, BASE) for p in prompts], args.max_new_tokens))
        mixed_runs.append(
            _run_engine(engine, tok, list(zip(prompts, names, strict=True)), args.max_new_tokens)
        )
    engine.close()
    base_tokens, base_s = sorted(base_runs, key=lambda r: r[0] / r[1])[len(base_runs) // 2]
    mixed_tokens, mixed_s = sorted(mixed_runs, key=lambda r: r[0] / r[1])[len(mixed_runs) // 2]

    # naive: one request at a time, switching the active adapter per request
    naive_tokens, started = 0, time.perf_counter()
    with torch.inference_mode():
        for prompt, name in zip(prompts, names, strict=True):
            model.set_adapter(name)
            ids = tok.apply_chat_template(
                [{"role": "user", "content": prompt}],
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            )
            out = model.generate(
                **ids, max_new_tokens=args.max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
            )
            naive_tokens += out.shape[1] - ids["input_ids"].shape[1]
    naive_s = time.perf_counter() - started

    # raw batched generate of the base model (no server), same prompts and batch size
    raw_tokens, started = 0, time.perf_counter()
    with torch.inference_mode(), model.disable_adapter():
        for i in range(0, n, args.concurrency):
            batch = [
                tok.apply_chat_template(
                    [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
                )
                for p in prompts[i : i + args.concurrency]
            ]
            enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(
                **enc, max_new_tokens=args.max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
            )
            gen = out[:, enc["input_ids"].shape[1] :]
            raw_tokens += int((gen != tok.pad_token_id).sum())
    raw_s = time.perf_counter() - started
    return {
        "base": {"tokens": base_tokens, "seconds": base_s, "tokens_per_s": base_tokens / base_s},
        "mixed": {"tokens": mixed_tokens, "seconds": mixed_s, "tokens_per_s": mixed_tokens / mixed_s},
        "naive_set_adapter": {
            "tokens": naive_tokens,
            "seconds": naive_s,
            "tokens_per_s": naive_tokens / naive_s,
        },
        "raw_generate": {"tokens": raw_tokens, "seconds": raw_s, "tokens_per_s": raw_tokens / raw_s},
    }


async def grpc_and_hot_swap(args, work: Path, adapter_dirs: list[Path]) -> dict:
    import json as _json

    from lorag.adapters.transfer import upload_requests
    from lorag.adapters.v1 import adapters_pb2 as apb
    from lorag.client import AsyncClient
    from lorag.common.hosts import start_inprocess
    from lorag.common.rpc import Runtime
    from lorag.common.settings import LoragSettings
    from lorag.common.v1 import common_pb2
    from lorag.generation.v1 import generation_pb2 as pb

    runtime = Runtime.build(LoragSettings(data_dir=work / "data"))
    key = runtime.tenants.bootstrap()
    apps = tuple(
        a for a in __import__("lorag.apps", fromlist=["APPS"]).APPS if a.name in ("generation", "adapters")
    )
    host = await start_inprocess(runtime, apps=apps)
    try:
        async with AsyncClient(host.target, key, timeout=600) as c:
            sampling = pb.SamplingParams(temperature=0.0, max_new_tokens=args.max_new_tokens)

            async def one(prompt: str, ref: str = ""):
                chat = pb.Chat(messages=[pb.ChatMessage(role=pb.CHAT_ROLE_USER, content=prompt)])
                return await c.generation.Generate(
                    pb.GenerateRequest(chat=chat, sampling=sampling, adapter=common_pb2.AdapterRef(ref=ref))
                )

            await one("warm up")
            started = time.perf_counter()
            sem = asyncio.Semaphore(args.concurrency)

            async def bounded(i: int):
                async with sem:
                    return await one(PROMPTS[i % len(PROMPTS)])

            responses = await asyncio.gather(*(bounded(i) for i in range(args.requests)))
            grpc_s = time.perf_counter() - started
            grpc_tokens = sum(r.summary.usage.completion_tokens for r in responses)

            for d in adapter_dirs[:2]:
                cfg = _json.loads((d / "adapter_config.json").read_text())
                cfg["base_model_name_or_path"] = "smollm2-135m-instruct"
                (d / "adapter_config.json").write_text(_json.dumps(cfg))
                await c.adapters.UploadAdapterVersion(upload_requests(d, adapter_name="swap"))
            await c.adapters.SetAlias(apb.SetAliasRequest(adapter_name="swap", alias="production", version=1))
            v2 = (
                await c.adapters.Resolve(apb.ResolveRequest(ref=common_pb2.AdapterRef(ref="swap@v2")))
            ).version_id
            # Open-loop load: a request every 100 ms whatever the latency, so the time a new
            # version takes to appear is not hidden behind slow requests.
            seen: list[tuple[float, str]] = []
            failures = 0

            inflight = asyncio.Semaphore(8)  # stay below the per-tenant concurrency limit

            async def probe():
                nonlocal failures
                async with inflight:
                    t0 = time.monotonic()
                    try:
                        r = await one("Say hello.", "swap")
                        seen.append((t0, r.summary.adapter_version_id))
                    except Exception:  # noqa: BLE001 - counted: the target is zero
                        failures += 1

            probes = []
            for _ in range(10):
                probes.append(asyncio.create_task(probe()))
                await asyncio.sleep(0.1)
            await c.adapters.SetAlias(apb.SetAliasRequest(adapter_name="swap", alias="production", version=2))
            moved = time.monotonic()
            while time.monotonic() - moved < 4.0:
                probes.append(asyncio.create_task(probe()))
                await asyncio.sleep(0.1)
            await asyncio.gather(*probes)
            # time from the move until every later request got the new version
            stale = [t0 - moved for t0, v in seen if t0 > moved and v != v2]
            switch_s = max(stale, default=0.0)
    finally:
        await host.stop(0)
        runtime.db.dispose()
    return {
        "grpc": {"tokens": grpc_tokens, "seconds": grpc_s, "tokens_per_s": grpc_tokens / grpc_s},
        "hot_swap": {
            "switch_time_s": switch_s,
            "failed_requests": failures,
            "requests": len(seen),
        },
    }


def through_ray_serve(args, work: Path) -> dict:
    """The same workload through Ray Serve's gRPC proxy (generation + adapters applications)."""
    import socket

    from lorag import serving
    from lorag.apps import APPS
    from lorag.cli import bootstrap
    from lorag.client import AsyncClient
    from lorag.common.settings import LoragSettings
    from lorag.generation.v1 import generation_pb2 as pb

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    settings = LoragSettings(data_dir=work / "ray-data", grpc_port=free_port())
    key = bootstrap(settings)
    apps = tuple(a for a in APPS if a.name in ("generation", "adapters"))
    endpoint = serving.start(settings, apps=apps, http_port=free_port())

    async def run() -> tuple[int, float]:
        async with AsyncClient(endpoint.grpc_target, key, timeout=600) as c:
            sampling = pb.SamplingParams(temperature=0.0, max_new_tokens=args.max_new_tokens)

            async def one(prompt: str):
                chat = pb.Chat(messages=[pb.ChatMessage(role=pb.CHAT_ROLE_USER, content=prompt)])
                return await c.generation.Generate(pb.GenerateRequest(chat=chat, sampling=sampling))

            await one("warm up")
            sem = asyncio.Semaphore(args.concurrency)

            async def bounded(i: int):
                async with sem:
                    return await one(PROMPTS[i % len(PROMPTS)])

            started = time.perf_counter()
            responses = await asyncio.gather(*(bounded(i) for i in range(args.requests)))
            return sum(r.summary.usage.completion_tokens for r in responses), time.perf_counter() - started

    try:
        tokens, seconds = asyncio.run(run())
    finally:
        serving.shutdown()
    return {"ray_serve": {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--adapters", type=int, default=8)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternating base/mixed rounds (median kept)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("measuring the engine (base, mixed adapters, naive, raw generate) ...", flush=True)
        engine = engine_ratios(args, work)
        print("measuring gRPC and hot swap ...", flush=True)
        served = asyncio.run(grpc_and_hot_swap(args, work, sorted((work / "adapters").iterdir())))
        print("measuring through Ray Serve's gRPC proxy ...", flush=True)
        ray = through_ray_serve(args, work)
    results = {**engine, **served, **ray}
    tps = {k: v["tokens_per_s"] for k, v in results.items() if "tokens_per_s" in v}
    report = {
        "benchmark": "generation",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": results,
        "ratios": {
            "mixed_over_base": tps["mixed"] / tps["base"],
            "mixed_over_naive": tps["mixed"] / tps["naive_set_adapter"],
            "grpc_over_raw_generate": tps["grpc"] / tps["raw_generate"],
            "ray_serve_over_raw_generate": tps["ray_serve"] / tps["raw_generate"],
        },
        "targets": {
            "mixed_over_base": 0.8,
            "mixed_over_naive": 3.0,
            "grpc_over_raw_generate": 0.9,
            "ray_serve_over_raw_generate": 0.9,
        },
    }
    (args.out / "bench_generation.json").write_text(json.dumps(report, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(list(tps), list(tps.values()), color="#4c72b0")
    ax.set_ylabel("generated tokens / s")
    ax.set_title(f"SmolLM2-135M, greedy, {args.requests} requests, batch {args.concurrency}")
    fig.tight_layout()
    fig.savefig(args.out / "bench_generation.png", dpi=110)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Foundation benchmark: cost of lorag's RPC plumbing under both hosts, measured side by side.

Times the same authenticated unary RPC (AdminService.WhoAmI) sequentially and with concurrent
callers, (a) against the in-process grpc.aio host and (b) through Ray Serve's gRPC proxy, and
reports the latency ratio (b)/(a). Writes JSON and a PNG chart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/targets.py
from targets import check, machine, print_targets  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _measure(target: str, key: str, *, sequential: int, concurrency: int, per_worker: int) -> dict:
    from lorag.admin.v1 import admin_pb2 as pb
    from lorag.client import AsyncClient

    async with AsyncClient(target, key, timeout=30) as c:
        for _ in range(20):  # warm up channel, caches, replicas
            await c.admin.WhoAmI(pb.WhoAmIRequest())
        lat = []
        for _ in range(sequential):
            t = time.perf_counter()
            await c.admin.WhoAmI(pb.WhoAmIRequest())
            lat.append(time.perf_counter() - t)

        async def worker():
            for _ in range(per_worker):
                await c.admin.WhoAmI(pb.WhoAmIRequest())

        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t
    lat.sort()
    return {
        "p50_ms": 1000 * statistics.median(lat),
        "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))],
        "mean_ms": 1000 * statistics.fmean(lat),
        "throughput_rps": concurrency * per_worker / elapsed,
        "calls": sequential + concurrency * per_worker,
    }


async def _inprocess(data_dir: Path, args) -> dict:
    from lorag.common.hosts import start_inprocess
    from lorag.common.rpc import Runtime
    from lorag.common.settings import LoragSettings

    runtime = Runtime.build(LoragSettings(data_dir=data_dir))
    key = runtime.tenants.bootstrap()
    host = await start_inprocess(runtime)
    try:
        return await _measure(host.target, key, **vars(args))
    finally:
        await host.stop(0)
        runtime.close()


def _ray(data_dir: Path, args) -> dict:
    from lorag import serving
    from lorag.cli import bootstrap
    from lorag.common.settings import LoragSettings

    settings = LoragSettings(data_dir=data_dir, grpc_port=_free_port())
    key = bootstrap(settings)
    endpoint = serving.start(settings, http_port=_free_port())
    try:
        return asyncio.run(_measure(endpoint.grpc_target, key, **vars(args)))
    finally:
        serving.shutdown()


def _chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hosts = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric, label in (
        (axes[0], "p50_ms", "p50 latency (ms)"),
        (axes[1], "throughput_rps", "requests/s"),
    ):
        ax.bar(hosts, [results[h][metric] for h in hosts], color=["#4c72b0", "#dd8452"])
        ax.set_title(label)
    fig.suptitle("AdminService.WhoAmI: in-process grpc.aio vs Ray Serve gRPC proxy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--per-worker", type=int, default=25)
    ns = parser.parse_args()
    out = ns.out
    del ns.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        results = {"in-process": asyncio.run(_inprocess(Path(a), ns)), "ray-serve": _ray(Path(b), ns)}
    report = {
        "benchmark": "rpc_plumbing",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "params": vars(ns),
        "results": results,
        "ratios": {
            "ray_over_inprocess_p50": results["ray-serve"]["p50_ms"] / results["in-process"]["p50_ms"],
            "inprocess_over_ray_throughput": results["in-process"]["throughput_rps"]
            / results["ray-serve"]["throughput_rps"],
        },
    }
    report["machine"].update(machine())
    report["targets"] = [
        check("rpc_ray_proxy_over_inprocess_p50", report["ratios"]["ray_over_inprocess_p50"])
    ]
    print_targets(report["targets"])
    (out / "bench_rpc.json").write_text(json.dumps(report, indent=2))
    _chart(results, out / "bench_rpc.png")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

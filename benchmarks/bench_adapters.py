"""Adapter registry benchmark, measured side by side in one run (in-process gRPC host, SQLite, local blobs).

1. Upload throughput of a realistic adapter (rank 64 on every module of all 30 SmolLM2-135M layers,
   about 78 MB) with 1 MiB chunks versus 64 KiB chunks (the ratio shows why clients send ~1 MiB).
2. Resolving a bare name per request: one Resolve RPC each versus an AdapterCache hit (local routing).
3. Download of the same adapter (server stream, hashes verified by the client).
Writes DIR/bench_adapters.json and DIR/bench_adapters.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support (synthetic adapters)


def _p50_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


async def run(args) -> dict:
    from lorag.adapters.cache import AdapterCache
    from lorag.adapters.clients import GrpcRegistryClient
    from lorag.adapters.transfer import awrite_download, upload_requests
    from lorag.adapters.v1 import adapters_pb2 as pb
    from lorag.apps import APPS_BY_NAME
    from lorag.client import AsyncClient
    from lorag.common.hosts import start_inprocess
    from lorag.common.rpc import Runtime
    from lorag.common.settings import LoragSettings
    from lorag.common.tenancy import Role
    from lorag.common.v1 import common_pb2
    from tests.support.adapters import synthetic_llama_adapter

    tmp = Path(tempfile.mkdtemp(prefix="lorag-bench-adapters-"))
    targets = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    adapters = [
        synthetic_llama_adapter(tmp / f"a{i}", rank=64, targets=targets, layers=30, seed=i) for i in range(4)
    ]
    size = sum(p.stat().st_size for p in adapters[0].iterdir())
    runtime = Runtime.build(LoragSettings(data_dir=tmp / "data", max_message_bytes=8 * 1024 * 1024))
    runtime.tenants.create_tenant(tenant_id="bench", actor="bench")
    _, key = runtime.tenants.create_key(tenant_id="bench", role=Role.ADMIN, actor="bench")
    host = await start_inprocess(runtime, apps=(APPS_BY_NAME["adapters"],))
    out: dict = {"adapter_bytes": size, "machine": platform.platform(), "cpus": os.cpu_count()}
    try:
        async with AsyncClient(host.target, key, timeout=300, max_message_bytes=8 * 1024 * 1024) as c:
            modes = (("1MiB", 1 << 20), ("64KiB", 64 << 10))
            times: dict[str, list[float]] = {label: [] for label, _ in modes}
            for i in range(args.repeat):  # interleaved, so both modes see the same conditions
                for label, chunk in modes:
                    d = adapters[i % len(adapters)]
                    t = time.perf_counter()
                    await c.adapters.UploadAdapterVersion(
                        upload_requests(d, adapter_name=f"up-{label.lower()}-{i}", chunk_bytes=chunk)
                    )
                    times[label].append(time.perf_counter() - t)
            uploads = {
                label: {"seconds_p50": statistics.median(ts), "mb_per_s": size / 1e6 / statistics.median(ts)}
                for label, ts in times.items()
            }
            out["upload"] = uploads
            out["upload"]["ratio_64KiB_over_1MiB"] = (
                uploads["64KiB"]["seconds_p50"] / uploads["1MiB"]["seconds_p50"]
            )

            await c.adapters.SetAlias(
                pb.SetAliasRequest(adapter_name="up-1mib-0", alias="production", version=1)
            )
            rpc_lat = []
            for i in range(args.resolves):
                t = time.perf_counter()
                await c.adapters.Resolve(
                    pb.ResolveRequest(ref=common_pb2.AdapterRef(ref="up-1mib-0"), request_id=f"r{i}")
                )
                rpc_lat.append(time.perf_counter() - t)
            cache = AdapterCache(
                GrpcRegistryClient(c, "bench"),
                loader=lambda vid, path: vid,
                memory_budget_bytes=1 << 30,
                download_dir=tmp / "cache",
                watch=False,
                resolve_ttl_s=3600,
            )
            await cache.resolve("bench", "up-1mib-0", request_id="warm")
            hit_lat = []
            for i in range(args.resolves):
                t = time.perf_counter()
                await cache.resolve("bench", "up-1mib-0", request_id=f"r{i}")
                hit_lat.append(time.perf_counter() - t)
            out["resolve"] = {
                "rpc_p50_ms": _p50_ms(rpc_lat),
                "cache_hit_p50_ms": _p50_ms(hit_lat),
                "ratio_rpc_over_cache": statistics.median(rpc_lat) / statistics.median(hit_lat),
            }
            version = await c.adapters.Resolve(pb.ResolveRequest(ref=common_pb2.AdapterRef(ref="up-1mib-0")))
            t = time.perf_counter()
            await awrite_download(
                c.adapters.Download(pb.DownloadRequest(version_id=version.version_id)), tmp / "download"
            )
            elapsed = time.perf_counter() - t
            out["download"] = {"seconds": elapsed, "mb_per_s": size / 1e6 / elapsed}
    finally:
        await host.stop(0)
        runtime.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--resolves", type=int, default=300)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_adapters.json").write_text(json.dumps(result, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    up = result["upload"]
    a.bar(
        ["1 MiB chunks", "64 KiB chunks", "download"],
        [up["1MiB"]["mb_per_s"], up["64KiB"]["mb_per_s"], result["download"]["mb_per_s"]],
    )
    a.set_ylabel("MB/s")
    a.set_title(f"adapter of {result['adapter_bytes'] / 1e6:.0f} MB")
    r = result["resolve"]
    b.bar(["Resolve RPC", "AdapterCache hit"], [r["rpc_p50_ms"], r["cache_hit_p50_ms"]])
    b.set_ylabel("p50 latency (ms)")
    b.set_yscale("log")
    b.set_title(f"bare-name resolution (x{r['ratio_rpc_over_cache']:.0f})")
    fig.tight_layout()
    fig.savefig(args.out / "bench_adapters.png", dpi=100)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Load and quotas: noisy tenants far above their limits next to a quiet tenant, side by side.

Three processes on 127.0.0.1: the in-process gRPC host (the ``adapters`` application, which hosts
AdminService; limits set through the ``LORAG_RATE_LIMIT_*`` environment as an operator would),
a noise process (several noisy tenants, each offering ``noisy-rps`` — ten times its rate limit by
default — open loop and without retries, plus a stream of other tenants that come and go), and
this process, which drives a quiet tenant at a modest fixed rate (open loop) and samples the
server's RSS. Every tenant calls AdminService.ListApiKeys (a registry read).

Phases alternate on a shared wall-clock schedule: ``rounds`` x (solo, noise), ``phase-s`` each, so
the quiet tenant's p99 under noise and alone are measured side by side in one run. Reports the
ratio (target <= 2), the status codes of every call (target: no INTERNAL/UNKNOWN), the server's
own rejection counters, and the server's RSS in the second half of the run vs the first.
Bounded: every phase has a time limit, calls in flight are capped, the server stops by itself."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/targets.py
from targets import check, machine, print_targets  # noqa: E402

EDGE_S = 0.25  # samples this close to a phase boundary are not counted in either phase


# -- the server process ---------------------------------------------------------------------------
async def _serve(ready: Path, max_s: float) -> None:
    from lorag.apps import APPS
    from lorag.common.hosts import start_inprocess
    from lorag.common.rpc import Runtime
    from lorag.common.settings import load_settings

    runtime = Runtime.build(load_settings())
    key = runtime.tenants.bootstrap()
    host = await start_inprocess(runtime, apps=tuple(a for a in APPS if a.name == "adapters"), metrics_port=0)
    ready.write_text(json.dumps({"port": host.port, "metrics_port": host.metrics_port, "key": key}))
    deadline = time.monotonic() + max_s
    try:
        while time.monotonic() < deadline and ready.exists():  # the driver removes the file to stop us
            await asyncio.sleep(0.2)
    finally:
        await host.stop(0)
        runtime.close()


# -- calls --------------------------------------------------------------------------------------
#: The RPC every tenant calls: AdminService.ListApiKeys, a registry read (admin keys).
LIST_KEYS = "/lorag.admin.v1.AdminService/ListApiKeys"


def _method(channel):
    from lorag.admin.v1 import admin_pb2 as pb

    return channel.unary_unary(
        LIST_KEYS,
        request_serializer=pb.ListApiKeysRequest.SerializeToString,
        response_deserializer=pb.ListApiKeysResponse.FromString,
    )


def _md(key: str) -> tuple[tuple[str, str], ...]:
    return (("application", "adapters"), ("authorization", f"Bearer {key}"))


async def _call(method, key: str, timeout: float = 10.0) -> str:
    """One call without retries (the bench's clients misbehave on purpose); its status code."""
    import grpc

    from lorag.admin.v1 import admin_pb2 as pb

    try:
        await method(pb.ListApiKeysRequest(), metadata=_md(key), timeout=timeout)
        return "OK"
    except grpc.aio.AioRpcError as exc:
        return exc.code().name


async def _paced(
    method, key: str, *, rps: float, start: float, end: float, max_outstanding: int, record
) -> int:
    """Open loop: one call every 1/rps s from ``start`` to ``end`` (wall clock), at most
    ``max_outstanding`` in flight (a due call is skipped beyond that); ``record(started, ms, code)``.
    Returns the number of calls skipped."""
    pending: set[asyncio.Task] = set()
    skipped = 0

    async def one(started: float) -> None:
        t = time.perf_counter()
        code = await _call(method, key)
        record(started, 1000 * (time.perf_counter() - t), code)

    i = 0
    while True:
        due = start + i / rps
        if due >= end:
            break
        await asyncio.sleep(max(0.0, due - time.time()))
        if len(pending) < max_outstanding:
            task = asyncio.create_task(one(time.time()))
            pending.add(task)
            task.add_done_callback(pending.discard)
        else:
            skipped += 1
        i += 1
    if pending:
        await asyncio.wait(pending, timeout=15)
    return skipped


#: The phases of one round: the quiet tenant alone, next to noisy tenants held to the platform's
#: rate limit, and next to noisy tenants whose quota lifts the rate limit (the reference).
PHASES = ("solo", "limited", "unlimited")


def _windows(t0: float, phase_s: float, rounds: int) -> list[tuple[str, float, float]]:
    """(phase, wall-clock start, end) of every phase, in order."""
    n = len(PHASES)
    return [
        (kind, t0 + (n * r + k) * phase_s, t0 + (n * r + k + 1) * phase_s)
        for r in range(rounds)
        for k, kind in enumerate(PHASES)
    ]


def _phase_of(started: float, windows) -> str | None:
    """The phase a call started in, None within EDGE_S of a boundary."""
    for kind, start, end in windows:
        if start + EDGE_S <= started < end - EDGE_S:
            return kind
    return None


# -- the noise process --------------------------------------------------------------------------
async def _noise(target: str, keys: dict[str, list[str]], churn: list[str], args) -> dict:
    """In each noise phase every noisy tenant of that phase calls at ``noisy_rps``; tenants that
    come and go call alongside. Status counts per phase."""
    import grpc

    codes: dict[str, Counter[str]] = {kind: Counter() for kind in keys}
    churn_codes: Counter[str] = Counter()
    skipped = 0

    def count(into: Counter):
        return lambda started, ms, code: into.update([code])

    async def tenants_come_and_go(method, end: float) -> None:
        i = 0
        while time.time() < end and churn:
            churn_codes[await _call(method, churn[i % len(churn)])] += 1
            i += 1
            await asyncio.sleep(1.0 / args.churn_rps)

    channel = grpc.aio.insecure_channel(target)
    try:
        method = _method(channel)
        for kind, start, end in _windows(args.t0, args.phase_s, args.rounds):
            if kind not in keys:
                continue
            loops = [
                _paced(
                    method,
                    key,
                    rps=args.noisy_rps,
                    start=start,
                    end=end,
                    max_outstanding=args.noisy_outstanding,
                    record=count(codes[kind]),
                )
                for key in keys[kind]
            ]
            await asyncio.sleep(max(0.0, start - time.time()))
            results = await asyncio.gather(*loops, tenants_come_and_go(method, end))
            skipped += sum(r for r in results if r)
    finally:
        await channel.close()
    return {"noisy": {k: dict(v) for k, v in codes.items()}, "churn": dict(churn_codes), "skipped": skipped}


# -- the driver ---------------------------------------------------------------------------------
def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _latency(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50_ms": _percentile(values, 0.50),
        "p95_ms": _percentile(values, 0.95),
        "p99_ms": _percentile(values, 0.99),
    }


async def _create_tenants(
    target: str, operator_key: str, n: int, prefix: str, *, quota_rpm: int = 0
) -> list[str]:
    """``n`` tenants with an admin key each (and ``max_requests_per_minute`` when given), each
    called once so the server has read its quota. A refusal by the operator's own rate limit
    waits its hint and tries again (a refused call did nothing, so repeating it is safe)."""
    from lorag.client import AsyncClient
    from lorag.client.errors import ResourceExhaustedError

    keys = []
    async with AsyncClient(target, operator_key, timeout=60) as c:
        for i in range(n):
            for _ in range(50):
                try:
                    quota = {"max_requests_per_minute": quota_rpm} if quota_rpm else None
                    tenant = await c.admin.create_tenant(f"{prefix}-{i}", admin_key=True, quota=quota)
                    break
                except ResourceExhaustedError as exc:
                    if exc.retry_after_s is None:
                        raise
                    await asyncio.sleep(exc.retry_after_s)
            else:
                raise SystemExit("the operator's calls stayed refused")
            keys.append(tenant.admin_api_key)
    import grpc

    async with grpc.aio.insecure_channel(target) as ch:
        for key in keys:
            await _call(_method(ch), key)
    return keys


def _rejections(metrics_port: int) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    out: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "lorag_rate_limit_rejections":
            for s in family.samples:
                if s.name.endswith("_total"):
                    out[s.labels["limit"]] += int(s.value)
    return dict(out)


async def _quiet(target: str, key: str, args, rss: list[tuple[float, float]], server_pid: int) -> list:
    """The quiet tenant at ``quiet_rps`` (open loop) over the whole schedule; (start, ms, code)."""
    import grpc
    import psutil

    server = psutil.Process(server_pid)
    samples: list[tuple[float, float, str]] = []
    end = args.t0 + len(PHASES) * args.rounds * args.phase_s

    async def sample_rss() -> None:
        while time.time() < end:
            rss.append((time.time() - args.t0, server.memory_info().rss / 2**20))
            await asyncio.sleep(0.5)

    async with grpc.aio.insecure_channel(target) as ch:
        method = _method(ch)
        for _ in range(5):  # warm the channel and the server's key cache
            await _call(method, key)
        sampler = asyncio.create_task(sample_rss())
        await _paced(
            method,
            key,
            rps=args.quiet_rps,
            start=args.t0,
            end=end,
            max_outstanding=64,
            record=lambda started, ms, code: samples.append((started, ms, code)),
        )
        await sampler
    return samples


def run(args) -> dict:
    """The whole benchmark (also called by the integration tier with small arguments)."""
    src = Path(__file__).resolve().parent.parent / "services"
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready.json"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH", "")])),
            "LORAG_DATA_DIR": str(Path(tmp) / "data"),
            "LORAG_LOG_LEVEL": "WARNING",
            "LORAG_RATE_LIMIT_REQUESTS_PER_S": str(args.rate),
            "LORAG_RATE_LIMIT_BURST": str(args.burst),
            "LORAG_RATE_LIMIT_MAX_CONCURRENT": str(args.max_concurrent),
            "LORAG_RATE_LIMIT_IDLE_S": str(args.idle_s),
        }
        budget = 90 + len(PHASES) * args.rounds * args.phase_s
        server = subprocess.Popen(
            [sys.executable, __file__, "serve", "--ready", str(ready), "--max-s", str(budget)], env=env
        )
        noise = None
        try:
            deadline = time.monotonic() + 60
            while not ready.exists() or not ready.read_text():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
            info = json.loads(ready.read_text())
            target = f"127.0.0.1:{info['port']}"
            noisy_keys = {
                "limited": asyncio.run(_create_tenants(target, info["key"], args.noisy_tenants, "noisy")),
                "unlimited": asyncio.run(
                    _create_tenants(target, info["key"], args.noisy_tenants, "unlimited", quota_rpm=10**9)
                ),
            }
            churn_keys = asyncio.run(_create_tenants(target, info["key"], args.churn_tenants, "churn"))
            (quiet_key,) = asyncio.run(_create_tenants(target, info["key"], 1, "quiet"))
            args.t0 = time.time() + 3.0  # the noise process starts meanwhile
            spec = Path(tmp) / "noise.json"
            plain = {k: v for k, v in vars(args).items() if isinstance(v, int | float | str)}
            spec.write_text(
                json.dumps({"target": target, "keys": noisy_keys, "churn": churn_keys, "args": plain})
            )
            noise = subprocess.Popen(
                [sys.executable, __file__, "noise", "--spec", str(spec)],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            rss: list[tuple[float, float]] = []
            samples = asyncio.run(_quiet(target, quiet_key, args, rss, server.pid))
            out, _ = noise.communicate(timeout=60)
            noise_counts = json.loads(out.strip().splitlines()[-1])
            server_rejections = _rejections(info["metrics_port"])
        finally:
            if noise is not None and noise.poll() is None:
                noise.kill()
            ready.unlink(missing_ok=True)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    return _report(args, samples, noise_counts, server_rejections, rss)


def _report(args, samples, noise_counts, server_rejections, rss) -> dict:
    windows = _windows(args.t0, args.phase_s, args.rounds)
    latencies: dict[str, list[float]] = {kind: [] for kind in PHASES}
    for started, ms, code in samples:
        kind = _phase_of(started, windows)
        if code == "OK" and kind is not None:
            latencies[kind].append(ms)
    quiet = {kind: _latency(values) for kind, values in latencies.items()}
    quiet_codes = Counter(code for _, _, code in samples)
    all_codes = Counter(quiet_codes)
    all_codes.update(noise_counts["churn"])
    for counts in noise_counts["noisy"].values():
        all_codes.update(counts)
    internal_unknown = all_codes.get("INTERNAL", 0) + all_codes.get("UNKNOWN", 0)
    other = sum(n for c, n in all_codes.items() if c not in {"OK", "RESOURCE_EXHAUSTED"})
    half = len(PHASES) * args.rounds * args.phase_s / 2
    first = [m for t, m in rss if 0 <= t < half]
    second = [m for t, m in rss if t >= half]
    growth = (max(second) - max(first)) if first and second else None

    def ratio(kind: str) -> float | None:
        a, b = quiet[kind]["p99_ms"], quiet["solo"]["p99_ms"]
        return a / b if a and b else None

    phase_s = args.rounds * args.phase_s  # time spent in each kind of phase
    noisy = {
        kind: {
            "codes": counts,
            "offered_rps": sum(counts.values()) / phase_s / args.noisy_tenants,
            "admitted_rps": counts.get("OK", 0) / phase_s / args.noisy_tenants,
        }
        for kind, counts in noise_counts["noisy"].items()
    }
    limited = noise_counts["noisy"].get("limited", {})
    report = {
        "benchmark": "load",
        "params": {
            k: v for k, v in vars(args).items() if isinstance(v, int | float) and k not in {"t0", "max_s"}
        },
        "quiet": {**quiet, "codes": dict(quiet_codes)},
        "noisy_per_tenant": noisy,
        "noisy_skipped_at_the_client": noise_counts["skipped"],
        "churn": {"codes": noise_counts["churn"]},
        "server_rejections": server_rejections,
        "errors": {"internal_or_unknown": internal_unknown, "other_than_ok_or_resource_exhausted": other},
        "server_rss_mib": {
            "first_half_max": max(first) if first else None,
            "second_half_max": max(second) if second else None,
            "growth": growth,
            "samples": [[round(t, 2), round(m, 1)] for t, m in rss],
        },
        "ratios": {
            "quiet_p99_limited_noise_over_solo": ratio("limited"),
            "quiet_p99_unlimited_noise_over_solo": ratio("unlimited"),
        },
    }
    report["machine"] = machine()
    report["targets"] = [
        check(
            "load_quiet_p99_noise_over_solo",
            ratio("limited"),
            solo_p99_ms=quiet["solo"]["p99_ms"],
            noise_p99_ms=quiet["limited"]["p99_ms"],
        ),
        check(
            "load_quiet_p99_unlimited_noise_over_solo",
            ratio("unlimited"),
            noise_p99_ms=quiet["unlimited"]["p99_ms"],
        ),
        check("load_internal_or_unknown_errors", internal_unknown, other_errors=other),
        check("load_server_rss_growth_mib", growth),
        check(
            "load_noisy_resource_exhausted_share",
            limited.get("RESOURCE_EXHAUSTED", 0) / sum(limited.values()) if limited else None,
        ),
    ]
    return report


def _chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    q = report["quiet"]
    labels = ["p50", "p95", "p99"]
    x = range(len(labels))
    series = (
        ("alone", q["solo"], "#4c72b0"),
        ("noisy neighbour, rate-limited", q["limited"], "#dd8452"),
        ("noisy neighbour, no rate limit", q["unlimited"], "#c44e52"),
    )
    for offset, (name, lat, color) in enumerate(series):
        values = [lat[f"{p}_ms"] or 0 for p in labels]
        axes[0].bar([i + 0.27 * offset for i in x], values, width=0.27, label=name, color=color)
    axes[0].set_xticks([i + 0.27 for i in x], labels)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("ms")
    axes[0].set_title("quiet tenant ListApiKeys latency")
    axes[0].legend()
    samples = report["server_rss_mib"]["samples"]
    axes[1].plot([s[0] for s in samples], [s[1] for s in samples], color="#55a868")
    p = report["params"]["phase_s"]
    for r in range(report["params"]["rounds"]):
        for k, color in ((1, "#dd8452"), (2, "#c44e52")):
            start = (len(PHASES) * r + k) * p
            axes[1].axvspan(start, start + p, color=color, alpha=0.15)
    axes[1].set_xlabel("s (shaded: noise phases)")
    axes[1].set_ylabel("server RSS (MiB)")
    axes[1].set_title("server memory")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", nargs="?", default="bench", choices=["bench", "serve", "noise"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--rounds", type=int, default=4, help="rounds of (solo, limited, unlimited) phases")
    parser.add_argument("--phase-s", type=float, default=4.0, help="length of one phase")
    parser.add_argument("--quiet-rps", type=float, default=15.0, help="the quiet tenant's fixed rate")
    parser.add_argument("--noisy-tenants", type=int, default=1)
    parser.add_argument("--noisy-rps", type=float, default=300.0, help="offered rate of each noisy tenant")
    parser.add_argument("--noisy-outstanding", type=int, default=64, help="calls in flight per noisy tenant")
    parser.add_argument("--churn-tenants", type=int, default=20, help="other tenants that come and go")
    parser.add_argument("--churn-rps", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=30.0, help="LORAG_RATE_LIMIT_REQUESTS_PER_S")
    parser.add_argument("--burst", type=int, default=30, help="LORAG_RATE_LIMIT_BURST")
    parser.add_argument("--max-concurrent", type=int, default=8, help="LORAG_RATE_LIMIT_MAX_CONCURRENT")
    parser.add_argument(
        "--idle-s", type=float, default=2.0, help="LORAG_RATE_LIMIT_IDLE_S (short: churn expires)"
    )
    parser.add_argument("--ready", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--max-s", type=float, default=600.0, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    return parser


def main() -> None:
    ns = _parser().parse_args()
    if ns.command == "serve":
        asyncio.run(_serve(ns.ready, ns.max_s))
        return
    if ns.command == "noise":
        spec = json.loads(ns.spec.read_text())
        args = argparse.Namespace(**spec["args"])
        print(json.dumps(asyncio.run(_noise(spec["target"], spec["keys"], spec["churn"], args))), flush=True)
        return
    ns.out.mkdir(parents=True, exist_ok=True)
    report = run(ns)
    print_targets(report["targets"])
    (ns.out / "bench_load.json").write_text(json.dumps(report, indent=2))
    _chart(report, ns.out / "bench_load.png")
    summary = {k: v for k, v in report.items() if k != "server_rss_mib"}
    print(
        json.dumps(
            {
                **summary,
                "server_rss_mib": {k: v for k, v in report["server_rss_mib"].items() if k != "samples"},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

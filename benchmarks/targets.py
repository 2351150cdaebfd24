"""The targets of the benchmarks (from the issues that set them) and how a report states them.

Every ``bench_*.py`` adds ``"targets": [check(...), ...]`` to its JSON report: the figure, the
target, whether it was met (None when the issues set no target: the figure is reported only).
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

#: name -> (operator, target, where it comes from)
TARGETS: dict[str, tuple[str, float | None, str]] = {
    "embedding_batched_over_unbatched": (">=", 3.0, "embedding/reranking issue: batching at concurrency 32"),
    "retrieval_milvus_over_numpy_p50": ("report", None, "retrieval issue: ratio reported, no target"),
    "generation_mixed_over_base": (">=", 0.8, "generation issue (vLLM documents 0.66)"),
    "generation_mixed_over_naive": (">=", 3.0, "generation issue: naive set_adapter server"),
    "generation_grpc_over_raw": (">=", 0.9, "generation issue: gRPC in-process host"),
    "generation_ray_serve_over_raw": (">=", 0.9, "generation issue: gRPC + Ray Serve"),
    "generation_grpc_over_engine": ("report", None, "gRPC in-process host ÷ the engine it serves"),
    "generation_ray_serve_over_engine": ("report", None, "gRPC + Ray Serve ÷ the engine it serves"),
    "hot_swap_switch_time_s": ("<", 2.0, "generation issue: alias move to every replica"),
    "hot_swap_failed_requests": ("==", 0, "generation issue: zero failed requests"),
    "rpc_ray_proxy_over_inprocess_p50": ("report", None, "foundation issue: ratio reported"),
    "ask_p95_ms": ("report", None, "no target set: reported per concurrency"),
    "ingest_over_raw_embedding": ("report", None, "no target set: share of raw embedding throughput"),
    "memory_per_adapter_mib": ("report", None, "no target set: RSS and tensor bytes per adapter"),
    "load_quiet_p99_noise_over_solo": ("<=", 2.0, "load issue: quiet tenant p99 next to a noisy one ÷ alone"),
    "load_quiet_p99_unlimited_noise_over_solo": (
        "report",
        None,
        "reference: the same noise with the rate limit lifted by the tenant's quota",
    ),
    "load_internal_or_unknown_errors": (
        "==",
        0,
        "load issue: limits answer RESOURCE_EXHAUSTED, never INTERNAL",
    ),
    "load_server_rss_growth_mib": ("<=", 16.0, "load issue: server RSS, second half of the run vs first"),
    "load_noisy_resource_exhausted_share": ("report", None, "no target set: share of noisy calls refused"),
}


def check(name: str, measured: float | None, **extra: Any) -> dict:
    """One target line of a report."""
    op, target, source = TARGETS[name]
    met: bool | None = None
    if target is not None and measured is not None:
        met = {
            ">=": measured >= target,
            "<=": measured <= target,
            "<": measured < target,
            "==": measured == target,
        }[op]
    return {
        "name": name,
        "measured": measured,
        "op": op,
        "target": target,
        "met": met,
        "source": source,
        **extra,
    }


def machine() -> dict:
    """The machine a report was measured on."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def print_targets(targets: list[dict]) -> None:
    for t in targets:
        verdict = {True: "MET", False: "NOT MET", None: "reported"}[t["met"]]
        goal = "" if t["target"] is None else f" (target {t['op']} {t['target']})"
        value = t["measured"]
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"  {t['name']}: {shown}{goal} -> {verdict}", flush=True)

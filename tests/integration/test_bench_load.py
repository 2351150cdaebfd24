"""The load benchmark with small arguments: every refusal is RESOURCE_EXHAUSTED, never INTERNAL.

Runs ``benchmarks/bench_load.py`` end to end (server, noise and quiet processes on 127.0.0.1)
for a few seconds. It asserts status codes and counters only; the latency ratios it measures
are reported by ``make bench``, not checked here.
"""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_noisy_tenants_are_refused_with_resource_exhausted_and_nothing_else():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_load
    finally:
        sys.path.remove(str(BENCHMARKS))
    args = bench_load._parser().parse_args(
        ["--rounds", "1", "--phase-s", "1.5", "--churn-tenants", "3", "--noisy-rps", "200", "--rate", "20"]
    )
    report = bench_load.run(args)
    assert report["errors"] == {"internal_or_unknown": 0, "other_than_ok_or_resource_exhausted": 0}
    limited = report["noisy_per_tenant"]["limited"]["codes"]
    assert limited.get("RESOURCE_EXHAUSTED", 0) > 0 and limited.get("OK", 0) > 0
    assert set(report["quiet"]["codes"]) == {"OK"}  # the quiet tenant stays within its limits
    seen = [v["codes"] for v in report["noisy_per_tenant"].values()] + [report["churn"]["codes"]]
    refused = sum(codes.get("RESOURCE_EXHAUSTED", 0) for codes in seen)
    server = report["server_rejections"]
    assert server.get("requests_per_s", 0) + server.get("concurrency", 0) >= refused  # counted by the server
    assert report["server_rss_mib"]["samples"]

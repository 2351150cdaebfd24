"""Collect the targets of every ``bench_*.json`` in a results directory into one table.

Writes ``<dir>/summary.json`` and ``<dir>/summary.md`` (the Markdown table the README quotes)
and prints the table. Usage: ``python benchmarks/summarize.py benchmarks/results``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
    return str(v)


def rows(results: Path) -> list[dict]:
    out = []
    for path in sorted(results.glob("bench_*.json")):
        report = json.loads(path.read_text())
        for t in report.get("targets") or []:
            extra = {
                k: v for k, v in t.items() if k not in {"name", "measured", "op", "target", "met", "source"}
            }
            out.append({"file": path.name, "machine": report.get("machine", {}), **t, "context": extra})
    return out


def markdown(items: list[dict]) -> str:
    lines = ["| benchmark | figure | measured | target | met |", "| --- | --- | --- | --- | --- |"]
    for t in items:
        context = ", ".join(f"{k} {v}" for k, v in t["context"].items())
        figure = t["name"] + (f" ({context})" if context else "")
        target = "—" if t["target"] is None else f"{t['op']} {t['target']}"
        met = {True: "yes", False: "**no**", None: "reported"}[t["met"]]
        lines.append(
            f"| {t['file'].removesuffix('.json')} | {figure} | {_value(t['measured'])} | {target} | {met} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results")
    items = rows(results)
    if not items:
        raise SystemExit(f"no bench_*.json with targets in {results}")
    (results / "summary.json").write_text(json.dumps(items, indent=2) + "\n")
    table = markdown(items)
    (results / "summary.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

"""Output of the evaluation runs: a rich table on the terminal, JSON and a PNG chart on disk."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    import os

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_json(report: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def retrieval_table(report: dict):
    from rich.table import Table

    table = Table(title="retrieval (document level)", show_edge=False)
    for name in ("set", "method", "nDCG@10", "Recall@100", "MRR@10", "ms/query"):
        table.add_column(name, justify="left" if name in ("set", "method") else "right")
    for s in report["sets"]:
        label = f"{s['set']} ({s['documents']} docs, {s['questions']} q)"
        for i, (method, m) in enumerate(s["methods"].items()):
            table.add_row(
                label if i == 0 else "",
                method,
                f"{m['ndcg@10']:.3f}",
                f"{m['recall@100']:.3f}",
                f"{m['mrr@10']:.3f}",
                f"{m['mean_ms']:.0f}",
            )
        table.add_section()
    return table


def retrieval_chart(report: dict, path: Path) -> Path:
    """Grouped bars: nDCG@10 / MRR@10 / Recall@100 per method, one panel per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = report["sets"]
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4), squeeze=False)
    names = ("ndcg@10", "mrr@10", "recall@100")
    for ax, s in zip(axes[0], sets, strict=True):
        methods = list(s["methods"])
        width = 0.8 / len(names)
        for j, metric in enumerate(names):
            values = [s["methods"][m][metric] for m in methods]
            xs = [i + (j - 1) * width for i in range(len(methods))]
            bars = ax.bar(xs, values, width, label=metric)
            if metric == "ndcg@10":
                ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(range(len(methods)), methods, rotation=20, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{s['set']}: {s['documents']} docs, {s['questions']} questions")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

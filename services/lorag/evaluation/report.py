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


def _pyplot():
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - depends on the installation
        raise RuntimeError("charts need matplotlib: pip install 'lorag[eval]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    plt = _pyplot()

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


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def rag_table(report: dict):
    from rich.table import Table

    a, r = report["answers"], report["rejection"]
    table = Table(title=f"RAG on {report['set']} ({report['documents']} docs)", show_edge=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("over", justify="left")
    rows = [
        ("exact match", a["exact_match"], f"{a['questions']} answers"),
        ("F1", a["f1"], f"{a['questions']} answers"),
        ("answer contains gold", a["answer_contained"], f"{a['questions']} answers"),
        ("citation precision", a["citation_precision"], f"{a['answers_with_citations']} answers citing"),
        ("context relevance (gold share)", a["context_relevance"], "passages in the prompt"),
        ("faithfulness", a["faithfulness"], a["judge"]),
        ("context recall", report["context_recall"], f"{report['answerable_questions']} questions"),
    ]
    for name, value, over in rows:
        table.add_row(name, _fmt(value), over)
    tuned = report.get("answers_with_adapter")
    if tuned:
        table.add_section()
        for name, key in (
            ("with adapter: exact match", "exact_match"),
            ("with adapter: F1", "f1"),
            ("with adapter: answer contains gold", "answer_contained"),
            ("with adapter: faithfulness", "faithfulness"),
        ):
            table.add_row(name, _fmt(tuned[key]), f"{tuned['questions']} answers")
    table.add_section()
    for n in report["noise_robustness"]:
        table.add_row(
            f"accuracy, {n['noise_passages']} noise passages",
            _fmt(n["accuracy"]),
            f"{n['questions']} questions (F1 {_fmt(n['f1'])})",
        )
    table.add_section()
    for label, point in (("chosen threshold", r["chosen"]), ("previous default", r["current_default"])):
        if point is None:
            continue
        table.add_row(
            f"{label} {point['threshold']:.2f}: negative rejection",
            _fmt(point["negative_rejection_rate"]),
            f"{report['unanswerable_questions']} unanswerable; false rejection "
            f"{_fmt(point['false_rejection_rate'])} of {report['answerable_questions']} answerable",
        )
    return table


def rag_chart(report: dict, path: Path) -> Path:
    """Left: answer/rejection rates over the threshold sweep; right: noise robustness."""
    plt = _pyplot()

    r = report["rejection"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    xs = [p["threshold"] for p in r["sweep"]]
    left.plot(xs, [p["answer_rate"] for p in r["sweep"]], label="answerable answered")
    left.plot(xs, [p["rejection_rate"] for p in r["sweep"]], label="unanswerable rejected")
    left.axvline(
        r["chosen"]["threshold"], color="k", ls="--", lw=1, label=f"chosen {r['chosen']['threshold']:.2f}"
    )
    if r["current_default"] is not None:
        left.axvline(
            r["current_default"]["threshold"],
            color="grey",
            ls=":",
            lw=1,
            label=f"previous {r['current_default']['threshold']:.2f}",
        )
    left.set_xlabel(f"min_relevance ({report['reranker']['scoring_method']})")
    left.set_ylim(0, 1.05)
    left.set_title(f"negative rejection, {report['set']}")
    left.legend(fontsize=8)
    noise = report["noise_robustness"]
    labels = [str(n["noise_passages"]) for n in noise]
    right.bar(labels, [n["accuracy"] for n in noise], color="tab:green")
    right.set_xlabel("irrelevant passages added to the gold one")
    right.set_ylabel("answer contains gold")
    right.set_ylim(0, 1.05)
    right.set_title("noise robustness")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

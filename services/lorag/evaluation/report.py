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
            f"{label} {point['threshold']:g}: negative rejection",
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
        r["chosen"]["threshold"], color="k", ls="--", lw=1, label=f"chosen {r['chosen']['threshold']:g}"
    )
    if r["current_default"] is not None:
        left.axvline(
            r["current_default"]["threshold"],
            color="grey",
            ls=":",
            lw=1,
            label=f"previous {r['current_default']['threshold']:g}",
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


_ADAPTER_METRICS = (
    ("exact match", "exact_match"),
    ("F1", "f1"),
    ("answer contains gold", "answer_contained"),
    ("citation precision", "citation_precision"),
    ("faithfulness", "faithfulness"),
)


def adapter_table(report: dict):
    from rich.table import Table

    d, g, job = report["domain"], report["general"], report["training"]["job"]
    table = Table(
        title=f"adapter trained on {d['set']} ({d['train_questions']} questions of {d['train_paragraphs']} "
        f"paragraphs) vs the base model",
        show_edge=False,
    )
    for name in ("split", "metric", "base", "adapter", "change"):
        table.add_column(name, justify="left" if name in ("split", "metric") else "right")
    s = report["summary"]
    for split, label in (("domain", f"{d['set']} held out"), ("general", g["set"])):
        base = s["base"][split]
        tuned = s.get("adapter", {}).get(split)
        for i, (name, key) in enumerate(_ADAPTER_METRICS):
            change = (report["deltas"] or {}).get(split, {}).get(key)
            table.add_row(
                f"{label} ({base['questions']} q)" if i == 0 else "",
                name,
                _fmt(base[key]),
                _fmt(tuned[key]) if tuned else "n/a",
                "n/a" if change is None else f"{change:+.3f}",
            )
        table.add_section()
    m = job["metrics"]
    if "task_loss" in m:
        table.add_row(
            "training job", "held-out task loss", _fmt(m.get("base_task_loss")), _fmt(m["task_loss"]), ""
        )
        table.add_row("", "general loss", _fmt(m.get("base_general_loss")), _fmt(m.get("general_loss")), "")
    table.add_row("", f"job {job['phase']}", "", job["message"][:60], "")
    if report["verdict"]:
        v = report["verdict"]
        table.add_section()
        table.add_row(
            "verdict",
            v["rule"],
            "",
            f"helps domain: {v['helps_domain']}",
            f"general holds: {v['general_within_tolerance']}",
        )
    return table


def adapter_chart(report: dict, path: Path) -> Path:
    """Left: answer metrics of base and adapter per split; right: the job's held-out losses."""
    plt = _pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 1]})
    s = report["summary"]
    keys = ("exact_match", "f1", "answer_contained")
    groups = [(split, arm) for split in ("domain", "general") for arm in ("base", "adapter") if arm in s]
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        values = [s[arm][split][key] or 0.0 for split, arm in groups]
        bars = left.bar([i + (j - 1) * width for i in range(len(groups))], values, width, label=key)
        left.bar_label(bars, fmt="%.2f", fontsize=7)
    names = {"domain": f"{report['domain']['set']} held out", "general": report["general"]["set"]}
    left.set_xticks(range(len(groups)), [f"{names[split]}\n{arm}" for split, arm in groups], fontsize=8)
    left.set_ylim(0, 1.05)
    left.set_title("answers through Ask, base model vs tenant adapter")
    left.legend(fontsize=8)
    m = report["training"]["job"]["metrics"]
    if "task_loss" in m:
        labels = ["task", "general"]
        xs = range(len(labels))
        for shift, arm, prefix in ((-0.2, "base", "base_"), (0.2, "adapter", "")):
            values = [m.get(f"{prefix}{name}_loss", 0.0) for name in labels]
            right.bar([x + shift for x in xs], values, 0.4, label=arm)
        right.set_xticks(list(xs), labels)
        right.legend(fontsize=8)
    right.set_title("training job: held-out loss")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

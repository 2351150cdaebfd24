"""``lorag eval ...``: measure quality against the running service.

``lorag eval retrieval QUERIES.jsonl`` searches every query and scores the ranked documents
against the relevant ones: nDCG@k and MRR@k (document level: the first hit of a document counts,
later chunks of the same document are skipped). Each line of the file is a JSON object::

    {"query": "how do I reset my password", "relevant": ["faq/accounts.md"]}
    {"query": "refund window", "relevant": {"policy/refunds.md": 2, "faq/billing.md": 1}}

(``relevant`` is a list of doc ids, or a map doc id -> graded relevance; ``relevant_doc_ids``
is accepted as well.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click

from lorag.cli.app import State, console, filter_option, pass_state
from lorag.evaluation.metrics import mrr_at_k, ndcg_at_k, recall_at_k, unique_docs

__all__ = ["evaluate", "load_queries", "mrr_at_k", "ndcg_at_k", "recall_at_k", "unique_docs"]


@dataclass(frozen=True)
class Judged:
    """One query with its graded relevant documents."""

    query: str
    relevant: Mapping[str, float]


def load_queries(path: Path) -> list[Judged]:
    """The queries of a JSONL file; ValueError naming the line for malformed ones."""
    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
        query = obj.get("query") if isinstance(obj, dict) else None
        relevant = obj.get("relevant", obj.get("relevant_doc_ids")) if isinstance(obj, dict) else None
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f'{path}:{number}: needs a non-empty "query"')
        if isinstance(relevant, list) and all(isinstance(d, str) for d in relevant):
            grades = {d: 1.0 for d in relevant}
        elif isinstance(relevant, dict) and all(isinstance(v, int | float) for v in relevant.values()):
            grades = {str(d): float(g) for d, g in relevant.items()}
        else:
            raise ValueError(f'{path}:{number}: "relevant" must be a list of doc ids or a map id -> grade')
        if not any(g > 0 for g in grades.values()):
            raise ValueError(f"{path}:{number}: no relevant document")
        out.append(Judged(query, grades))
    if not out:
        raise ValueError(f"{path}: no queries")
    return out


@click.group("eval")
def evaluate() -> None:
    """Measure quality against the running service."""


@evaluate.command()
@click.argument("queries", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--k", "k", type=click.IntRange(1, 100), default=10, show_default=True, help="cut-off of the metrics"
)
@click.option(
    "--mode", type=click.Choice(["dense", "sparse", "hybrid"]), default=None, help="retrieval signal"
)
@click.option(
    "--candidates", type=click.IntRange(1, 200), default=50, show_default=True, help="chunks searched"
)
@filter_option
@click.option("--embedding-model", default="")
@click.option("--json", "as_json", is_flag=True, help="print the metrics (and per-query scores) as JSON")
@pass_state
def retrieval(
    state: State,
    queries: Path,
    k: int,
    mode: str | None,
    candidates: int,
    filter_: dict | None,
    embedding_model: str,
    as_json: bool,
) -> None:
    """nDCG@k, MRR@k and recall@k of the retrieval service over QUERIES (JSONL)."""
    try:
        judged = load_queries(queries)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="QUERIES") from None
    rows = []
    with state.client() as c:
        for q in judged:
            result = c.retrieval.search(
                q.query, top_k=max(candidates, k), mode=mode, filter=filter_, embedding_model=embedding_model
            )
            ranked = unique_docs([h.doc_id for h in result.hits])
            rows.append(
                {
                    "query": q.query,
                    "ndcg": ndcg_at_k(ranked, q.relevant, k),
                    "mrr": mrr_at_k(ranked, q.relevant, k),
                    "recall": recall_at_k(ranked, q.relevant, k),
                    "took_ms": result.took_ms,
                    "top": ranked[:k],
                }
            )
    n = len(rows)
    summary = {
        "queries": n,
        "k": k,
        f"ndcg@{k}": sum(r["ndcg"] for r in rows) / n,
        f"mrr@{k}": sum(r["mrr"] for r in rows) / n,
        f"recall@{k}": sum(r["recall"] for r in rows) / n,
        "mode": mode or "server default",
    }
    if as_json:
        click.echo(json.dumps({"summary": summary, "queries": rows}, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"retrieval over {n} queries", show_edge=False)
    for name in ("query", f"nDCG@{k}", f"MRR@{k}", f"recall@{k}"):
        table.add_column(name, overflow="fold", justify="left" if name == "query" else "right")
    for r in rows:
        table.add_row(r["query"][:60], f"{r['ndcg']:.3f}", f"{r['mrr']:.3f}", f"{r['recall']:.3f}")
    table.add_section()
    table.add_row(
        "[bold]mean",
        f"{summary[f'ndcg@{k}']:.3f}",
        f"{summary[f'mrr@{k}']:.3f}",
        f"{summary[f'recall@{k}']:.3f}",
    )
    console().print(table)

"""``lorag eval ...``: measure quality.

``lorag eval retrieval`` (no file), ``lorag eval rag`` and ``lorag eval adapter`` run the evaluation harness
(:mod:`lorag.evaluation`): a whole platform in this process ingests SQuAD-derived sets through
the normal ingest path and is scored; they print a table and write JSON + PNG under ``--out``.

``lorag eval retrieval QUERIES.jsonl`` instead searches every query and scores the ranked documents
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
    """Measure retrieval and answer quality (SQuAD benchmarks in-process, or your own queries)."""


def _sets(ctx, param, value: str) -> list[str]:
    from lorag.evaluation.data import SETS

    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in SETS]
    if bad or not names:
        raise click.BadParameter(f"choose from {', '.join(SETS)} (comma-separated)", ctx=ctx, param=param)
    return names


def _methods(ctx, param, value: str) -> list[str]:
    from lorag.evaluation.retrieval import METHODS

    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in METHODS]
    if bad or not names:
        raise click.BadParameter(f"choose from {', '.join(METHODS)} (comma-separated)", ctx=ctx, param=param)
    return names


out_option = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("eval-results"),
    show_default=True,
    help="directory of the JSON report and PNG chart",
)


@evaluate.command()
@click.argument("queries", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
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
@click.option(
    "--sets", default="dev,nyt", show_default=True, callback=_sets, help="benchmark sets: dev, nyt, new_wiki"
)
@click.option(
    "--methods",
    default="dense,bm25,hybrid_rrf,hybrid_weighted,hybrid_rerank",
    show_default=True,
    callback=_methods,
    help="benchmark methods",
)
@click.option("--limit", type=click.IntRange(0), default=0, help="benchmark: paragraphs per set (0 = all)")
@click.option(
    "--questions",
    type=click.IntRange(0),
    default=200,
    show_default=True,
    help="benchmark: questions per set (0 = all)",
)
@click.option(
    "--rerank-depth",
    type=click.IntRange(1, 100),
    default=20,
    show_default=True,
    help="benchmark: documents reranked",
)
@click.option("--seed", type=int, default=0, show_default=True, help="benchmark: question sample")
@out_option
@pass_state
def retrieval(
    state: State,
    queries: Path | None,
    k: int,
    mode: str | None,
    candidates: int,
    filter_: dict | None,
    embedding_model: str,
    as_json: bool,
    sets: list[str],
    methods: list[str],
    limit: int,
    questions: int,
    rerank_depth: int,
    seed: int,
    out: Path,
) -> None:
    """Retrieval quality.

    \b
    Without QUERIES: the SQuAD benchmark, in this process (no server needed). Each set's
    paragraphs are ingested through the normal ingest path into embedded Milvus Lite; each
    question is searched by dense, BM25, hybrid RRF, hybrid weighted and hybrid + rerank;
    nDCG@10, Recall@100 and MRR@10 are printed and written to OUT/retrieval.json + .png.

    \b
    With QUERIES (JSONL): nDCG@k, MRR@k and recall@k of the running retrieval service.
    """
    if queries is None:
        _retrieval_benchmark(
            sets,
            methods,
            limit=limit,
            questions=questions,
            rerank_depth=rerank_depth,
            seed=seed,
            out=out,
            as_json=as_json,
        )
        return
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


def _load_sets(names: list[str], *, limit: int, questions: int, seed: int):
    from lorag.evaluation.data import load_set

    return [load_set(n, max_docs=limit, max_questions=questions, seed=seed) for n in names]


def _progress(as_json: bool):
    """A rich progress bar on stderr (a no-op callback with --json)."""
    if as_json:
        return None, None
    from rich.progress import Progress

    bar = Progress(console=console(stderr=True), transient=True)
    tasks: dict[str, int] = {}

    def step(name: str, n: int, total: int) -> None:
        if name not in tasks:
            tasks[name] = bar.add_task(name, total=total)
        bar.update(tasks[name], completed=n)

    return bar, step


def _retrieval_benchmark(sets, methods, *, limit, questions, rerank_depth, seed, out: Path, as_json: bool):
    import contextlib

    from lorag.evaluation import report as rep
    from lorag.evaluation import retrieval as ev

    evalsets = _load_sets(sets, limit=limit, questions=questions, seed=seed)
    bar, step = _progress(as_json)
    with bar or contextlib.nullcontext():
        result = ev.run(evalsets, methods=methods, rerank_depth=rerank_depth, progress=step)
    result.update(
        machine=rep.machine(),
        command=f"lorag eval retrieval --sets {','.join(sets)} --limit {limit} --questions {questions} "
        f"--rerank-depth {rerank_depth} --seed {seed}",
    )
    rep.write_json(result, out / "retrieval.json")
    rep.retrieval_chart(result, out / "retrieval.png")
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    console().print(rep.retrieval_table(result))
    click.echo(f"wrote {out / 'retrieval.json'} and {out / 'retrieval.png'}")


@evaluate.command("rag")
@click.option(
    "--set", "set_name", default="dev", show_default=True, type=click.Choice(["dev", "nyt", "new_wiki"])
)
@click.option(
    "--limit", type=click.IntRange(0), default=150, show_default=True, help="paragraphs ingested (0 = all)"
)
@click.option(
    "--answerable", type=click.IntRange(2), default=60, show_default=True, help="questions of the score pass"
)
@click.option(
    "--unanswerable",
    type=click.IntRange(2),
    default=60,
    show_default=True,
    help="questions whose paragraph is deleted",
)
@click.option(
    "--generate",
    "generate_n",
    type=click.IntRange(1),
    default=12,
    show_default=True,
    help="questions answered by the model",
)
@click.option(
    "--noise",
    "noise_n",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    help="questions of the noise-robustness test",
)
@click.option("--noise-levels", default="0,2,4", show_default=True, help="irrelevant passages added")
@click.option("--template", default="concise", show_default=True, help="prompt template of the answers")
@click.option("--max-new-tokens", type=click.IntRange(1, 512), default=48, show_default=True)
@click.option(
    "--min-answer-rate",
    type=click.FloatRange(0, 1),
    default=0.9,
    show_default=True,
    help="the chosen threshold answers at least this share of answerable questions",
)
@click.option(
    "--adapter-dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="a peft adapter directory: answers are also generated with it, side by side",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@out_option
def rag(
    set_name,
    limit,
    answerable,
    unanswerable,
    generate_n,
    noise_n,
    noise_levels,
    template,
    max_new_tokens,
    min_answer_rate,
    adapter_dir,
    seed,
    as_json,
    out: Path,
) -> None:
    """RAG answer quality and the negative-rejection threshold, on SQuAD, in this process.

    \b
    Ingests the set's paragraphs, asks its questions through Ask, and measures exact match/F1,
    citation precision, context relevance, faithfulness (the reranker as judge), noise
    robustness and negative rejection of questions whose paragraph was deleted; sweeps the
    rejection threshold and picks the default. Writes OUT/rag.json and OUT/rag.png.
    """
    from lorag.evaluation import rag as ev
    from lorag.evaluation import report as rep
    from lorag.evaluation.data import load_set

    try:
        levels = [int(v) for v in noise_levels.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(
            "comma-separated integers, e.g. 0,2,4", param_hint="--noise-levels"
        ) from None
    evalset = load_set(set_name, max_docs=limit)
    say = None if as_json else (lambda msg: click.echo(msg, err=True))
    result = ev.run(
        evalset,
        progress=say,
        answerable_n=answerable,
        unanswerable_n=unanswerable,
        generate_n=generate_n,
        noise_n=noise_n,
        noise_levels=levels,
        template=template,
        max_new_tokens=max_new_tokens,
        min_answer_rate=min_answer_rate,
        adapter_dir=adapter_dir,
        seed=seed,
    )
    result.update(
        machine=rep.machine(),
        command=f"lorag eval rag --set {set_name} --limit {limit} --answerable {answerable} "
        f"--unanswerable {unanswerable} --generate {generate_n} --noise {noise_n} "
        f"--noise-levels {noise_levels} "
        f"--template {template} --max-new-tokens {max_new_tokens} --seed {seed}",
    )
    rep.write_json(result, out / "rag.json")
    rep.rag_chart(result, out / "rag.png")
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    console().print(rep.rag_table(result))
    click.echo(f"wrote {out / 'rag.json'} and {out / 'rag.png'}")


@evaluate.command("adapter")
@click.option(
    "--domain",
    default="nyt",
    show_default=True,
    type=click.Choice(["dev", "nyt", "new_wiki"]),
    help="set whose paragraphs the adapter is trained on and asked about",
)
@click.option(
    "--general",
    default="dev",
    show_default=True,
    type=click.Choice(["dev", "nyt", "new_wiki"]),
    help="set the adapter never sees: answers there must not degrade",
)
@click.option(
    "--domain-docs", type=click.IntRange(4), default=48, show_default=True, help="domain paragraphs"
)
@click.option(
    "--general-docs", type=click.IntRange(2), default=48, show_default=True, help="general paragraphs"
)
@click.option(
    "--questions",
    type=click.IntRange(1),
    default=16,
    show_default=True,
    help="questions asked per split (domain: one per held-out paragraph)",
)
@click.option("--steps", type=click.IntRange(1), default=24, show_default=True, help="training steps")
@click.option("--batch-size", type=click.IntRange(1, 256), default=4, show_default=True)
@click.option("--rank", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option(
    "--learning-rate", type=click.FloatRange(0, 0.01, min_open=True), default=1e-3, show_default=True
)
@click.option(
    "--max-seq-length",
    type=click.IntRange(64, 4096),
    default=512,
    show_default=True,
    help="tokens of a training record (LORAG_TRAINING_MAX_SEQ_LENGTH of the job)",
)
@click.option("--template", default="concise", show_default=True, help="prompt template of the answers")
@click.option("--max-new-tokens", type=click.IntRange(1, 512), default=32, show_default=True)
@click.option(
    "--max-general-drop",
    type=click.FloatRange(0, 1),
    default=0.05,
    show_default=True,
    help="largest general F1 loss (absolute) that still counts as not degraded",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@out_option
def adapter(
    domain,
    general,
    domain_docs,
    general_docs,
    questions,
    steps,
    batch_size,
    rank,
    learning_rate,
    max_seq_length,
    template,
    max_new_tokens,
    max_general_drop,
    seed,
    as_json,
    out: Path,
) -> None:
    """Answer quality with and without a tenant adapter trained by the training pipeline.

    \b
    In this process: ingests DOMAIN and GENERAL paragraphs, turns the questions of part of the
    domain paragraphs into a dataset, trains it with StartTraining (validation, general-data
    mix, LoRA, gates, registration), then asks held-out domain questions and general questions
    through Ask with the base model and with the new version. Writes OUT/adapter.json and
    OUT/adapter.png; exits 1 when the job registered no version.
    """
    from lorag.evaluation import adapter as ev
    from lorag.evaluation import report as rep
    from lorag.evaluation.data import load_set

    if domain == general:
        raise click.BadParameter("must differ from --domain", param_hint="--general")
    say = None if as_json else (lambda msg: click.echo(msg, err=True))
    try:
        result = ev.run(
            load_set(domain, max_docs=domain_docs),
            load_set(general, max_docs=general_docs),
            max_seq_length=max_seq_length,
            progress=say,
            questions=questions,
            template=template,
            max_new_tokens=max_new_tokens,
            hyperparameters={
                "max_steps": steps,
                "batch_size": batch_size,
                "rank": rank,
                "learning_rate": learning_rate,
                "epochs": 20,  # max_steps decides
            },
            max_general_drop=max_general_drop,
            seed=seed,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    result.update(
        machine=rep.machine(),
        command=f"lorag eval adapter --domain {domain} --general {general} --domain-docs {domain_docs} "
        f"--general-docs {general_docs} --questions {questions} --steps {steps} --batch-size {batch_size} "
        f"--rank {rank} --learning-rate {learning_rate} --max-seq-length {max_seq_length} "
        f"--template {template} --max-new-tokens {max_new_tokens} --seed {seed}",
    )
    rep.write_json(result, out / "adapter.json")
    rep.adapter_chart(result, out / "adapter.png")
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        console().print(rep.adapter_table(result))
        click.echo(f"wrote {out / 'adapter.json'} and {out / 'adapter.png'}")
    if result["adapter"] is None:
        raise click.exceptions.Exit(1)

"""``lorag ingest PATH...``, ``lorag ask "question"`` and ``lorag feedback``: the RAG service."""

from __future__ import annotations

import json
import sys
import time

import click

from lorag.cli.app import EXIT_FAILED, State, console, filter_option, parse_key_values, pass_state


def _chunks_per_second(chunks: int, started: float) -> float:
    elapsed = time.monotonic() - started
    return chunks / elapsed if elapsed > 0 else 0.0


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--recursive/--no-recursive", default=True, show_default=True, help="walk directories recursively"
)
@click.option("--include-hidden", is_flag=True, help="also files and directories starting with '.'")
@click.option("--id-prefix", default="", help="prepended to every document id (the relative path)")
@click.option(
    "--metadata", "-m", multiple=True, metavar="KEY=VALUE", help="metadata for every document, repeatable"
)
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, help="chunk length (server default)")
@click.option(
    "--chunk-overlap", type=click.IntRange(min=0), default=None, help="overlap of neighbouring chunks"
)
@click.option("--embedding-model", default="", help="embedding model / collection (server default)")
@click.option("--force", is_flag=True, help="re-index documents even when unchanged")
@click.option("--dry-run", is_flag=True, help="list the files and their document ids; send nothing")
@click.option(
    "--json", "as_json", is_flag=True, help="one JSON object per document instead of the progress bar"
)
@pass_state
def ingest(
    state: State,
    paths: tuple[str, ...],
    recursive: bool,
    include_hidden: bool,
    id_prefix: str,
    metadata: tuple[str, ...],
    chunk_size: int | None,
    chunk_overlap: int | None,
    embedding_model: str,
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Index files, directories and globs into your tenant.

    PATHS are files, directories (walked recursively) and glob patterns such as 'docs/**/*.md'.
    Text (.txt, .rst), Markdown (.md), HTML (.html) and PDF (.pdf) files are read; a file named
    directly is read whatever its extension. Each document's id is its path relative to the
    current directory, so re-ingesting a file replaces it (unchanged files are skipped unless
    --force). Exits 1 if any document failed.
    """
    from lorag.client.documents import find_files

    meta = parse_key_values(metadata, what="--metadata")
    files = find_files(paths, recursive=recursive, include_hidden=include_hidden, id_prefix=id_prefix)
    if not files:
        raise click.UsageError(
            "no files to ingest (known extensions: .txt .rst .md .markdown .html .htm .pdf)"
        )
    if dry_run:
        for f in files:
            click.echo(f"{f.doc_id}\t{f.mime_type}\t{f.path}")
        click.echo(f"{len(files)} file(s)", err=True)
        return

    results = []
    started = time.monotonic()
    with state.client() as c:
        stream = c.rag.ingest(
            files,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            embedding_model=embedding_model,
            force=force,
            metadata=meta or None,
        )
        if as_json:
            for p in stream:
                results.append(p)
                click.echo(
                    json.dumps(
                        {"doc_id": p.doc_id, "status": p.status, "chunks": p.chunk_count, "error": p.error}
                    )
                )
        else:
            results = _ingest_with_progress(stream, total=len(files), started=started)
    failed = [p for p in results if p.failed]
    if not as_json:
        _ingest_summary(results, total=len(files), elapsed=time.monotonic() - started)
    if failed or len(results) < len(files):
        raise click.exceptions.Exit(EXIT_FAILED)


def _ingest_with_progress(stream, *, total: int, started: float) -> list:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    results = []
    err = console(stderr=True)
    columns = (
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("docs"),
        TextColumn("{task.fields[chunks]} chunks, {task.fields[rate]:.1f} chunks/s"),
        TextColumn("[red]{task.fields[failed]} failed"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task("ingest", total=total, chunks=0, rate=0.0, failed=0)
        for p in stream:
            results.append(p)
            progress.update(
                task,
                completed=len(results),
                chunks=p.totals.chunks,
                rate=_chunks_per_second(p.totals.chunks, started),
                failed=p.totals.failed,
            )
    return results


def _ingest_summary(results: list, *, total: int, elapsed: float) -> None:
    from rich.table import Table

    out = console()
    counts = {"indexed": 0, "skipped": 0, "failed": 0}
    chunks = {"indexed": 0, "skipped": 0, "failed": 0}
    for p in results:
        counts[p.status] = counts.get(p.status, 0) + 1
        chunks[p.status] = chunks.get(p.status, 0) + p.chunk_count
    table = Table(title="ingest summary", show_edge=False)
    table.add_column("status")
    table.add_column("documents", justify="right")
    table.add_column("chunks", justify="right")
    for status in counts:
        table.add_row(status, str(counts[status]), str(chunks[status]))
    missing = total - len(results)
    if missing:
        table.add_row("not answered", str(missing), "-")
    out.print(table)
    failed = [p for p in results if p.failed]
    if failed:
        errors = Table(title="failed documents", show_edge=False)
        errors.add_column("document", overflow="fold")
        errors.add_column("error", overflow="fold")
        for p in failed:
            errors.add_row(p.doc_id, p.error or "-")
        out.print(errors)
    stored = chunks["indexed"]
    rate = stored / elapsed if elapsed > 0 else 0.0
    done = f"{len(results)} of {total} documents in {elapsed:.1f} s"
    out.print(f"{done}, {stored} chunks stored ({rate:.1f} chunks/s)")


@click.command()
@click.argument("question")
@click.option(
    "--adapter", "-a", default=None, metavar="REF", help="generation adapter: name, name@alias, name@v3"
)
@click.option("--reranker-adapter", default=None, metavar="REF", help="reranking adapter of your tenant")
@filter_option
@click.option("--template", "-t", default="", help="prompt template name (server default: default)")
@click.option("--top-k", "-k", type=click.IntRange(1, 200), default=None, help="chunks retrieved")
@click.option(
    "--top-n", type=click.IntRange(min=1), default=None, help="chunks kept for the prompt after reranking"
)
@click.option("--no-rerank", is_flag=True, help="skip the cross-encoder")
@click.option(
    "--mode", type=click.Choice(["dense", "sparse", "hybrid"]), default=None, help="retrieval signal"
)
@click.option(
    "--min-relevance", type=click.FloatRange(0, 1), default=None, help="rejection threshold override"
)
@click.option(
    "--routing", type=click.Choice(["auto", "always", "never"]), default=None, help="whether to retrieve"
)
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="longest answer in tokens")
@click.option("--temperature", type=click.FloatRange(min=0), default=None, help="sampling temperature")
@click.option("--contexts", is_flag=True, help="also list every passage put in the prompt")
@click.option("--no-stream", is_flag=True, help="wait for the whole answer instead of streaming it")
@click.option("--json", "as_json", is_flag=True, help="print the whole result as JSON (no streaming)")
@pass_state
def ask(
    state: State,
    question: str,
    adapter: str | None,
    reranker_adapter: str | None,
    filter_: dict | None,
    template: str,
    top_k: int | None,
    top_n: int | None,
    no_rerank: bool,
    mode: str | None,
    min_relevance: float | None,
    routing: str | None,
    max_tokens: int | None,
    temperature: float | None,
    contexts: bool,
    no_stream: bool,
    as_json: bool,
) -> None:
    """Answer QUESTION from your documents.

    The answer streams as it is generated, then its citations. Use '-' to read the question
    from stdin."""
    from lorag.client.types import Answer

    if question == "-":
        question = sys.stdin.read().strip()
    if not question.strip():
        raise click.BadParameter("the question is empty", param_hint="QUESTION")
    options = dict(
        adapter=adapter,
        reranker_adapter=reranker_adapter,
        filter=filter_,
        template=template,
        top_k=top_k,
        rerank_top_n=top_n,
        rerank=False if no_rerank else None,
        mode=mode,
        min_relevance=min_relevance,
        routing=routing,
        return_contexts=contexts,
        max_new_tokens=max_tokens,
        temperature=temperature,
    )
    options = {k: v for k, v in options.items() if v is not None}
    with state.client() as c:
        if as_json:
            from google.protobuf import json_format

            answer = c.rag.ask(question, **options)
            click.echo(json_format.MessageToJson(answer.raw, preserving_proto_field_name=True, indent=2))
            return
        if no_stream:
            answer = c.rag.ask(question, **options)
            click.echo(answer.answer)
        else:
            streamed: list[str] = []
            answer = None
            for piece in c.rag.ask_stream(question, **options):
                if isinstance(piece, Answer):
                    answer = piece
                else:
                    streamed.append(piece)
                    click.echo(piece, nl=False)
                    sys.stdout.flush()
            if not streamed and answer.answer:
                click.echo(answer.answer, nl=False)
            click.echo()
    _print_answer_details(answer, contexts=contexts)


def _print_answer_details(answer, *, contexts: bool) -> None:
    from rich.table import Table

    out = console()
    if answer.rejected:
        out.print("[yellow]not found in your documents:[/] no passage was relevant enough to answer from.")
    if answer.citations:
        out.print(_passages_table("citations", answer.citations, Table))
    if contexts and answer.contexts:
        out.print(_passages_table("contexts", answer.contexts, Table))
    parts = [f"{t.stage} {t.duration_ms:.0f} ms" for t in answer.timings]
    if answer.usage.total_tokens:
        parts.append(f"{answer.usage.total_tokens} tokens")
    if answer.answer_id:
        parts.append(f"answer {answer.answer_id}")
    if parts:
        out.print(" · ".join(parts), style="dim")


def _passages_table(title: str, passages, table_cls):
    table = table_cls(title=title, show_edge=False, expand=False)
    table.add_column("#", justify="right")
    table.add_column("document", overflow="fold")
    table.add_column("score", justify="right")
    table.add_column("passage", overflow="fold")
    for c in passages:
        text = " ".join(c.text.split())
        snippet = text if len(text) <= 160 else text[:157] + "..."
        doc = c.doc_id + (f"\n{c.title}" if c.title and c.title != c.doc_id else "")
        table.add_row(str(c.index), doc, f"{c.score:.3f}", snippet)
    return table


@click.command()
@click.argument("answer_id")
@click.option("--up", "rating", flag_value="up", help="the answer was good")
@click.option("--down", "rating", flag_value="down", help="the answer was bad")
@click.option("--score", type=click.FloatRange(0, 1), default=None, help="graded score in [0, 1]")
@click.option("--comment", default="")
@click.option("--corrected", "corrected_answer", default="", help="what the answer should have been")
@click.option("--relevant", multiple=True, metavar="CHUNK_ID", help="a chunk that was relevant, repeatable")
@click.option("--irrelevant", multiple=True, metavar="CHUNK_ID", help="a chunk that was not, repeatable")
@pass_state
def feedback(
    state: State,
    answer_id: str,
    rating: str | None,
    score: float | None,
    comment: str,
    corrected_answer: str,
    relevant: tuple[str, ...],
    irrelevant: tuple[str, ...],
) -> None:
    """Record feedback on an answer.

    ANSWER_ID is printed under every `lorag ask`."""
    if rating is None and score is None:
        raise click.UsageError("give --up, --down or --score")
    with state.client() as c:
        feedback_id = c.rag.feedback(
            answer_id,
            rating=rating,
            score=score,
            comment=comment,
            corrected_answer=corrected_answer,
            relevant_chunk_ids=relevant,
            irrelevant_chunk_ids=irrelevant,
        )
    click.echo(f"feedback {feedback_id} recorded")

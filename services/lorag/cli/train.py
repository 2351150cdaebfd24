"""``lorag train ...`` and ``lorag datasets ...``: datasets and LoRA training jobs (TrainingService).

Each command is a small function on ``state.client().training`` (see
:class:`lorag.client.services.TrainingAPI`); new commands (datasets, evaluation of a job ...) are
added the same way with ``@train.command()``.
"""

from __future__ import annotations

from pathlib import Path

import click

from lorag.cli.app import EXIT_FAILED, State, console, pass_state, print_json

KINDS = ("generation", "reranking")
PHASES = (
    "queued",
    "validating",
    "preprocessing",
    "training",
    "evaluating",
    "registering",
    "succeeded",
    "failed",
    "cancelled",
)


@click.group()
def train() -> None:
    """LoRA training jobs: start, watch, list, cancel."""


def _job_line(job) -> str:
    result = (
        f"  -> {job.adapter_name} v{job.result_version} ({job.result_version_id})"
        if job.result_version_id
        else ""
    )
    error = f"  {job.error_message}" if job.error_message else ""
    return f"{job.job_id}  {job.adapter_name:<24} {job.phase:<13}{result}{error}"


@train.command()
@click.argument("adapter")
@click.option("--dataset", required=True, metavar="NAME[@VERSION]", help="uploaded dataset (newest version)")
@click.option("--kind", type=click.Choice(KINDS), default="generation", show_default=True)
@click.option(
    "--base-model", default="", help="registry name of the base model (default: the kind's default)"
)
@click.option("--rank", type=click.IntRange(min=1), default=None, help="LoRA rank")
@click.option("--alpha", type=float, default=None, help="LoRA alpha")
@click.option("--epochs", type=click.IntRange(min=1), default=None)
@click.option("--learning-rate", type=float, default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--max-steps", type=click.IntRange(min=1), default=None)
@click.option(
    "--general-data-ratio", type=click.FloatRange(0, 1), default=None, help="share of general data mixed in"
)
@click.option("--seed", type=click.IntRange(min=0), default=None)
@click.option("--parent", default="", help="version id to continue from")
@click.option(
    "--canary", type=click.IntRange(0, 100), default=None, metavar="WEIGHT", help="make the result the canary"
)
@click.option("--description", default="")
@click.option("--watch", "follow", is_flag=True, help="then follow its progress until it finishes")
@pass_state
def start(
    state: State,
    adapter: str,
    dataset: str,
    kind: str,
    base_model: str,
    parent: str,
    canary: int | None,
    description: str,
    follow: bool,
    **hyper,
) -> None:
    """Start training ADAPTER on a dataset (admin). Unset hyperparameters take server defaults."""
    hyperparameters = {k: v for k, v in hyper.items() if v is not None}
    with state.client() as c:
        job = c.training.start(
            adapter,
            dataset=dataset,
            kind=kind,
            base_model=base_model,
            hyperparameters=hyperparameters,
            parent_version_id=parent,
            canary_weight=canary,
            description=description,
        )
        click.echo(f"started {job.job_id} ({job.phase})")
        if follow:
            _follow(c, job.job_id)


@train.command()
@click.argument("job_id")
@pass_state
def get(state: State, job_id: str) -> None:
    """One job as JSON."""
    with state.client() as c:
        print_json(c.training.get(job_id).raw)


@train.command()
@click.argument("job_id")
@pass_state
def status(state: State, job_id: str) -> None:
    """One job: phase, progress, result and evaluation metrics."""
    with state.client() as c:
        job = c.training.get(job_id)
    click.echo(_job_line(job))
    e = job.last_event
    if e is not None:
        loss = f"  loss {e.loss:.4f}" if e.loss is not None else ""
        eta = f"  eta {e.eta_seconds:.0f} s" if e.eta_seconds and not job.finished else ""
        click.echo(f"  step {e.step}/{e.total_steps}{loss}{eta}  {e.message}")
    for name, value in sorted(job.metrics.items()):
        click.echo(f"  {name:<28} {value:.4f}")


@train.command("list")
@click.option("--adapter", default="", help="only jobs of this adapter")
@click.option("--phase", type=click.Choice(PHASES), default=None)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@pass_state
def list_jobs(state: State, adapter: str, phase: str | None, limit: int) -> None:
    """Training jobs of your tenant, newest first."""
    with state.client() as c:
        for job in c.training.list(adapter=adapter, phase=phase, limit=limit):
            click.echo(_job_line(job))


@train.command()
@click.argument("job_id")
@pass_state
def watch(state: State, job_id: str) -> None:
    """Follow a job with a live progress bar (exit 1 unless it succeeds)."""
    with state.client() as c:
        _follow(c, job_id)


@train.command()
@click.argument("job_id")
@pass_state
def cancel(state: State, job_id: str) -> None:
    """Cancel a job (admin)."""
    with state.client() as c:
        click.echo(_job_line(c.training.cancel(job_id)))


@train.command("run-job")
@click.argument("job_id")
def run_job(job_id: str) -> None:
    """Run one queued job in this process against the platform's registry (server side: for a
    RayJob pod or LORAG_TRAINING_RUNNER=external); exit 1 unless it succeeds."""
    from sqlalchemy import select

    from lorag.common.db import Database
    from lorag.common.settings import load_settings
    from lorag.training.jobs import SUCCEEDED, run_standalone
    from lorag.training.models import TrainingJobRow

    settings = load_settings()
    run_standalone(job_id, registry_url=settings.resolved_registry_url, data_dir=str(settings.data_dir))
    db = Database(settings.resolved_registry_url, create=False)
    with db.session() as s:
        row = s.scalar(select(TrainingJobRow).where(TrainingJobRow.job_id == job_id))
    db.dispose()
    if row is None:
        raise click.ClickException(f"no training job {job_id!r}")
    click.echo(f"{job_id}: {row.phase.lower()} {row.error_message}".rstrip())
    if row.phase != SUCCEEDED:
        raise click.exceptions.Exit(EXIT_FAILED)


@train.command("from-feedback")
@click.argument("adapter")
@click.option("--dataset", "dataset_name", required=True, help="dataset name the feedback is stored under")
@click.option("--kind", type=click.Choice(KINDS), default="generation", show_default=True)
@click.option("--min-records", type=click.IntRange(min=1), default=None, help="fewest records needed")
@click.option(
    "--canary", type=click.IntRange(0, 100), default=None, metavar="WEIGHT", help="make the result the canary"
)
@click.option("--max-steps", type=click.IntRange(min=1), default=None)
@click.option("--watch", "follow", is_flag=True, help="then follow the job until it finishes")
@pass_state
def from_feedback(
    state: State,
    adapter: str,
    dataset_name: str,
    kind: str,
    min_records: int | None,
    canary: int | None,
    max_steps: int | None,
    follow: bool,
) -> None:
    """Continuous training: build a dataset from your tenant's feedback and train ADAPTER on it."""
    hyper = {"max_steps": max_steps} if max_steps else {}
    with state.client() as c:
        dataset, job = c.training.from_feedback(
            dataset_name, kind=kind, min_records=min_records, adapter=adapter, hyperparameters=hyper,
            canary_weight=canary,
        )  # fmt: skip
        _print_dataset(dataset)
        if job is None:
            raise click.exceptions.Exit(EXIT_FAILED)
        click.echo(f"started {job.job_id} ({job.phase})")
        if follow:
            _follow(c, job.job_id)


# -- datasets -------------------------------------------------------------------------------------


@click.group()
def datasets() -> None:
    """Training datasets (JSONL): upload, list, show."""


def _print_dataset(ds) -> None:
    r = ds.raw.validation
    click.echo(
        f"{ds.name} v{ds.version}  {ds.kind}  {ds.state.upper()}  {ds.record_count} records "
        f"({r.train_records} train / {r.validation_records} validation)  sha256 {ds.sha256[:12]}  "
        f"{ds.dataset_id}"
    )
    dropped = (
        f"  dropped: {r.malformed_records} malformed, {r.empty_records} empty, "
        f"{r.too_long_records} too long, {r.duplicate_records} duplicates ({r.near_duplicate_records} near)"
    )
    click.echo(dropped)
    if r.HasField("token_lengths"):
        t = r.token_lengths
        click.echo(
            f"  tokens ({r.tokenizer}): min {t.min}  mean {t.mean:.1f}  p50 {t.p50}  p95 {t.p95}  "
            f"max {t.max}  "
            f"unknown {r.unknown_token_share:.1%}  poorly covered {r.low_coverage_share:.0%}"
        )
    if r.issues:
        from rich.table import Table

        table = Table("line", "code", "issue", box=None, pad_edge=False)
        for issue in r.issues:
            table.add_row(str(issue.line or "-"), issue.code, issue.message)
        console().print(table)


@datasets.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="dataset name (a new version of it is stored)")
@click.option("--kind", type=click.Choice(KINDS), default="generation", show_default=True)
@click.option("--description", default="")
@click.option("--dry-run", is_flag=True, help="only validate; store nothing")
@pass_state
def upload_dataset(state: State, path: Path, name: str, kind: str, description: str, dry_run: bool) -> None:
    """Upload a JSONL file; prints the validation report (exit 1 when it is INVALID)."""
    with state.client() as c:
        ds = c.training.upload_dataset(path, name=name, kind=kind, description=description, dry_run=dry_run)
    _print_dataset(ds)
    if ds.state != "ready":
        raise click.exceptions.Exit(EXIT_FAILED)


@datasets.command("list")
@click.option("--name", default="", help="only versions of this dataset")
@click.option("--kind", type=click.Choice(KINDS), default=None)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@pass_state
def list_datasets(state: State, name: str, kind: str | None, limit: int) -> None:
    """Dataset versions of your tenant, newest first."""
    with state.client() as c:
        for ds in c.training.datasets(name=name, kind=kind, limit=limit):
            click.echo(
                f"{ds.dataset_id}  {ds.name:<24} v{ds.version:<4} {ds.kind:<11} {ds.state:<8} "
                f"{ds.record_count:>7} records"
            )


@datasets.command("show")
@click.argument("dataset", required=False, metavar="NAME[@VERSION]")
@click.option("--id", "dataset_id", default=None, help="dataset id instead of a name")
@click.option("--json", "as_json", is_flag=True, help="the whole dataset message as JSON")
@pass_state
def show_dataset(state: State, dataset: str | None, dataset_id: str | None, as_json: bool) -> None:
    """One dataset version with its validation report (newest READY version of a bare name)."""
    if (dataset is None) == (dataset_id is None):
        raise click.UsageError("give NAME[@VERSION] or --id")
    with state.client() as c:
        ds = c.training.get_dataset(dataset, dataset_id=dataset_id)
    if as_json:
        print_json(ds.raw)
    else:
        _print_dataset(ds)


def _follow(client, job_id: str) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    last = None
    columns = (
        TextColumn("[bold]{task.fields[phase]:<13}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps  loss {task.fields[loss]}  {task.fields[message]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console(stderr=True)) as progress:
        task = progress.add_task("train", total=None, phase="", loss="-", message="")
        while last is None or not last.finished:
            before = last
            for event in client.training.watch(job_id, from_sequence=last.sequence if last else 0):
                last = event
                progress.update(
                    task,
                    total=event.total_steps or None,
                    completed=event.step,
                    phase=event.phase,
                    loss=f"{event.loss:.4f}" if event.loss is not None else "-",
                    message=event.message[:60],
                )
                if event.finished:
                    break
            if last is before:  # the stream ended without news: the job's events are gone
                break
    job = client.training.get(job_id)
    click.echo(_job_line(job))
    for name, value in sorted(job.metrics.items()):
        click.echo(f"  {name:<28} {value:.4f}")
    if job.phase != "succeeded" or (last is not None and last.phase != "succeeded"):
        raise click.exceptions.Exit(EXIT_FAILED)

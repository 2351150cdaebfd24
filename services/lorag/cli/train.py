"""``lorag train ...``: LoRA training jobs through the TrainingService.

Each command is a small function on ``state.client().training`` (see
:class:`lorag.client.services.TrainingAPI`); new commands (datasets, evaluation of a job ...) are
added the same way with ``@train.command()``.
"""

from __future__ import annotations

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
        for event in client.training.watch(job_id):
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
    job = client.training.get(job_id)
    click.echo(_job_line(job))
    for name, value in sorted(job.metrics.items()):
        click.echo(f"  {name:<28} {value:.4f}")
    if job.phase != "succeeded" or (last is not None and last.phase != "succeeded"):
        raise click.exceptions.Exit(EXIT_FAILED)

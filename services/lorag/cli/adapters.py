"""``lorag adapters ...``: upload, list, promote, canary, rollback, resolve, download, delete, audit."""

from __future__ import annotations

from pathlib import Path

import click

from lorag.cli.app import State, pass_state

KINDS = ("generation", "reranking")


def _aliases(adapter) -> str:
    return ",".join(
        f"{a.name}=v{a.version}" + (f"@{a.traffic_weight}%" if a.traffic_weight else "")
        for a in adapter.aliases
    )


def _moved(name: str, change) -> None:
    a = change.alias
    click.echo(f"{name}: {a.name} -> v{a.version} ({a.version_id}, revision {change.revision})")


@click.group()
def adapters() -> None:
    """LoRA adapters: upload, list, promote, rollback, ..."""


@adapters.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="adapter name (created if new)")
@click.option("--kind", type=click.Choice(KINDS), default="generation", show_default=True)
@click.option(
    "--base-model", default="", help="registry name of the base model (default: the kind's default)"
)
@click.option("--description", default="")
@click.option("--parent", default="", help="version id this one derives from")
@click.option(
    "--chunk-kib", type=click.IntRange(min=1), default=1024, show_default=True, help="upload chunk size"
)
@click.option("--promote", is_flag=True, help="then point `production` at it")
@click.option(
    "--canary", type=click.IntRange(0, 100), metavar="WEIGHT", help="then make it the canary with WEIGHT %"
)
@pass_state
def upload(
    state: State,
    directory: Path,
    name: str,
    kind: str,
    base_model: str,
    description: str,
    parent: str,
    chunk_kib: int,
    promote: bool,
    canary: int | None,
) -> None:
    """Upload a peft adapter DIRECTORY (adapter_config.json + adapter_model.safetensors) as a new
    version (admin)."""
    with state.client() as c:
        v = c.adapters.upload(
            directory,
            name=name,
            kind=kind,
            base_model=base_model,
            description=description,
            parent_version_id=parent,
            chunk_bytes=chunk_kib * 1024,
        )
        click.echo(
            f"{v.adapter_name}: version {v.version} ({v.version_id}) sha256 {v.sha256}, {v.size_bytes} bytes"
        )
        if canary is not None:
            _moved(v.adapter_name, c.adapters.canary(v.adapter_name, v.version, weight=canary))
        elif promote:
            _moved(v.adapter_name, c.adapters.promote(v.adapter_name, v.version))


@adapters.command("list")
@click.option("--kind", type=click.Choice(KINDS), default=None, help="only adapters of this kind")
@pass_state
def list_adapters(state: State, kind: str | None) -> None:
    """Adapters of your tenant with their aliases."""
    with state.client() as c:
        for ad in c.adapters.list(kind=kind):
            kind_name = ad.kind or "?"
            click.echo(
                f"{ad.name:<24} {kind_name:<10} {ad.base_model:<24} v{ad.latest_version:<4} {_aliases(ad)}"
            )


@adapters.command()
@click.argument("name")
@pass_state
def versions(state: State, name: str) -> None:
    """Versions of one adapter, newest first."""
    with state.client() as c:
        for v in c.adapters.versions(name):
            size = f"{v.size_bytes:>10} B"
            click.echo(
                f"v{v.version:<4} {v.version_id}  r={v.rank:<3} {size}  {v.sha256[:16]}  {v.created_by}"
            )


@adapters.command()
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", default="production", show_default=True)
@click.option("--weight", type=click.IntRange(0, 100), default=0, help="traffic % (canary only)")
@pass_state
def promote(state: State, name: str, version: int, alias: str, weight: int) -> None:
    """Point an alias (default production) at VERSION (admin)."""
    with state.client() as c:
        _moved(name, c.adapters.set_alias(name, alias, version, weight=weight))


@adapters.command()
@click.argument("name")
@click.argument("version", type=int)
@click.option("--weight", type=click.IntRange(0, 100), required=True, help="percent of bare-name requests")
@pass_state
def canary(state: State, name: str, version: int, weight: int) -> None:
    """Make VERSION the canary with a traffic weight (admin)."""
    with state.client() as c:
        _moved(name, c.adapters.canary(name, version, weight=weight))


@adapters.command()
@click.argument("name")
@click.option("--alias", default="production", show_default=True)
@pass_state
def rollback(state: State, name: str, alias: str) -> None:
    """Move an alias back to its previous version (admin)."""
    with state.client() as c:
        _moved(name, c.adapters.rollback(name, alias=alias))


@adapters.command()
@click.argument("ref")
@click.option("--request-id", default="", help="routes a bare name to production or canary")
@pass_state
def resolve(state: State, ref: str, request_id: str) -> None:
    """Resolve name, name@alias or name@v3 to a version."""
    with state.client() as c:
        r = c.adapters.resolve(ref, request_id=request_id)
    via = f" via {r.alias}" if r.alias else ""
    click.echo(f"{ref} -> {r.adapter_name} v{r.version} ({r.version_id}){via}")


@adapters.command()
@click.argument("ref")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@pass_state
def download(state: State, ref: str, out: Path) -> None:
    """Download a version's files into OUT (hashes verified)."""
    with state.client() as c:
        v = c.adapters.download(ref, out)
    click.echo(f"{v.adapter_name} v{v.version} ({v.version_id}) -> {out} (hashes verified)")


@adapters.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="also when aliases point at it")
@pass_state
def delete(state: State, name: str, force: bool) -> None:
    """Delete an adapter with all its versions (admin)."""
    with state.client() as c:
        r = c.adapters.delete(name, force=force)
    click.echo(f"{name}: deleted {r.deleted_version_count} version(s) (revision {r.revision})")


@adapters.command()
@click.option("--action-prefix", default="")
@click.option("--resource-prefix", default="")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="newest events shown"
)
@pass_state
def audit(state: State, action_prefix: str, resource_prefix: str, limit: int) -> None:
    """Audit log of your tenant, newest first (admin)."""
    with state.client() as c:
        events = c.adapters.audit(action_prefix=action_prefix, resource_prefix=resource_prefix, limit=limit)
    for e in events:
        when = e.event_time.isoformat().replace("+00:00", "Z") if e.event_time else "-"
        click.echo(f"{when}  {e.actor:<20} {e.action:<24} {e.resource}")

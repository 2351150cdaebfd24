"""``lorag serve``, ``lorag prepare-models``, ``lorag health``: run and check the platform."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import click

from lorag.cli.app import EXIT_FAILED, State, hint_for, pass_state
from lorag.common.settings import APPLICATIONS, LoragSettings

CREDENTIALS_FILE = "bootstrap-api-key"


def credentials_path(settings: LoragSettings) -> Path:
    return settings.data_dir / CREDENTIALS_FILE


def bootstrap(settings: LoragSettings) -> str | None:
    """Create the schema, the `default` tenant and the operator key; the new key or None."""
    from lorag.common.auth import load_key_hasher
    from lorag.common.db import Database
    from lorag.common.tenancy import TenantStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_registry_url)
    try:
        given = settings.bootstrap_api_key.get_secret_value() if settings.bootstrap_api_key else None
        created = TenantStore(db, load_key_hasher(settings)).bootstrap(given)
    finally:
        db.dispose()
    if created:
        path = credentials_path(settings)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(created + "\n")
    return created


def prepare_models(settings: LoragSettings) -> None:
    """Build or convert the default local models once, before any replica needs them."""
    from lorag.generation.models import prepare_builtin
    from lorag.generation.settings import DEFAULT_MODEL, GenerationSettings

    gen = GenerationSettings(data_dir=settings.data_dir)
    if gen.backend == "local" and gen.default_model == DEFAULT_MODEL:
        print("preparing the default generation model (first run only) ...", flush=True)
        prepare_builtin(gen)

    from lorag.reranking.prepare import prepare_models as prepare_rerankers
    from lorag.reranking.settings import RerankingSettings

    reranking = RerankingSettings()
    prepare_rerankers(
        root=reranking.resolved_artifacts_dir(settings.data_dir),
        settings=reranking,
        echo=lambda msg: print(msg, flush=True),
    )


def _apps(ctx, param, values: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(n.strip() for v in values for n in v.split(",") if n.strip())
    unknown = [n for n in names if n not in APPLICATIONS]
    if unknown:
        raise click.BadParameter(
            f"unknown application(s) {', '.join(unknown)}; choose from {', '.join(APPLICATIONS)}",
            ctx=ctx,
            param=param,
        )
    return names


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="embedded state [env LORAG_DATA_DIR; default ~/.local/share/lorag]",
)


@click.command()
@click.option("--port", type=int, default=None, help="gRPC port [env LORAG_GRPC_PORT; default 9000]")
@click.option("--host", default=None, help="gRPC bind address [env LORAG_GRPC_HOST; default 127.0.0.1]")
@click.option("--http-port", type=int, default=None, help="Ray Serve HTTP port on 127.0.0.1")
@data_dir_option
@click.option(
    "--metrics-export-port",
    type=int,
    default=None,
    help="Prometheus port of this Ray node: Ray Serve's and lorag's metrics [env LORAG_METRICS_EXPORT_PORT]",
)
@click.option(
    "--apps",
    multiple=True,
    callback=_apps,
    metavar="NAMES",
    help=f"subset of applications, comma-separated or repeated ({', '.join(APPLICATIONS)})",
)
def serve(
    port: int | None,
    host: str | None,
    http_port: int | None,
    data_dir: Path | None,
    metrics_export_port: int | None,
    apps,
) -> None:
    """Start local Ray Serve with every application.

    Ctrl-C (or SIGTERM) stops everything cleanly."""
    overrides: dict = {}
    if port is not None:
        overrides["grpc_port"] = port
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if host is not None:
        overrides["grpc_host"] = host
    if metrics_export_port is not None:
        overrides["metrics_export_port"] = metrics_export_port
    settings = LoragSettings(**overrides)
    if settings.tls_enabled:
        from lorag.serving import TLS_UNSUPPORTED

        raise click.ClickException(TLS_UNSUPPORTED)
    created = bootstrap(settings)
    prepare_models(settings)

    from lorag import serving
    from lorag.apps import APPS

    selected = tuple(a for a in APPS if not apps or a.name in apps)
    endpoint = serving.start(settings, apps=selected, http_port=http_port)
    print(f"lorag is serving on {endpoint.grpc_target} (gRPC)", flush=True)
    print(f"applications: {', '.join(endpoint.applications)}", flush=True)
    print(f"data dir: {settings.data_dir}", flush=True)
    if settings.metrics_export_port:
        print(f"metrics: http://127.0.0.1:{settings.metrics_export_port}/metrics", flush=True)
    if created:
        print("", flush=True)
        print("Bootstrap operator API key (shown once; also saved to", flush=True)
        print(f"  {credentials_path(settings)} with mode 0600):", flush=True)
        print(f"  {created}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    print("shutting down ...", flush=True)
    serving.shutdown()
    print("stopped", flush=True)


@click.command("prepare-models")
@data_dir_option
def prepare_models_command(data_dir: Path | None) -> None:
    """Build the default local models.

    Cached under the data dir; `serve` does it too."""
    prepare_models(LoragSettings(**({"data_dir": data_dir} if data_dir is not None else {})))


@click.command()
@pass_state
def health(state: State) -> None:
    """Health of every application.

    grpc.health.v1 status per application; exit 1 unless all serve."""
    failed = errors = 0
    with state.client() as c:
        for app in APPLICATIONS:
            try:
                status = c.health(app)
            except Exception as exc:  # noqa: BLE001 - report and go on with the next app
                code = getattr(exc, "code", None)
                detail = f"{code().name}: {exc.details()}" if callable(code) else str(exc)
                click.echo(f"{app:<11} ERROR {detail}")
                failed += 1
                errors += 1
                continue
            ok = status == 1
            failed += not ok
            click.echo(f"{app:<11} {'SERVING' if ok else 'NOT_SERVING'}")
    if errors == len(APPLICATIONS):
        click.echo(f"hint: {hint_for('UNAVAILABLE', state.config().endpoint)}", err=True)
    if failed:
        raise click.exceptions.Exit(EXIT_FAILED)

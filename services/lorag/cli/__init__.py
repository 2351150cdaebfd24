"""The ``lorag`` command line (click + rich).

``main(argv)`` runs it and returns the exit code: 0 success, 1 a failed call (printed as
``error: CODE: message``) or a failed item, 2 a usage error, 130 interrupted. Command groups live
in one module each (``serve``, ``admin``, ``adapters``, ``documents``, ``train`` and
``datasets``, ``evaluate``, ``settings``) and are registered on the root group :data:`cli` here.
"""

from __future__ import annotations

import click

from lorag.cli.adapters import adapters
from lorag.cli.admin import admin, keys, tenants
from lorag.cli.app import EXIT_INTERRUPTED, EXIT_USAGE, cli
from lorag.cli.documents import ask, feedback, ingest
from lorag.cli.evaluate import evaluate
from lorag.cli.serve import CREDENTIALS_FILE, bootstrap, health, prepare_models, prepare_models_command, serve
from lorag.cli.settings import config, login
from lorag.cli.train import datasets, train

for _command in (
    serve,
    prepare_models_command,
    health,
    ingest,
    ask,
    feedback,
    adapters,
    train,
    datasets,
    evaluate,
    admin,
    tenants,
    keys,
    login,
    config,
):
    cli.add_command(_command)

__all__ = ["CREDENTIALS_FILE", "bootstrap", "cli", "main", "prepare_models"]


def main(argv: list[str] | None = None) -> int:
    """Run ``lorag`` with ``argv`` (default: the process arguments); the exit code."""
    try:
        code = cli.main(args=argv, prog_name="lorag", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code if exc.exit_code else EXIT_USAGE
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_INTERRUPTED
    return code if isinstance(code, int) else 0

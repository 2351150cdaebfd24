"""The root ``lorag`` group: global options, the client of a command, output and error handling.

A command module adds its commands to :data:`cli` (or to a group of its own that
``lorag.cli`` registers) and reaches the server through ``state.client()``::

    @click.command("list")
    @pass_state
    def list_jobs(state: State) -> None:
        with state.client() as c:
            for job in c.training.list():
                click.echo(job.job_id)

Failures raised as :class:`lorag.client.LoragClientError` (or ``grpc.RpcError``) are printed as
one line, ``error: NOT_FOUND: adapter not found``, with a hint where one helps, and exit 1;
usage errors exit 2.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import click

#: Exit codes: 0 success, 1 a failed call or a failed item (e.g. a document), 2 bad usage.
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


@dataclass
class State:
    """What the global options say; commands build their client from it."""

    endpoint: str | None = None
    api_key: str | None = None
    timeout: float | None = None
    tls: bool | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_server_name: str | None = None
    _config: Any = field(default=None, repr=False)

    def config(self):
        """The resolved endpoint/key/timeout/TLS (flags > environment > config file > defaults)."""
        if self._config is None:
            from lorag.client.config import resolve

            self._config = resolve(
                endpoint=self.endpoint,
                api_key=self.api_key,
                timeout=self.timeout,
                **self.tls_arguments(),
            )
        return self._config

    def tls_arguments(self) -> dict[str, Any]:
        return {
            "tls": self.tls,
            "tls_ca": self.tls_ca,
            "tls_cert": self.tls_cert,
            "tls_key": self.tls_key,
            "tls_server_name": self.tls_server_name,
        }

    def client(self):
        """A blocking :class:`lorag.client.Client` for the resolved endpoint, key and TLS."""
        from lorag.client import Client

        cfg = self.config()
        return Client(cfg.endpoint, api_key=cfg.api_key, timeout=cfg.timeout, tls=cfg.tls)


pass_state = click.make_pass_decorator(State, ensure=True)


def console(*, stderr: bool = False):
    """A rich console on the current stdout/stderr (resolved per call, so redirection works)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def print_json(value: Any) -> None:
    """A proto message (as the proto3 JSON mapping) or a plain value, indented."""
    from google.protobuf import json_format
    from google.protobuf.message import Message

    if isinstance(value, Message):
        click.echo(json_format.MessageToJson(value, preserving_proto_field_name=True, indent=2))
    else:
        click.echo(json.dumps(value, indent=2, default=str))


def hint_for(code_name: str, endpoint: str) -> str | None:
    """A next step for a failure with gRPC code ``code_name``, or None."""
    return {
        "UNAVAILABLE": (
            f"is lorag running at {endpoint}? Start it with `lorag serve`, or point --endpoint / "
            "LORAG_ENDPOINT at your server."
        ),
        "UNAUTHENTICATED": "pass --api-key, set LORAG_API_KEY, or run `lorag login`.",
        "PERMISSION_DENIED": "this needs an API key with a higher role (admin or operator).",
        "DEADLINE_EXCEEDED": "the call took longer than its deadline; raise --timeout.",
    }.get(code_name)


def error_line(exc: BaseException) -> str:
    """``error: CODE: message`` for a failed call, ``error: message`` otherwise."""
    from lorag.client.errors import LoragClientError

    if isinstance(exc, LoragClientError):
        return f"error: {exc.code.name}: {exc.message}"
    return f"error: {exc}"


class LoragGroup(click.Group):
    """The root group: turns failed calls and bad local input into one line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order registered, most used first

    def invoke(self, ctx: click.Context):
        import grpc

        from lorag.client.config import ConfigError
        from lorag.client.errors import LoragClientError
        from lorag.client.tls import TLSConfigError

        try:
            return super().invoke(ctx)
        except (LoragClientError, grpc.RpcError) as exc:
            if not isinstance(exc, LoragClientError):
                exc = LoragClientError.from_rpc_error(exc)
            click.echo(error_line(exc), err=True)
            state = ctx.find_object(State)
            endpoint = state.config().endpoint if state is not None else "?"
            hint = hint_for(exc.code.name, endpoint)
            if hint:
                click.echo(f"hint: {hint}", err=True)
            ctx.exit(EXIT_FAILED)
        except (ConfigError, TLSConfigError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            click.echo(error_line(exc), err=True)
            ctx.exit(EXIT_FAILED)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(
    cls=LoragGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option(
    "--endpoint",
    "--target",
    "endpoint",
    metavar="HOST:PORT",
    help="gRPC endpoint [env LORAG_ENDPOINT; config file; default 127.0.0.1:9000]",
)
@click.option("--api-key", metavar="KEY", help="API key [env LORAG_API_KEY; config file]")
@click.option("--timeout", type=float, metavar="SECONDS", help="deadline of each call [default 30]")
@click.option(
    "--tls/--no-tls",
    default=None,
    help="TLS to the endpoint [env LORAG_TLS; config file; default: on when a CA or client cert is set]",
)
@click.option("--tls-ca", metavar="PEM", help="CA bundle that verifies the server [env LORAG_TLS_CA]")
@click.option("--tls-cert", metavar="PEM", help="client certificate for mutual TLS [env LORAG_TLS_CERT]")
@click.option("--tls-key", metavar="PEM", help="key of --tls-cert [env LORAG_TLS_KEY]")
@click.option(
    "--tls-server-name",
    metavar="NAME",
    help="name the server certificate must carry [env LORAG_TLS_SERVER_NAME]",
)
@click.version_option(package_name="lorag", prog_name="lorag")
@click.pass_context
def cli(
    ctx: click.Context,
    endpoint: str | None,
    api_key: str | None,
    timeout: float | None,
    tls: bool | None,
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_server_name: str | None,
) -> None:
    """lorag: ask questions of your documents with your own LoRA adapters.

    \b
    Quick start:
      lorag serve                          # the whole platform on this machine
      lorag ingest docs/                   # index a folder (Markdown, HTML, text, PDF)
      lorag ask "How do I reset my password?"
    """
    ctx.obj = State(
        endpoint=endpoint,
        api_key=api_key,
        timeout=timeout,
        tls=tls,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_server_name=tls_server_name,
    )


def parse_key_values(pairs: tuple[str, ...], *, what: str) -> dict[str, Any]:
    """``("lang=en", "year=2020")`` -> ``{"lang": "en", "year": 2020}`` (values read as JSON when
    they parse); BadParameter for a pair without ``=``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r}: write KEY=VALUE", param_hint=what)
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def filter_option(f):
    """``--filter/-f EXPR`` (repeatable) -> a filter dict in the SDK's language, as ``filter_``."""

    def convert(ctx, param, value):
        if not value:
            return None
        from lorag.client.errors import FilterError
        from lorag.client.filters import parse_expressions

        try:
            return parse_expressions(value)
        except FilterError as exc:
            raise click.BadParameter(exc.message, ctx=ctx, param=param) from None

    return click.option(
        "--filter",
        "-f",
        "filter_",
        multiple=True,
        callback=convert,
        metavar="EXPR",
        help='metadata condition, repeatable: lang=en, year>=2020, tags~faq, or JSON {"year": {"gte": 2020}}',
    )(f)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()

"""``lorag login`` and ``lorag config ...``: the endpoint and API key kept in the config file."""

from __future__ import annotations

from pathlib import Path

import click

from lorag.cli.app import State, pass_state

#: Settings of the config file (lorag.client.config.CONFIG_KEYS).
SETTABLE = ["endpoint", "api_key", "timeout", "tls", "tls_ca", "tls_cert", "tls_key", "tls_server_name"]


def _mask(key: str | None) -> str:
    if not key:
        return "(none)"
    return key[:8] + "…" if len(key) > 12 else "…"


@click.command()
@click.option("--endpoint", "login_endpoint", default=None, metavar="HOST:PORT", help="endpoint to save")
@click.option(
    "--api-key", "login_key", default=None, metavar="KEY", help="key to save (prompted when missing)"
)
@click.option("--no-verify", is_flag=True, help="save without calling the server")
@pass_state
def login(state: State, login_endpoint: str | None, login_key: str | None, no_verify: bool) -> None:
    """Save endpoint and API key to the config file.

    The key is checked with WhoAmI first unless --no-verify."""
    from lorag.client import Client
    from lorag.client.config import PATH_KEYS, config_path, read_config_file, resolve, write_config_file

    cfg = resolve(
        endpoint=login_endpoint or state.endpoint,
        api_key=login_key or state.api_key,
        local_key=False,
        **state.tls_arguments(),
    )
    key = login_key or state.api_key or click.prompt("API key", hide_input=True)
    endpoint = cfg.endpoint
    if not no_verify:
        with Client(endpoint, api_key=key, timeout=cfg.timeout, tls=cfg.tls) as c:
            who = c.admin.whoami()
        click.echo(f"logged in to {endpoint} as tenant {who.tenant_id!r} (role {who.role})")
    path = config_path()
    values = read_config_file(path)
    values.update(endpoint=endpoint, api_key=key)
    for name, value in state.tls_arguments().items():  # TLS flags given to login are kept too
        if value is not None:
            values[name] = str(Path(value).expanduser().resolve()) if name in PATH_KEYS else value
    write_config_file(values, path)
    click.echo(f"saved to {path}")


@click.group()
def config() -> None:
    """Show or change the config file.

    It holds endpoint, api_key, timeout and the TLS settings (see `lorag config show`)."""


@config.command()
@pass_state
def show(state: State) -> None:
    """The settings in effect and where each comes from."""
    from lorag.client.config import config_path

    cfg = state.config()
    click.echo(f"config file  {config_path()}")
    click.echo(f"endpoint     {cfg.endpoint}  ({cfg.sources.get('endpoint', '?')})")
    click.echo(f"api_key      {_mask(cfg.api_key)}  ({cfg.sources.get('api_key', 'none')})")
    click.echo(f"timeout      {cfg.timeout:g} s  ({cfg.sources.get('timeout', '?')})")
    if cfg.tls is None:
        click.echo(f"tls          off (plaintext)  ({cfg.sources.get('tls', 'default')})")
    else:
        t = cfg.tls
        click.echo(f"tls          on  ({cfg.sources.get('tls', '?')})")
        click.echo(f"tls_ca       {t.ca_file or '(system roots)'}  ({cfg.sources.get('tls_ca', '?')})")
        if t.cert_file:
            click.echo(f"tls_cert     {t.cert_file}  ({cfg.sources.get('tls_cert', '?')})")
            click.echo(f"tls_key      {t.key_file}  ({cfg.sources.get('tls_key', '?')})")
        if t.server_name:
            click.echo(f"tls_server_name {t.server_name}  ({cfg.sources.get('tls_server_name', '?')})")


@config.command("set")
@click.argument("name", type=click.Choice(SETTABLE))
@click.argument("value")
def set_value(name: str, value: str) -> None:
    """Set one setting in the config file."""
    from lorag.client.config import PATH_KEYS, config_path, read_config_file, write_config_file

    if name == "timeout":
        try:
            if float(value) <= 0:
                raise ValueError
        except ValueError:
            raise click.BadParameter("a positive number of seconds", param_hint="VALUE") from None
    if name == "tls":
        from lorag.client.config import parse_bool

        try:
            parsed: object = parse_bool(value, name="tls")
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="VALUE") from None
    elif name in PATH_KEYS:
        parsed = str(Path(value).expanduser().resolve())
    else:
        parsed = float(value) if name == "timeout" else value
    path = config_path()
    values = read_config_file(path)
    values[name] = parsed
    write_config_file(values, path)
    click.echo(f"{name} saved to {path}")


@config.command()
@click.argument("name", type=click.Choice(SETTABLE))
def unset(name: str) -> None:
    """Remove one setting from the config file."""
    from lorag.client.config import config_path, read_config_file, write_config_file

    path = config_path()
    values = read_config_file(path)
    if values.pop(name, None) is not None:
        write_config_file(values, path)
    click.echo(f"{name} removed from {path}")

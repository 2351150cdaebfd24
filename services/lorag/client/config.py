"""Where the endpoint and API key come from: arguments, environment, config file, local defaults.

Precedence, highest first:

1. arguments (``--endpoint``/``--api-key`` on the command line, ``Client.from_config(...)``)
2. environment: ``LORAG_ENDPOINT`` (or the older ``LORAG_TARGET``), ``LORAG_API_KEY``,
   ``LORAG_TIMEOUT``; TLS: ``LORAG_TLS`` (true/false), ``LORAG_TLS_CA``, ``LORAG_TLS_CERT``,
   ``LORAG_TLS_KEY``, ``LORAG_TLS_SERVER_NAME``
3. the config file: ``$LORAG_CONFIG``, else ``$XDG_CONFIG_HOME/lorag/config.toml``, else
   ``~/.config/lorag/config.toml`` (written by ``lorag login`` / ``lorag config set``)::

       endpoint = "lorag.example.com:9000"
       api_key = "lrg_..."
       timeout = 30
       tls_ca = "ca.pem"            # relative paths are relative to the config file
       tls_cert = "client.pem"      # mutual TLS: the client certificate and its key
       tls_key = "client.key"

4. defaults: ``127.0.0.1:9000``, plaintext; the key ``lorag serve`` saved in its data dir on first run.

TLS is on when ``tls`` is true or a CA bundle or client certificate is given; with ``tls`` alone
the system's trusted roots verify the server.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorag.client.tls import TLSConfig, TLSConfigError

DEFAULT_ENDPOINT = "127.0.0.1:9000"
DEFAULT_TIMEOUT = 30.0
#: Keys the config file may hold, with their types.
CONFIG_KEYS: dict[str, type] = {
    "endpoint": str,
    "api_key": str,
    "timeout": float,
    "tls": bool,
    "tls_ca": str,
    "tls_cert": str,
    "tls_key": str,
    "tls_server_name": str,
}
#: Config keys holding file paths (relative ones are taken from the config file's directory).
PATH_KEYS = ("tls_ca", "tls_cert", "tls_key")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


class ConfigError(ValueError):
    """The config file cannot be read or a value has the wrong type."""


@dataclass(frozen=True)
class ClientConfig:
    """The resolved settings and, per setting, where it came from (``sources``)."""

    endpoint: str
    api_key: str | None
    timeout: float
    sources: Mapping[str, str] = field(default_factory=dict)
    #: TLS settings of the channel; None: plaintext.
    tls: TLSConfig | None = None


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The config file this environment uses (it need not exist)."""
    env = os.environ if env is None else env
    if env.get("LORAG_CONFIG"):
        return Path(env["LORAG_CONFIG"]).expanduser()
    base = (
        Path(env["XDG_CONFIG_HOME"]).expanduser() if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    )
    return base / "lorag" / "config.toml"


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in ``path`` ({} when it does not exist); ConfigError for bad content."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    out: dict[str, Any] = {}
    for key, value in data.items():
        kind = CONFIG_KEYS.get(key)
        if kind is None:
            raise ConfigError(f"{path}: unknown setting {key!r} (known: {', '.join(CONFIG_KEYS)})")
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind):
            raise ConfigError(f"{path}: {key} must be a {kind.__name__}")
        out[key] = value
    return out


def write_config_file(values: Mapping[str, Any], path: Path) -> None:
    """Write ``values`` (keys of CONFIG_KEYS) to ``path``, readable by the owner only."""
    lines = []
    for key, value in values.items():
        if key not in CONFIG_KEYS:
            raise ConfigError(f"unknown setting {key!r} (known: {', '.join(CONFIG_KEYS)})")
        if CONFIG_KEYS[key] is float:
            lines.append(f"{key} = {float(value)!r}")
        elif CONFIG_KEYS[key] is bool:
            lines.append(f"{key} = {'true' if value else 'false'}")
        else:
            lines.append(f"{key} = {json.dumps(str(value))}")  # a JSON string is a TOML basic string
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def _bootstrap_key() -> str | None:
    """The operator key ``lorag serve`` saved in the local data dir on first run, if readable."""
    from lorag.common.settings import LoragSettings

    try:
        path = LoragSettings().data_dir / "bootstrap-api-key"
        return path.read_text().strip() or None
    except (OSError, ValueError):
        return None


def parse_bool(value: str, *, name: str) -> bool:
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def resolve(
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    tls: bool | None = None,
    tls_ca: str | Path | None = None,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    tls_server_name: str | None = None,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
    local_key: bool = True,
) -> ClientConfig:
    """The endpoint, key, timeout and TLS settings by the precedence of this module;
    ``local_key=False`` leaves out the key file of a local ``lorag serve``."""
    env = os.environ if env is None else env
    path = path or config_path(env)
    file_values = read_config_file(path)
    sources: dict[str, str] = {}

    def pick(name: str, given, env_names: tuple[str, ...], default, *, record_default: bool = True):
        if given is not None:
            sources[name] = "argument"
            return given
        for var in env_names:
            if env.get(var):
                sources[name] = f"${var}"
                return env[var]
        if name in file_values:
            sources[name] = str(path)
            value = file_values[name]
            if name in PATH_KEYS:
                value = str((path.parent / Path(value).expanduser()).resolve())
            return value
        if record_default:
            sources[name] = "default"
        return default

    chosen_endpoint = pick("endpoint", endpoint, ("LORAG_ENDPOINT", "LORAG_TARGET"), DEFAULT_ENDPOINT)
    key = pick("api_key", api_key, ("LORAG_API_KEY",), None)
    if key is None and local_key:
        key = _bootstrap_key()
        if key:
            sources["api_key"] = "bootstrap key of the local data dir"
    raw_timeout = pick("timeout", timeout, ("LORAG_TIMEOUT",), DEFAULT_TIMEOUT)
    try:
        chosen_timeout = float(raw_timeout)
    except ValueError:
        raise ConfigError(f"timeout must be a number of seconds, not {raw_timeout!r}") from None
    if chosen_timeout <= 0:
        raise ConfigError("timeout must be positive")

    # TLS settings appear in ``sources`` only when set somewhere (plaintext is the default).
    ca = pick("tls_ca", tls_ca, ("LORAG_TLS_CA",), None, record_default=False)
    cert = pick("tls_cert", tls_cert, ("LORAG_TLS_CERT",), None, record_default=False)
    tls_key_file = pick("tls_key", tls_key, ("LORAG_TLS_KEY",), None, record_default=False)
    server_name = pick(
        "tls_server_name", tls_server_name, ("LORAG_TLS_SERVER_NAME",), None, record_default=False
    )
    enabled = pick("tls", tls, ("LORAG_TLS",), None, record_default=False)
    if isinstance(enabled, str):
        enabled = parse_bool(enabled, name="LORAG_TLS")
    if enabled is None:
        enabled = bool(ca or cert)
        if enabled:
            sources["tls"] = "a CA bundle or client certificate is set"
    tls_config = None
    if enabled:
        try:
            tls_config = TLSConfig(
                ca_file=Path(ca).expanduser() if ca else None,
                cert_file=Path(cert).expanduser() if cert else None,
                key_file=Path(tls_key_file).expanduser() if tls_key_file else None,
                server_name=server_name or None,
            )
        except TLSConfigError as exc:
            raise ConfigError(str(exc)) from None
    return ClientConfig(chosen_endpoint, key or None, chosen_timeout, sources, tls_config)

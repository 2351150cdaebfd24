"""Settings base. Every service reads its settings once at start-up, never at import time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "lorag"

#: Application names of the Ray Serve deployment; clients pick one with `application` metadata.
APPLICATIONS = ("embedding", "retrieval", "reranking", "generation", "adapters", "rag")


_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@:]*)(?::[^/@]*)?@")


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (``postgresql://u:pw@h/db`` -> ``postgresql://u:***@h/db``)."""
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


class RedactedRepr:
    """Mixin for settings classes: URLs with credentials and secret-bearing fields stay out of
    ``repr``/``str`` (SecretStr fields already print as ``**********``)."""

    _redacted_urls: ClassVar[tuple[str, ...]] = ()
    _hidden: ClassVar[tuple[str, ...]] = ()

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():  # type: ignore[misc]
            if name in self._redacted_urls and isinstance(value, str):
                value = redact_url(value)
            elif name in self._hidden and value:
                value = "**********"
            yield name, value


class LoragSettings(RedactedRepr, BaseSettings):
    """Platform-wide settings, environment prefix ``LORAG_``.

    Service settings subclass this with their own prefix (``LORAG_<SVC>_``) for their own fields.
    """

    model_config = SettingsConfigDict(env_prefix="LORAG_", extra="ignore", frozen=True)
    _redacted_urls: ClassVar[tuple[str, ...]] = ("registry_url",)

    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Where embedded state lives.")
    models_dir: Path | None = Field(
        None, description="Where locally built/converted models are kept; default: data_dir/models."
    )
    registry_url: str | None = Field(
        None, description="SQLAlchemy URL of the registry; default: SQLite under data_dir."
    )
    grpc_host: str = Field("127.0.0.1", description="Bind address of the in-process gRPC host.")
    grpc_port: int = Field(9000, ge=0, le=65535, description="gRPC port (Ray Serve proxy).")
    max_message_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest gRPC message accepted, in bytes."
    )
    request_timeout_s: float = Field(
        300.0, gt=0, description="Server-side limit for requests that carry no deadline."
    )
    auth_cache_ttl_s: float = Field(
        0.5, ge=0, le=0.9, description="How long a verified key is trusted before re-checking."
    )
    bootstrap_api_key: SecretStr | None = Field(
        None, description="Operator key created on first run instead of a random one."
    )
    auth_secret: SecretStr | None = Field(
        None,
        description="Server secret of the API key hashes (HMAC-SHA256); default: generated once and "
        "kept in data_dir/auth-secret (mode 0600).",
    )
    auth_previous_secret: SecretStr | None = Field(
        None,
        description="The secret before a rotation: keys hashed under it still verify and are "
        "rehashed under auth_secret on their next use.",
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate chain of the in-process gRPC host; with tls_key_file: TLS on."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle; when set, clients must present a certificate it signed (mTLS)."
    )
    log_level: str = Field("INFO", description="Python logging level.")
    log_json: bool = Field(True, description="One JSON object per log line.")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Prometheus port of the in-process host (unset: none; 0: any)."
    )
    metrics_host: str = Field("127.0.0.1", description="Bind address of the in-process metrics port.")
    metrics_export_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Ray's metrics export port on this node (`lorag serve`); unset: Ray picks one.",
    )
    metrics_tenants: str = Field(
        "", description="Comma-separated tenants that get their own metric label; the rest are `other`."
    )
    metrics_max_tenants: int = Field(
        100, ge=0, description="Without metrics_tenants: the first N tenants seen get their own label."
    )
    metrics_max_adapters: int = Field(200, ge=0, description="Adapter versions with their own metric label.")
    usage_flush_s: float = Field(5.0, gt=0, description="How often usage counters are added to the registry.")
    # Load and quotas (lorag.common.ratelimit): limits hold per process, i.e. per Ray Serve replica.
    rate_limit_requests_per_s: float = Field(
        0.0, ge=0, description="Requests per second per tenant (token bucket); 0: unlimited."
    )
    rate_limit_burst: int = Field(
        0, ge=0, description="Requests a tenant may make at once above its rate; 0: one second's worth."
    )
    rate_limit_max_concurrent: int = Field(
        0, ge=0, description="Requests in progress per tenant (watch streams excluded); 0: unlimited."
    )
    rate_limit_quota_ttl_s: float = Field(
        10.0, gt=0, description="How long a tenant's max_requests_per_minute quota is used before re-reading."
    )
    rate_limit_idle_s: float = Field(
        300.0, gt=0, description="A tenant's limiter state is forgotten after this long without requests."
    )
    rate_limit_max_tenants: int = Field(
        10_000, ge=1, description="Tenants whose limiter state is kept at most (least recently used out)."
    )
    rate_limit_auth_failures: int = Field(
        20, ge=0, description="Failed authentications per peer address and window before a lockout; 0: off."
    )
    rate_limit_auth_window_s: float = Field(
        60.0, gt=0, description="Window of rate_limit_auth_failures; a locked-out peer waits until it ends."
    )
    rate_limit_auth_max_peers: int = Field(
        10_000, ge=1, description="Peer addresses whose failures are counted at most (oldest window out)."
    )

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return Path(value).expanduser()

    @model_validator(mode="after")
    def _tls_pair(self) -> LoragSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("LORAG_TLS_CERT_FILE and LORAG_TLS_KEY_FILE must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("LORAG_TLS_CLIENT_CA_FILE (mTLS) needs LORAG_TLS_CERT_FILE and _KEY_FILE")
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def metrics_tenant_list(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.metrics_tenants.split(",") if t.strip())

    @property
    def resolved_models_dir(self) -> Path:
        return Path(self.models_dir).expanduser() if self.models_dir else self.data_dir / "models"

    @property
    def resolved_registry_url(self) -> str:
        if self.registry_url:
            return self.registry_url
        return f"sqlite:///{self.data_dir / 'registry.db'}"


def load_settings() -> LoragSettings:
    """Read the platform settings from the environment (call at start-up)."""
    return LoragSettings()

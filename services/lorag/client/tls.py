"""TLS for client channels: a CA bundle to trust, optionally a client certificate (mutual TLS).

>>> from lorag.client import Client, TLSConfig
>>> tls = TLSConfig(ca_file="ca.pem", cert_file="client.pem", key_file="client.key")
>>> Client("lorag.example.com:443", api_key="lrg_...", tls=tls)

Without ``ca_file`` the system's trusted roots verify the server. ``server_name`` checks the
server certificate against another name than the endpoint's host (e.g. connecting by IP).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc


class TLSConfigError(ValueError):
    """A TLS file cannot be read or the settings do not fit together."""


@dataclass(frozen=True)
class TLSConfig:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise TLSConfigError("a client certificate needs its key: give both tls_cert and tls_key")

    def credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials from the files (read now)."""
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file, "CA bundle") if self.ca_file else None,
            private_key=_read(self.key_file, "client key") if self.key_file else None,
            certificate_chain=_read(self.cert_file, "client certificate") if self.cert_file else None,
        )

    def channel_options(self) -> list[tuple[str, Any]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def _read(path: Path, what: str) -> bytes:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"cannot read the TLS {what} {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise TLSConfigError(f"the TLS {what} {path} is not PEM")
    return data

"""Adapter references and canary routing, shared by the registry and the replicas' AdapterCache.

A bare ``name`` goes to the canary version for ``canary_weight`` % of request ids and to the primary
version (``production``, or the newest version) for the rest. The split is a pure function of
(adapter name, request id), so the same request id always gets the same version wherever it is
routed, and A/B results can be attributed afterwards.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from lorag.common.errors import InvalidArgument

ADAPTER_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
ALIAS_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
VERSION_RE = re.compile(r"^v([1-9][0-9]{0,8})$")
_VERSION_LIKE_RE = re.compile(r"^v[0-9]+$")
PRODUCTION = "production"
CANARY = "canary"
MAX_REQUEST_ID = 128


@dataclass(frozen=True)
class ParsedRef:
    name: str
    alias: str = ""
    version: int = 0

    @property
    def bare(self) -> bool:
        return not self.alias and not self.version


def check_adapter_name(name: str, *, field: str = "name") -> str:
    if not ADAPTER_NAME_RE.fullmatch(name or ""):
        raise InvalidArgument(
            f"{name!r} is not a valid adapter name: 1-64 lower-case letters, digits, '-' and '_', "
            "starting with a letter",
            field=field,
        )
    return name


def check_alias(alias: str, *, field: str = "alias") -> str:
    if not ALIAS_RE.fullmatch(alias or "") or _VERSION_LIKE_RE.fullmatch(alias):
        raise InvalidArgument(
            f"{alias!r} is not a valid alias: 1-32 lower-case letters, digits and '-', starting with a "
            "letter, and not of the form v<digits>",
            field=field,
        )
    return alias


def parse_ref(ref: str, *, field: str = "ref.ref") -> ParsedRef:
    """``name``, ``name@alias`` or ``name@v<n>``."""
    if not ref:
        raise InvalidArgument("must not be empty", field=field)
    name, sep, suffix = ref.partition("@")
    check_adapter_name(name, field=field)
    if not sep:
        return ParsedRef(name)
    match = VERSION_RE.fullmatch(suffix)
    if match:
        return ParsedRef(name, version=int(match.group(1)))
    check_alias(suffix, field=field)
    return ParsedRef(name, alias=suffix)


def check_request_id(request_id: str) -> str:
    """The given request id, or a fresh random one when empty."""
    if not request_id:
        return secrets.token_hex(8)
    if len(request_id) > MAX_REQUEST_ID or not request_id.isprintable():
        raise InvalidArgument(f"must be 1-{MAX_REQUEST_ID} printable characters", field="request_id")
    return request_id


def bucket(adapter_name: str, request_id: str) -> int:
    """The request id's bucket 0-99 for this adapter (first 8 hex digits of SHA-256, mod 100)."""
    digest = hashlib.sha256(f"{adapter_name}/{request_id}".encode()).hexdigest()
    return int(digest[:8], 16) % 100


@dataclass(frozen=True)
class Routing:
    """Where the bare name of one adapter goes."""

    primary_version_id: str
    primary_version: int
    primary_alias: str  # "production" or "" (newest-version fallback)
    canary_version_id: str = ""
    canary_version: int = 0
    canary_weight: int = 0

    def choose(self, adapter_name: str, request_id: str) -> tuple[str, int, str]:
        """(version id, version number, alias) for one request id."""
        if self.canary_version_id and bucket(adapter_name, request_id) < self.canary_weight:
            return self.canary_version_id, self.canary_version, CANARY
        return self.primary_version_id, self.primary_version, self.primary_alias


@dataclass(frozen=True)
class Resolution:
    """What a reference resolved to."""

    version_id: str
    adapter_name: str
    version: int
    kind: str
    base_model: str
    alias: str
    revision: int
    sha256: str
    request_id: str = ""
    routing: Routing | None = None

    def rerouted(self, request_id: str) -> Resolution:
        """The same bare-name resolution for another request id (no registry call)."""
        if self.routing is None:
            return self
        version_id, version, alias = self.routing.choose(self.adapter_name, request_id)
        return Resolution(
            version_id=version_id,
            adapter_name=self.adapter_name,
            version=version,
            kind=self.kind,
            base_model=self.base_model,
            alias=alias,
            revision=self.revision,
            sha256="" if version_id != self.version_id else self.sha256,
            request_id=request_id,
            routing=self.routing,
        )

"""Adapter registry logic on plain Python types: adapters, immutable versions, aliases, revisions.

Nothing in the platform loads adapter files except through this registry. Every operation acts in
the caller's tenant; foreign or unknown names are NOT_FOUND. Files are staged on the local disk,
hashed while they arrive, validated, and only then published: first the blobs under the version's
own prefix, then the registry row in one transaction. A failure at any step leaves nothing visible.

Every change of aliases, versions or adapters bumps the single registry revision in the same
transaction; updating that one row is also what serialises concurrent writers, so revisions are
strictly increasing in commit order and watchers never miss one. The same change bumps the
tenant's own revision, the only one a tenant is shown (in responses, events and audit details):
one more per change of its registry, with no gaps, so it tells nothing of other tenants' activity.
All methods are blocking (SQL and blob I/O): call them off the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import math
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lorag.adapters import validation
from lorag.adapters.blobstore import BlobStore
from lorag.adapters.models import (
    AdapterAliasRow,
    AdapterEventRow,
    AdapterRow,
    AdapterVersionRow,
    RegistryRevisionRow,
    TenantRevisionRow,
)
from lorag.adapters.routing import (
    CANARY,
    PRODUCTION,
    Resolution,
    Routing,
    check_adapter_name,
    check_alias,
    check_request_id,
    parse_ref,
)
from lorag.adapters.settings import AdapterSettings, BaseModelSpec
from lorag.common import metrics as obs
from lorag.common.auth import require_role
from lorag.common.db import Database, utcnow
from lorag.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LoragError,
    NotFound,
    OutOfRange,
    ResourceExhausted,
)
from lorag.common.paging import decode_token, encode_token, page_size
from lorag.common.tenancy import AuditEventRow, Principal, Role, TenantRow, _audit, validate_text

log = logging.getLogger("lorag.adapters")

KINDS = ("generation", "reranking")
EVENT_VERSION_CREATED = "VERSION_CREATED"
EVENT_ALIAS_SET = "ALIAS_SET"
EVENT_ALIAS_DELETED = "ALIAS_DELETED"
EVENT_ADAPTER_DELETED = "ADAPTER_DELETED"
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_DESCRIPTION = 1000


# -- value types ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AliasInfo:
    adapter_name: str
    name: str
    version: int
    version_id: str
    traffic_weight: int
    previous_version_id: str
    updated_by: str
    updated_at: dt.datetime


@dataclass(frozen=True)
class AdapterInfo:
    row: AdapterRow
    aliases: list[AliasInfo]


@dataclass(frozen=True)
class VersionInfo:
    row: AdapterVersionRow
    adapter_name: str
    kind: str
    base_model: str

    @property
    def version_id(self) -> str:
        return self.row.version_id

    @property
    def files(self) -> list[dict[str, Any]]:
        return self.row.files


@dataclass(frozen=True)
class Page:
    items: list
    next_token: str


@dataclass(frozen=True)
class UploadMetadata:
    adapter_name: str
    kind: str  # "generation" | "reranking" | "" (unspecified)
    base_model: str = ""
    description: str = ""
    expected_sha256: str = ""
    total_size: int = 0
    parent_version_id: str = ""


@dataclass
class _Target:
    """A validated destination of a new version (adapter may not exist yet)."""

    tenant_id: str
    name: str
    kind: str
    base_model: str
    spec: BaseModelSpec


class _Duplicate(Exception):
    def __init__(self, version: AdapterVersionRow) -> None:
        self.version = version


class Revisions(NamedTuple):
    """The revisions a change took: registry-wide (internal) and the tenant's own (shown to it)."""

    registry: int
    tenant: int


class _NoChange(Exception):
    pass


class ChangeSignal:
    """Wakes WatchRevisions streams of this process right after a local change (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = set()

    def notify(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, set()
        for loop, fut in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, fut)

    async def wait(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        entry = (loop, fut)
        with self._lock:
            self._waiters.add(entry)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(entry)


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def check_storage_quota(s: Session, tenant_id: str, size: int) -> None:
    """Refuse ``size`` new bytes beyond the tenant's storage quota: adapter versions and training
    datasets count against the same quota (in the caller's transaction)."""
    from lorag.training.models import DatasetRow

    tenant = s.get(TenantRow, tenant_id)
    if tenant is None:
        raise NotFound(f"tenant {tenant_id!r} not found")
    if tenant.max_storage_bytes:
        used = sum(
            s.scalar(select(func.coalesce(func.sum(col), 0)).where(tenant_col == tenant_id)) or 0
            for col, tenant_col in (
                (AdapterVersionRow.size_bytes, AdapterVersionRow.tenant_id),
                (DatasetRow.size_bytes, DatasetRow.tenant_id),
            )
        )
        if used + size > tenant.max_storage_bytes:
            raise ResourceExhausted(
                f"storage quota exceeded: {used} bytes used (adapters and datasets) + {size} new > "
                f"{tenant.max_storage_bytes} bytes"
            )


# -- the registry ---------------------------------------------------------------------------------


class AdapterRegistry:
    """Registry operations; every public method checks the caller's role and tenant."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        settings: AdapterSettings,
        *,
        staging_root: Path,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.settings = settings
        self.staging_root = Path(staging_root)
        self.staging_root.mkdir(parents=True, exist_ok=True)
        self.changes = ChangeSignal()

    @classmethod
    def build(
        cls, db: Database, *, data_dir: Path, settings: AdapterSettings | None = None
    ) -> AdapterRegistry:
        settings = settings or AdapterSettings()
        blobs = BlobStore(settings.blob_root(data_dir), settings.blob_options)
        return cls(db, blobs, settings, staging_root=settings.staging_root(data_dir))

    # -- base models ------------------------------------------------------------------------
    def base_model_for(self, kind: str, base_model: str) -> tuple[str, BaseModelSpec]:
        name = base_model or (
            self.settings.default_generation_base_model
            if kind == "generation"
            else self.settings.default_reranking_base_model
        )
        spec = self.settings.base_models.get(name)
        if spec is None:
            known = ", ".join(sorted(self.settings.base_models)) or "none"
            raise FailedPrecondition(f"base_model: unknown base model {name!r} (known: {known})")
        if spec.kind != kind:
            raise FailedPrecondition(f"base_model: {name!r} is a {spec.kind} model, not a {kind} model")
        return name, spec

    # -- adapters ---------------------------------------------------------------------------
    def create_adapter(
        self,
        principal: Principal,
        *,
        name: str,
        kind: str,
        base_model: str = "",
        description: str = "",
        trace_id: str = "",
    ) -> AdapterInfo:
        require_role(principal, Role.ADMIN)
        check_adapter_name(name)
        kind = _check_kind(kind)
        validate_text(description, field="description", max_len=_MAX_DESCRIPTION)
        base_model, _ = self.base_model_for(kind, base_model)
        with self.db.session.begin() as s:
            if self._adapter(s, principal.tenant_id, name) is not None:
                raise AlreadyExists(f"adapter {name!r} already exists")
            row = self._insert_adapter(
                s,
                principal,
                name=name,
                kind=kind,
                base_model=base_model,
                description=description,
                trace_id=trace_id,
            )
            try:
                s.flush()
            except IntegrityError as exc:
                raise AlreadyExists(f"adapter {name!r} already exists") from exc
        return AdapterInfo(row, [])

    def get_adapter(self, principal: Principal, *, name: str) -> AdapterInfo:
        check_adapter_name(name)
        with self.db.session() as s:
            row = self._require_adapter(s, principal.tenant_id, name)
            return AdapterInfo(row, self._aliases(s, [row])[row.adapter_id])

    def list_adapters(self, principal: Principal, *, kind: str = "", size: int = 0, token: str = "") -> Page:
        limit = page_size(size)
        after = decode_token(token)
        with self.db.session() as s:
            q = select(AdapterRow).where(AdapterRow.tenant_id == principal.tenant_id, AdapterRow.name > after)
            if kind:
                q = q.where(AdapterRow.kind == _check_kind(kind))
            rows = list(s.scalars(q.order_by(AdapterRow.name).limit(limit)))
            aliases = self._aliases(s, rows)
        items = [AdapterInfo(r, aliases[r.adapter_id]) for r in rows]
        return Page(items, encode_token(rows[-1].name) if len(rows) == limit else "")

    def delete_adapter(
        self, principal: Principal, *, name: str, force: bool = False, trace_id: str = ""
    ) -> tuple[int, int]:
        """Delete an adapter with its versions, aliases and blobs; (versions removed, revision)."""
        require_role(principal, Role.ADMIN)
        check_adapter_name(name)
        with self.db.session.begin() as s:
            rev = self._bump(s, principal.tenant_id)
            revision = rev.tenant
            row = self._require_adapter(s, principal.tenant_id, name)
            alias_count = s.scalar(
                select(func.count())
                .select_from(AdapterAliasRow)
                .where(AdapterAliasRow.adapter_id == row.adapter_id)
            )
            if alias_count and not force:
                raise FailedPrecondition(
                    f"adapter {name!r} still has {alias_count} alias(es); delete them or pass force"
                )
            prefixes = list(
                s.scalars(
                    select(AdapterVersionRow.blob_path).where(AdapterVersionRow.adapter_id == row.adapter_id)
                )
            )
            s.execute(delete(AdapterAliasRow).where(AdapterAliasRow.adapter_id == row.adapter_id))
            s.execute(delete(AdapterVersionRow).where(AdapterVersionRow.adapter_id == row.adapter_id))
            s.execute(delete(AdapterRow).where(AdapterRow.adapter_id == row.adapter_id))
            self._event(s, rev, row, EVENT_ADAPTER_DELETED)
            s.add(
                _audit(
                    principal.tenant_id,
                    principal.key_id,
                    "adapter.delete",
                    f"adapters/{name}",
                    {"versions": len(prefixes), "aliases": alias_count, "revision": revision},
                    trace_id,
                )
            )
        for prefix in prefixes:
            try:
                self.blobs.delete_prefix(prefix)
            except OSError:  # the rows are gone; an orphaned blob is invisible
                log.warning("could not delete blob prefix %s", prefix, exc_info=True)
        self.changes.notify()
        return len(prefixes), revision

    # -- versions ---------------------------------------------------------------------------
    def begin_upload(
        self, principal: Principal, meta: UploadMetadata, *, trace_id: str = ""
    ) -> UploadSession:
        require_role(principal, Role.ADMIN)
        target = self._target(principal.tenant_id, meta.adapter_name, meta.kind, meta.base_model)
        if meta.total_size <= 0:
            raise InvalidArgument(
                "must be the total number of bytes that follow (> 0)", field="metadata.total_size"
            )
        if meta.total_size > self.settings.max_adapter_bytes:
            raise InvalidArgument(
                f"{meta.total_size} bytes is over the adapter size limit of "
                f"{self.settings.max_adapter_bytes} bytes (LORAG_ADAPTERS_MAX_ADAPTER_BYTES)",
                field="metadata.total_size",
            )
        _check_sha(meta.expected_sha256, field="metadata.expected_sha256")
        validate_text(meta.description, field="metadata.description", max_len=_MAX_DESCRIPTION)
        return UploadSession(self, principal, target, meta, trace_id=trace_id)

    def register_from_uri(
        self,
        principal: Principal,
        *,
        adapter_name: str,
        kind: str,
        base_model: str = "",
        uri: str,
        expected_sha256: str = "",
        parent_version_id: str = "",
        metrics: dict[str, float] | None = None,
        description: str = "",
        created_by: str = "",
        training_job_id: str = "",
        trace_id: str = "",
    ) -> tuple[VersionInfo, bool]:
        """Register files already in the blob store; (version, created). Identical content returns
        the existing version with ``created`` False."""
        require_role(principal, Role.ADMIN)
        target = self._target(principal.tenant_id, adapter_name, kind, base_model, field_prefix="")
        _check_sha(expected_sha256, field="expected_sha256")
        validate_text(description, field="description", max_len=_MAX_DESCRIPTION)
        metrics = _check_metrics(metrics or {})
        path = self.blobs.resolve_uri(uri)
        own = self.blobs.tenant_prefix(principal.tenant_id).rstrip("/") + "/"
        if not principal.has(Role.OPERATOR) and not path.startswith(own):
            raise InvalidArgument(
                f"admins may register only from their tenant's prefix {self.blobs.uri(own)!r}", field="uri"
            )
        entries = self.blobs.list_files(path)
        total = 0
        for e in entries:
            if e.get("type") == "directory":
                raise InvalidArgument(f"{e['name']!r} is a directory; an adapter is flat", field="uri")
            if e.get("islink"):
                raise InvalidArgument(
                    f"{e['name']!r} is a symbolic link; links are not accepted", field="uri"
                )
            validation.check_file_name(e["name"], field="uri")
            total += e["size"]
        validation.require_files([e["name"] for e in entries])
        if total > self.settings.max_adapter_bytes:
            raise InvalidArgument(
                f"the files hold {total} bytes; the adapter size limit is {self.settings.max_adapter_bytes}",
                field="uri",
            )
        staging = self._staging_dir()
        try:
            files, hashes, sizes = {}, {}, {}
            for e in entries:
                local = staging / e["name"]
                digest = hashlib.sha256()
                with self.blobs.open(e["path"]) as src, open(local, "wb") as dst:
                    while chunk := src.read(1024 * 1024):
                        digest.update(chunk)
                        dst.write(chunk)
                files[e["name"]], hashes[e["name"]], sizes[e["name"]] = (
                    local,
                    digest.hexdigest(),
                    local.stat().st_size,
                )
            return self._validate_and_publish(
                principal,
                target,
                files=files,
                hashes=hashes,
                sizes=sizes,
                expected_sha256=expected_sha256,
                parent_version_id=parent_version_id,
                metrics=metrics,
                description=description,
                created_by=created_by or principal.key_id,
                training_job_id=training_job_id,
                action="adapter_version.register",
                details={"uri": uri},
                trace_id=trace_id,
                field_prefix="",
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def training_target(self, tenant_id: str, adapter_name: str, kind: str, base_model: str = "") -> str:
        """The base model a trained version of ``adapter_name`` must use (the adapter's own when it
        exists); FAILED_PRECONDITION when kind or base model disagree with the adapter."""
        return self._target(tenant_id, adapter_name, kind, base_model, field_prefix="").base_model

    def register_trained(
        self,
        principal: Principal,
        *,
        adapter_name: str,
        kind: str,
        base_model: str,
        files: dict[str, Path],
        metrics: dict[str, float],
        parent_version_id: str = "",
        training_job_id: str,
        description: str = "",
        lineage: dict[str, Any] | None = None,
        trace_id: str = "",
    ) -> tuple[VersionInfo, bool]:
        """Register the files a training job wrote locally as a new version (validated like an
        upload); ``lineage`` (dataset hash, base model, parent, hyperparameters) goes to the audit
        log with the version, ``created_by`` is ``training:<job id>``."""
        require_role(principal, Role.ADMIN)
        target = self._target(principal.tenant_id, adapter_name, kind, base_model, field_prefix="")
        validate_text(description, field="description", max_len=_MAX_DESCRIPTION)
        hashes, sizes = {}, {}
        for name, local in files.items():
            digest = hashlib.sha256()
            with open(local, "rb") as fh:
                while chunk := fh.read(1024 * 1024):
                    digest.update(chunk)
            hashes[name], sizes[name] = digest.hexdigest(), Path(local).stat().st_size
        return self._validate_and_publish(
            principal,
            target,
            files=files,
            hashes=hashes,
            sizes=sizes,
            expected_sha256="",
            parent_version_id=parent_version_id,
            metrics=_check_metrics(metrics),
            description=description,
            created_by=f"training:{training_job_id}",
            training_job_id=training_job_id,
            action="adapter_version.train",
            details={"training_job_id": training_job_id, "lineage": lineage or {}},
            trace_id=trace_id,
            field_prefix="",
        )

    def get_version(self, principal: Principal, *, version_id: str = "", ref: str = "") -> VersionInfo:
        if bool(version_id) == bool(ref):
            raise InvalidArgument("exactly one of version_id and ref must be set", field="selector")
        if ref:
            version_id = self.resolve(principal.tenant_id, ref).version_id
        return self.version_by_id(principal.tenant_id, version_id)

    def version_by_id(self, tenant_id: str, version_id: str) -> VersionInfo:
        if not version_id or len(version_id) > 40:
            raise InvalidArgument("must be a version id", field="version_id")
        with self.db.session() as s:
            found = s.execute(
                select(AdapterVersionRow, AdapterRow)
                .join(AdapterRow, AdapterRow.adapter_id == AdapterVersionRow.adapter_id)
                .where(AdapterVersionRow.version_id == version_id, AdapterVersionRow.tenant_id == tenant_id)
            ).first()
        if found is None:
            raise NotFound(f"adapter version {version_id!r} not found")
        v, a = found
        return VersionInfo(v, a.name, a.kind, a.base_model)

    def list_versions(
        self, principal: Principal, *, adapter_name: str, state: str = "", size: int = 0, token: str = ""
    ) -> Page:
        check_adapter_name(adapter_name, field="adapter_name")
        limit = page_size(size)
        after = decode_token(token)
        with self.db.session() as s:
            a = self._require_adapter(s, principal.tenant_id, adapter_name)
            q = select(AdapterVersionRow).where(AdapterVersionRow.adapter_id == a.adapter_id)
            if after:
                if not after.isdigit():
                    raise InvalidArgument("malformed page token", field="page.page_token")
                q = q.where(AdapterVersionRow.version < int(after))
            if state:
                q = q.where(AdapterVersionRow.state == state)
            rows = list(s.scalars(q.order_by(AdapterVersionRow.version.desc()).limit(limit)))
        items = [VersionInfo(r, a.name, a.kind, a.base_model) for r in rows]
        return Page(items, encode_token(str(rows[-1].version)) if len(rows) == limit else "")

    def download(
        self, tenant_id: str, version_id: str, *, chunk_bytes: int | None = None
    ) -> tuple[VersionInfo, Iterator[tuple[str, bytes]]]:
        """The version and an iterator of (file name, chunk) over its files, in manifest order."""
        info = self.version_by_id(tenant_id, version_id)
        size = chunk_bytes or self.settings.download_chunk_bytes

        def chunks() -> Iterator[tuple[str, bytes]]:
            for f in info.files:
                for chunk in self.blobs.open_chunks(f"{info.row.blob_path}/{f['name']}", size):
                    yield f["name"], chunk

        return info, chunks()

    # -- aliases ----------------------------------------------------------------------------
    def set_alias(
        self,
        principal: Principal,
        *,
        adapter_name: str,
        alias: str,
        version: int,
        traffic_weight: int = 0,
        trace_id: str = "",
    ) -> tuple[AliasInfo, int]:
        """Point ``alias`` at version number ``version``; (alias after the change, revision)."""
        require_role(principal, Role.ADMIN)
        check_adapter_name(adapter_name, field="adapter_name")
        check_alias(alias)
        if version < 1:
            raise InvalidArgument(f"must be a version number >= 1 (got {version})", field="version")
        if not 0 <= traffic_weight <= 100:
            raise InvalidArgument(f"must be 0-100 (got {traffic_weight})", field="traffic_weight")
        if traffic_weight and alias != CANARY:
            raise InvalidArgument(f"only the {CANARY!r} alias takes a traffic weight", field="traffic_weight")
        try:
            with self.db.session.begin() as s:
                rev = self._bump(s, principal.tenant_id)
                revision = rev.tenant
                a = self._require_adapter(s, principal.tenant_id, adapter_name)
                v = s.scalar(
                    select(AdapterVersionRow).where(
                        AdapterVersionRow.adapter_id == a.adapter_id, AdapterVersionRow.version == version
                    )
                )
                if v is None:
                    raise NotFound(f"adapter {adapter_name!r} has no version {version}")
                row = s.scalar(
                    select(AdapterAliasRow).where(
                        AdapterAliasRow.adapter_id == a.adapter_id, AdapterAliasRow.name == alias
                    )
                )
                before = ""
                if row is None:
                    row = AdapterAliasRow(adapter_id=a.adapter_id, name=alias, previous_version_id="")
                    s.add(row)
                elif row.version_id == v.version_id and row.traffic_weight == traffic_weight:
                    raise _NoChange
                else:
                    before = row.version_id
                    if row.version_id != v.version_id:
                        row.previous_version_id = row.version_id
                row.version_id = v.version_id
                row.traffic_weight = traffic_weight
                row.updated_by = principal.key_id
                row.updated_at = utcnow()
                a.updated_at = row.updated_at
                self._event(s, rev, a, EVENT_ALIAS_SET, alias=alias, version=v, weight=traffic_weight)
                s.add(
                    _audit(
                        principal.tenant_id,
                        principal.key_id,
                        "alias.set",
                        f"adapters/{adapter_name}/aliases/{alias}",
                        {
                            "from_version_id": before,
                            "to_version_id": v.version_id,
                            "version": version,
                            "traffic_weight": traffic_weight,
                            "revision": revision,
                        },
                        trace_id,
                    )
                )
                s.flush()
                info = _alias_info(a.name, row, v.version)
        except _NoChange:
            info = self._alias(principal.tenant_id, adapter_name, alias)
            return info, self.current_revision(principal.tenant_id)
        _count_alias_change(principal.tenant_id, alias, "set")
        self.changes.notify()
        return info, revision

    def delete_alias(self, principal: Principal, *, adapter_name: str, alias: str, trace_id: str = "") -> int:
        require_role(principal, Role.ADMIN)
        check_adapter_name(adapter_name, field="adapter_name")
        check_alias(alias)
        with self.db.session.begin() as s:
            rev = self._bump(s, principal.tenant_id)
            revision = rev.tenant
            a = self._require_adapter(s, principal.tenant_id, adapter_name)
            row = self._require_alias(s, a, alias)
            s.delete(row)
            a.updated_at = utcnow()
            self._event(s, rev, a, EVENT_ALIAS_DELETED, alias=alias)
            s.add(
                _audit(
                    principal.tenant_id,
                    principal.key_id,
                    "alias.delete",
                    f"adapters/{adapter_name}/aliases/{alias}",
                    {"version_id": row.version_id, "revision": revision},
                    trace_id,
                )
            )
        _count_alias_change(principal.tenant_id, alias, "delete")
        self.changes.notify()
        return revision

    def rollback(
        self, principal: Principal, *, adapter_name: str, alias: str = PRODUCTION, trace_id: str = ""
    ) -> tuple[AliasInfo, int]:
        """Move ``alias`` back to its previous version (swapping the two, so twice is a no-op)."""
        require_role(principal, Role.ADMIN)
        check_adapter_name(adapter_name, field="adapter_name")
        check_alias(alias or PRODUCTION)
        alias = alias or PRODUCTION
        with self.db.session.begin() as s:
            rev = self._bump(s, principal.tenant_id)
            revision = rev.tenant
            a = self._require_adapter(s, principal.tenant_id, adapter_name)
            row = self._require_alias(s, a, alias)
            if not row.previous_version_id:
                raise FailedPrecondition(
                    f"alias {alias!r} of adapter {adapter_name!r} has no previous version"
                )
            target = s.get(AdapterVersionRow, row.previous_version_id)
            if target is None:
                raise FailedPrecondition(f"the previous version of alias {alias!r} no longer exists")
            before = row.version_id
            row.version_id, row.previous_version_id = target.version_id, before
            row.updated_by = principal.key_id
            row.updated_at = utcnow()
            a.updated_at = row.updated_at
            self._event(s, rev, a, EVENT_ALIAS_SET, alias=alias, version=target, weight=row.traffic_weight)
            s.add(
                _audit(
                    principal.tenant_id,
                    principal.key_id,
                    "alias.rollback",
                    f"adapters/{adapter_name}/aliases/{alias}",
                    {
                        "from_version_id": before,
                        "to_version_id": target.version_id,
                        "version": target.version,
                        "revision": revision,
                    },
                    trace_id,
                )
            )
            s.flush()
            info = _alias_info(a.name, row, target.version)
        _count_alias_change(principal.tenant_id, alias, "rollback")
        self.changes.notify()
        return info, revision

    def list_aliases(
        self, principal: Principal, *, adapter_name: str = "", size: int = 0, token: str = ""
    ) -> Page:
        limit = page_size(size)
        after = decode_token(token)
        with self.db.session() as s:
            q = (
                select(AdapterAliasRow, AdapterRow.name, AdapterVersionRow.version)
                .join(AdapterRow, AdapterRow.adapter_id == AdapterAliasRow.adapter_id)
                .join(AdapterVersionRow, AdapterVersionRow.version_id == AdapterAliasRow.version_id)
                .where(AdapterRow.tenant_id == principal.tenant_id)
            )
            if adapter_name:
                check_adapter_name(adapter_name, field="adapter_name")
                self._require_adapter(s, principal.tenant_id, adapter_name)
                q = q.where(AdapterRow.name == adapter_name)
            if after:
                a_name, _, al_name = after.partition("/")
                q = q.where(tuple_(AdapterRow.name, AdapterAliasRow.name) > tuple_(a_name, al_name))
            rows = s.execute(q.order_by(AdapterRow.name, AdapterAliasRow.name).limit(limit)).all()
        items = [_alias_info(name, row, number) for row, name, number in rows]
        last = items[-1] if items else None
        return Page(
            items, encode_token(f"{last.adapter_name}/{last.name}") if len(items) == limit and last else ""
        )

    # -- resolution -------------------------------------------------------------------------
    def resolve(self, tenant_id: str, ref: str, *, request_id: str = "") -> Resolution:
        """``name``, ``name@alias`` or ``name@v<n>`` -> immutable version id, in ``tenant_id`` only."""
        parsed = parse_ref(ref)
        request_id = check_request_id(request_id) if parsed.bare else request_id
        with self.db.session() as s:
            revision = self._tenant_revision(s, tenant_id)
            a = self._require_adapter(s, tenant_id, parsed.name, what=ref)
            if parsed.version:
                v = s.scalar(
                    select(AdapterVersionRow).where(
                        AdapterVersionRow.adapter_id == a.adapter_id,
                        AdapterVersionRow.version == parsed.version,
                    )
                )
                if v is None:
                    raise NotFound(f"adapter {parsed.name!r} has no version {parsed.version}")
                return _resolution(a, v, alias="", revision=revision)
            aliases = {
                row.name: (row, number)
                for row, number in s.execute(
                    select(AdapterAliasRow, AdapterVersionRow.version)
                    .join(AdapterVersionRow, AdapterVersionRow.version_id == AdapterAliasRow.version_id)
                    .where(AdapterAliasRow.adapter_id == a.adapter_id)
                ).all()
            }
            if parsed.alias:
                if parsed.alias not in aliases:
                    raise NotFound(f"adapter {parsed.name!r} has no alias {parsed.alias!r}")
                v = s.get(AdapterVersionRow, aliases[parsed.alias][0].version_id)
                return _resolution(a, v, alias=parsed.alias, revision=revision)
            if PRODUCTION in aliases:
                prod, number = aliases[PRODUCTION]
                routing = Routing(prod.version_id, number, PRODUCTION)
            else:
                newest = s.scalar(
                    select(AdapterVersionRow)
                    .where(AdapterVersionRow.adapter_id == a.adapter_id)
                    .order_by(AdapterVersionRow.version.desc())
                    .limit(1)
                )
                if newest is None:
                    raise NotFound(f"adapter {parsed.name!r} has no versions")
                routing = Routing(newest.version_id, newest.version, "")
            if CANARY in aliases:
                canary, number = aliases[CANARY]
                routing = Routing(
                    routing.primary_version_id,
                    routing.primary_version,
                    routing.primary_alias,
                    canary.version_id,
                    number,
                    canary.traffic_weight,
                )
            version_id, _, alias = routing.choose(a.name, request_id)
            v = s.get(AdapterVersionRow, version_id)
            return _resolution(a, v, alias=alias, revision=revision, request_id=request_id, routing=routing)

    # -- revisions and events ---------------------------------------------------------------
    def current_revision(self, tenant_id: str | None = None) -> int:
        """The revision of ``tenant_id``'s registry (``None``: the registry-wide one, for replicas)."""
        with self.db.session() as s:
            return self._revision(s) if tenant_id is None else self._tenant_revision(s, tenant_id)

    def events_after(
        self, tenant_id: str | None, revision: int, *, limit: int = 500
    ) -> list[AdapterEventRow]:
        """Events of one tenant after its revision ``revision`` (``None``: of all tenants after the
        registry-wide ``revision``, for replicas)."""
        with self.db.session() as s:
            if tenant_id is None:
                q = select(AdapterEventRow).where(AdapterEventRow.revision > revision)
            else:
                q = select(AdapterEventRow).where(
                    AdapterEventRow.tenant_id == tenant_id, AdapterEventRow.tenant_revision > revision
                )
            return list(s.scalars(q.order_by(AdapterEventRow.revision).limit(limit)))

    def check_watch_start(self, from_revision: int, tenant_id: str | None = None) -> int:
        """The revision a watch starts after; OutOfRange when history no longer reaches back.

        With ``tenant_id`` the revisions are that tenant's own; without, the registry-wide ones.
        """
        with self.db.session() as s:
            current = self._revision(s) if tenant_id is None else self._tenant_revision(s, tenant_id)
            if from_revision < 0 or from_revision > current:
                raise OutOfRange(
                    f"from_revision {from_revision} is outside 0..{current} (the current revision)"
                )
            if from_revision in (0, current):
                return current
            if tenant_id is None:
                # Pruning only removes events at or below (revision at the time) - retention.
                reaches_back = from_revision >= current - self.settings.event_retention
            else:
                # Pruning removes the oldest events first, so the tenant's history is complete
                # after `from_revision` when its oldest retained event is at most the next one.
                oldest = s.scalar(
                    select(func.min(AdapterEventRow.tenant_revision)).where(
                        AdapterEventRow.tenant_id == tenant_id
                    )
                )
                reaches_back = oldest is not None and oldest <= from_revision + 1
            if not reaches_back:
                raise OutOfRange(
                    f"revision {from_revision} is older than the retained history; re-read the state and "
                    f"watch from {current}"
                )
            return from_revision

    # -- audit ------------------------------------------------------------------------------
    def list_audit_events(
        self,
        principal: Principal,
        *,
        action_prefix: str = "",
        resource_prefix: str = "",
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        size: int = 0,
        token: str = "",
    ) -> Page:
        require_role(principal, Role.ADMIN)
        limit = page_size(size)
        after = decode_token(token)
        q = select(AuditEventRow).where(AuditEventRow.tenant_id == principal.tenant_id)
        if after:
            if not after.isdigit():
                raise InvalidArgument("malformed page token", field="page.page_token")
            q = q.where(AuditEventRow.id < int(after))
        if action_prefix:
            q = q.where(AuditEventRow.action.startswith(action_prefix, autoescape=True))
        if resource_prefix:
            q = q.where(AuditEventRow.target.startswith(resource_prefix, autoescape=True))
        if start is not None:
            q = q.where(AuditEventRow.created_at >= start)
        if end is not None:
            q = q.where(AuditEventRow.created_at < end)
        with self.db.session() as s:
            rows = list(s.scalars(q.order_by(AuditEventRow.id.desc()).limit(limit)))
        return Page(rows, encode_token(str(rows[-1].id)) if len(rows) == limit else "")

    # -- internals --------------------------------------------------------------------------
    def _staging_dir(self) -> Path:
        path = self.staging_root / f"up_{secrets.token_hex(8)}"
        path.mkdir(parents=True)
        return path

    def _target(
        self, tenant_id: str, name: str, kind: str, base_model: str, *, field_prefix: str = "metadata."
    ) -> _Target:
        check_adapter_name(name, field=f"{field_prefix}adapter_name")
        with self.db.session() as s:
            existing = self._adapter(s, tenant_id, name)
        if existing is not None:
            if kind and kind != existing.kind:
                raise FailedPrecondition(f"adapter {name!r} is a {existing.kind} adapter, not {kind}")
            if base_model and base_model != existing.base_model:
                raise FailedPrecondition(
                    f"adapter {name!r} has base model {existing.base_model!r}, not {base_model!r}"
                )
            name_, spec = self.base_model_for(existing.kind, existing.base_model)
            return _Target(tenant_id, name, existing.kind, name_, spec)
        kind = _check_kind(kind, field=f"{field_prefix}kind")
        base, spec = self.base_model_for(kind, base_model)
        return _Target(tenant_id, name, kind, base, spec)

    def _validate_and_publish(
        self,
        principal: Principal,
        target: _Target,
        *,
        files: dict[str, Path],
        hashes: dict[str, str],
        sizes: dict[str, int],
        expected_sha256: str,
        parent_version_id: str,
        metrics: dict[str, float],
        description: str,
        created_by: str,
        training_job_id: str,
        action: str,
        details: dict[str, Any],
        trace_id: str,
        field_prefix: str = "metadata.",
    ) -> tuple[VersionInfo, bool]:
        manifest = validation.manifest_sha256(hashes)
        tenant = obs.tenant_label(target.tenant_id)
        try:
            if expected_sha256 and expected_sha256 != manifest:
                raise InvalidArgument(
                    f"the files hash to {manifest}, not the expected {expected_sha256}",
                    field=f"{field_prefix}expected_sha256",
                )
            info = validation.validate_adapter(
                files,
                base_model=target.base_model,
                spec=target.spec,
                kind=target.kind,
                max_rank=self.settings.max_rank,
            )
        except LoragError as exc:
            obs.ADAPTERS_VALIDATION_FAILURES.labels(validation_reason(exc)).inc()
            obs.ADAPTERS_UPLOADS.labels(tenant, "rejected").inc()
            raise
        existing = self._find_duplicate(target, manifest)
        if existing is not None:
            obs.ADAPTERS_UPLOADS.labels(tenant, "duplicate").inc()
            return existing, False
        version_id = f"av_{secrets.token_hex(12)}"
        prefix = self.blobs.version_prefix(target.tenant_id, target.name, version_id)
        self.blobs.put_files(files, prefix)
        try:
            with self.db.session.begin() as s:
                rev = self._bump(s, target.tenant_id)
                a = self._adapter(s, target.tenant_id, target.name)
                if a is None:
                    a = self._insert_adapter(
                        s,
                        principal,
                        name=target.name,
                        kind=target.kind,
                        base_model=target.base_model,
                        description="",
                        trace_id=trace_id,
                    )
                elif a.kind != target.kind or a.base_model != target.base_model:
                    raise FailedPrecondition(f"adapter {target.name!r} changed while the upload ran")
                dup = s.scalar(
                    select(AdapterVersionRow).where(
                        AdapterVersionRow.adapter_id == a.adapter_id, AdapterVersionRow.sha256 == manifest
                    )
                )
                if dup is not None:
                    raise _Duplicate(dup)
                if parent_version_id:
                    parent = s.get(AdapterVersionRow, parent_version_id)
                    if parent is None or parent.adapter_id != a.adapter_id:
                        raise InvalidArgument(
                            f"{parent_version_id!r} is not a version of adapter {target.name!r}",
                            field=f"{field_prefix}parent_version_id",
                        )
                size = sum(sizes.values())
                check_storage_quota(s, target.tenant_id, size)
                a.latest_version += 1
                a.updated_at = utcnow()
                v = AdapterVersionRow(
                    version_id=version_id,
                    adapter_id=a.adapter_id,
                    tenant_id=target.tenant_id,
                    version=a.latest_version,
                    sha256=manifest,
                    rank=info.rank,
                    alpha=info.alpha,
                    target_modules=list(info.target_modules),
                    size_bytes=size,
                    files=[{"name": n, "size": sizes[n], "sha256": hashes[n]} for n in sorted(files)],
                    parent_version_id=parent_version_id,
                    metrics=metrics,
                    created_by=created_by,
                    training_job_id=training_job_id,
                    description=description,
                    state="READY",
                    blob_path=prefix,
                )
                s.add(v)
                self._event(s, rev, a, EVENT_VERSION_CREATED, version=v)
                s.add(
                    _audit(
                        target.tenant_id,
                        principal.key_id,
                        action,
                        f"adapters/{target.name}/versions/{v.version}",
                        {**details, "version_id": version_id, "sha256": manifest, "size_bytes": size},
                        trace_id,
                    )
                )
                s.flush()
                result = VersionInfo(v, a.name, a.kind, a.base_model)
        except _Duplicate as dup:
            self.blobs.delete_prefix(prefix)
            obs.ADAPTERS_UPLOADS.labels(tenant, "duplicate").inc()
            return VersionInfo(dup.version, target.name, target.kind, target.base_model), False
        except BaseException:
            self.blobs.delete_prefix(prefix)
            raise
        obs.ADAPTERS_UPLOADS.labels(tenant, "created").inc()
        self.changes.notify()
        return result, True

    def _find_duplicate(self, target: _Target, manifest: str) -> VersionInfo | None:
        with self.db.session() as s:
            found = s.execute(
                select(AdapterVersionRow, AdapterRow)
                .join(AdapterRow, AdapterRow.adapter_id == AdapterVersionRow.adapter_id)
                .where(
                    AdapterRow.tenant_id == target.tenant_id,
                    AdapterRow.name == target.name,
                    AdapterVersionRow.sha256 == manifest,
                )
            ).first()
        if found is None:
            return None
        v, a = found
        return VersionInfo(v, a.name, a.kind, a.base_model)

    def _insert_adapter(
        self,
        s: Session,
        principal: Principal,
        *,
        name: str,
        kind: str,
        base_model: str,
        description: str,
        trace_id: str,
    ) -> AdapterRow:
        tenant = s.get(TenantRow, principal.tenant_id)
        if tenant is None:
            raise NotFound(f"tenant {principal.tenant_id!r} not found")
        if tenant.max_adapters:
            count = s.scalar(
                select(func.count())
                .select_from(AdapterRow)
                .where(AdapterRow.tenant_id == principal.tenant_id)
            )
            if count >= tenant.max_adapters:
                raise ResourceExhausted(
                    f"adapter quota exceeded: the tenant may hold {tenant.max_adapters} adapters"
                )
        now = utcnow()
        row = AdapterRow(
            adapter_id=f"ad_{secrets.token_hex(12)}",
            tenant_id=principal.tenant_id,
            name=name,
            kind=kind,
            base_model=base_model,
            description=description,
            latest_version=0,
            created_by=principal.key_id,
            created_at=now,
            updated_at=now,
        )
        s.add(row)
        s.add(
            _audit(
                principal.tenant_id,
                principal.key_id,
                "adapter.create",
                f"adapters/{name}",
                {"kind": kind, "base_model": base_model},
                trace_id,
            )
        )
        return row

    def _bump(self, s: Session, tenant_id: str) -> Revisions:
        """Take the next registry revision and the next of ``tenant_id``. Run it FIRST in a writing
        transaction: the registry-wide row update serialises writers (and on SQLite it opens the
        write transaction before any read), so the tenant's counter needs no lock of its own."""
        revision = s.execute(
            update(RegistryRevisionRow)
            .where(RegistryRevisionRow.id == 1)
            .values(revision=RegistryRevisionRow.revision + 1)
            .returning(RegistryRevisionRow.revision)
        ).scalar_one()
        retention = self.settings.event_retention
        if revision % 1000 == 0 and revision > retention:
            s.execute(delete(AdapterEventRow).where(AdapterEventRow.revision <= revision - retention))
        row = s.get(TenantRevisionRow, tenant_id)
        if row is None:
            row = TenantRevisionRow(tenant_id=tenant_id, revision=0)
            s.add(row)
        row.revision += 1
        return Revisions(revision, row.revision)

    @staticmethod
    def _revision(s: Session) -> int:
        return s.scalar(select(RegistryRevisionRow.revision).where(RegistryRevisionRow.id == 1)) or 0

    @staticmethod
    def _tenant_revision(s: Session, tenant_id: str) -> int:
        return (
            s.scalar(select(TenantRevisionRow.revision).where(TenantRevisionRow.tenant_id == tenant_id)) or 0
        )

    @staticmethod
    def _event(
        s: Session,
        rev: Revisions,
        a: AdapterRow,
        type_: str,
        *,
        alias: str = "",
        version: AdapterVersionRow | None = None,
        weight: int = 0,
    ) -> None:
        s.add(
            AdapterEventRow(
                revision=rev.registry,
                tenant_revision=rev.tenant,
                tenant_id=a.tenant_id,
                type=type_,
                adapter_name=a.name,
                kind=a.kind,
                alias=alias,
                version_id=version.version_id if version else "",
                version=version.version if version else 0,
                traffic_weight=weight,
            )
        )

    @staticmethod
    def _adapter(s: Session, tenant_id: str, name: str) -> AdapterRow | None:
        return s.scalar(select(AdapterRow).where(AdapterRow.tenant_id == tenant_id, AdapterRow.name == name))

    def _require_adapter(self, s: Session, tenant_id: str, name: str, *, what: str = "") -> AdapterRow:
        row = self._adapter(s, tenant_id, name)
        if row is None:
            raise NotFound(f"adapter {what or name!r} not found")
        return row

    @staticmethod
    def _require_alias(s: Session, a: AdapterRow, alias: str) -> AdapterAliasRow:
        row = s.scalar(
            select(AdapterAliasRow).where(
                AdapterAliasRow.adapter_id == a.adapter_id, AdapterAliasRow.name == alias
            )
        )
        if row is None:
            raise NotFound(f"adapter {a.name!r} has no alias {alias!r}")
        return row

    def _alias(self, tenant_id: str, adapter_name: str, alias: str) -> AliasInfo:
        with self.db.session() as s:
            a = self._require_adapter(s, tenant_id, adapter_name)
            row = self._require_alias(s, a, alias)
            number = s.scalar(
                select(AdapterVersionRow.version).where(AdapterVersionRow.version_id == row.version_id)
            )
            return _alias_info(a.name, row, number or 0)

    @staticmethod
    def _aliases(s: Session, adapters: list[AdapterRow]) -> dict[str, list[AliasInfo]]:
        out: dict[str, list[AliasInfo]] = {a.adapter_id: [] for a in adapters}
        if not adapters:
            return out
        names = {a.adapter_id: a.name for a in adapters}
        rows = s.execute(
            select(AdapterAliasRow, AdapterVersionRow.version)
            .join(AdapterVersionRow, AdapterVersionRow.version_id == AdapterAliasRow.version_id)
            .where(AdapterAliasRow.adapter_id.in_(list(names)))
            .order_by(AdapterAliasRow.name)
        ).all()
        for row, number in rows:
            out[row.adapter_id].append(_alias_info(names[row.adapter_id], row, number))
        return out


class UploadSession:
    """One streamed upload: files are staged locally and hashed as chunks arrive.

    ``write`` every chunk, then ``finish`` (validate and publish) or ``abort``. Nothing is visible
    before ``finish`` returns; ``abort`` (or any failure) removes the staged files.
    """

    def __init__(
        self,
        registry: AdapterRegistry,
        principal: Principal,
        target: _Target,
        meta: UploadMetadata,
        *,
        trace_id: str,
    ) -> None:
        self.registry = registry
        self.principal = principal
        self.target = target
        self.meta = meta
        self.trace_id = trace_id
        self.dir: Path | None = None  # made with the first chunk, so a cancelled start leaves nothing
        self.received = 0
        self._current: str | None = None
        self._fh: BinaryIO | None = None
        self._hash: Any = None
        self.files: dict[str, Path] = {}
        self.hashes: dict[str, str] = {}
        self.sizes: dict[str, int] = {}
        self.closed = False
        self._lock = threading.RLock()
        self._abandoned = False  # abort() was called while another thread held the session

    def write(self, file_name: str, data: bytes) -> None:
        with self._lock:
            if self.closed:
                raise InvalidArgument("the upload was already finished or aborted", field="chunk")
            try:
                self._write(file_name, data)
            finally:
                if self._abandoned:
                    self.abort()

    def _write(self, file_name: str, data: bytes) -> None:
        if not data:
            raise InvalidArgument("must not be empty", field="chunk.data")
        if file_name != self._current:
            validation.check_file_name(file_name, field="chunk.file_name", archives=True)
            if file_name in self.files:
                raise InvalidArgument(
                    f"chunks of {file_name!r} must be consecutive and the file sent once",
                    field="chunk.file_name",
                )
            if self.files and (
                validation.is_archive(file_name) or any(map(validation.is_archive, self.files))
            ):
                raise InvalidArgument(
                    "an archive must be the only file of an upload", field="chunk.file_name"
                )
            self._close_file()
            self._current = file_name
            if self.dir is None:
                self.dir = self.registry._staging_dir()
            self.files[file_name] = self.dir / file_name
            self._fh = open(self.files[file_name], "wb")  # noqa: SIM115 - closed in _close_file
            self._hash = hashlib.sha256()
            self.sizes[file_name] = 0
        self.received += len(data)
        if self.received > self.meta.total_size:
            raise InvalidArgument(
                f"the stream carries more than the declared {self.meta.total_size} bytes",
                field="metadata.total_size",
            )
        self.sizes[file_name] += len(data)
        if file_name == validation.CONFIG_FILE and self.sizes[file_name] > validation.MAX_CONFIG_BYTES:
            raise InvalidArgument(
                f"is over {validation.MAX_CONFIG_BYTES} bytes", field=validation.CONFIG_FILE
            )
        self._hash.update(data)
        assert self._fh is not None
        self._fh.write(data)

    def finish(self) -> tuple[VersionInfo, bool]:
        with self._lock:
            return self._finish()

    def _finish(self) -> tuple[VersionInfo, bool]:
        try:
            self._close_file()
            if self.received != self.meta.total_size:
                obs.ADAPTERS_VALIDATION_FAILURES.labels("truncated").inc()
                obs.ADAPTERS_UPLOADS.labels(obs.tenant_label(self.principal.tenant_id), "rejected").inc()
                raise InvalidArgument(
                    f"truncated upload: received {self.received} of {self.meta.total_size} bytes",
                    field="metadata.total_size",
                )
            files, hashes, sizes = self._unpacked()
            return self.registry._validate_and_publish(
                self.principal,
                self.target,
                files=files,
                hashes=hashes,
                sizes=sizes,
                expected_sha256=self.meta.expected_sha256,
                parent_version_id=self.meta.parent_version_id,
                metrics={},
                description=self.meta.description,
                created_by=self.principal.key_id,
                training_job_id="",
                action="adapter_version.upload",
                details={},
                trace_id=self.trace_id,
            )
        finally:
            self.abort()

    def _unpacked(self) -> tuple[dict[str, Path], dict[str, str], dict[str, int]]:
        """The adapter files with their hashes and sizes: as sent, or extracted from the archive."""
        if len(self.files) != 1 or not validation.is_archive(next(iter(self.files))):
            return self.files, self.hashes, self.sizes
        ((name, path),) = self.files.items()
        try:
            files = validation.extract_archive(
                path,
                path.parent / "unpacked",
                archive=name,
                max_bytes=self.registry.settings.max_adapter_bytes,
            )
        except LoragError:
            obs.ADAPTERS_VALIDATION_FAILURES.labels("archive").inc()
            obs.ADAPTERS_UPLOADS.labels(obs.tenant_label(self.principal.tenant_id), "rejected").inc()
            raise
        hashes = {n: _file_sha256(p) for n, p in files.items()}
        return files, hashes, {n: p.stat().st_size for n, p in files.items()}

    def abort(self) -> None:
        """Remove the staged files. Never blocks: when a write or finish is running in another
        thread, that thread cleans up as soon as it is done."""
        if not self._lock.acquire(blocking=False):
            self._abandoned = True
            return
        with self._lock:
            self._lock.release()
            if self.closed:
                return
            self.closed = True
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)

    def _close_file(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            assert self._current is not None
            self.hashes[self._current] = self._hash.hexdigest()


# -- helpers --------------------------------------------------------------------------------------


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def validation_reason(exc: LoragError) -> str:
    """The bounded ``reason`` label of a rejected upload."""
    f = exc.field or ""
    if f.endswith("expected_sha256"):
        return "hash_mismatch"
    if f == validation.CONFIG_FILE:
        return "config"
    if f == validation.WEIGHTS_FILE:
        return "weights"
    if f == "files":
        return "files"
    if isinstance(exc, FailedPrecondition):
        return "base_model"
    return "other"


def _count_alias_change(tenant_id: str, alias: str, action: str) -> None:
    label = alias if alias in (PRODUCTION, CANARY) else "custom"
    obs.ADAPTERS_ALIAS_CHANGES.labels(obs.tenant_label(tenant_id), label, action).inc()


def _check_kind(kind: str, *, field: str = "kind") -> str:
    if kind not in KINDS:
        raise InvalidArgument("must be ADAPTER_KIND_GENERATION or ADAPTER_KIND_RERANKING", field=field)
    return kind


def _check_sha(value: str, *, field: str) -> None:
    if value and not _SHA_RE.fullmatch(value):
        raise InvalidArgument("must be 64 lower-case hex digits", field=field)


def _check_metrics(metrics: dict[str, float]) -> dict[str, float]:
    if len(metrics) > 64:
        raise InvalidArgument("at most 64 metrics", field="metrics")
    for key, value in metrics.items():
        if not key or len(key) > 64:
            raise InvalidArgument(f"metric name {key!r} must be 1-64 characters", field="metrics")
        if not math.isfinite(value):
            raise InvalidArgument(
                f"metric {key!r} is {value}; metrics must be finite numbers", field="metrics"
            )
    return {k: float(v) for k, v in metrics.items()}


def _alias_info(adapter_name: str, row: AdapterAliasRow, number: int) -> AliasInfo:
    return AliasInfo(
        adapter_name=adapter_name,
        name=row.name,
        version=number,
        version_id=row.version_id,
        traffic_weight=row.traffic_weight,
        previous_version_id=row.previous_version_id,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def _resolution(
    a: AdapterRow,
    v: AdapterVersionRow,
    *,
    alias: str,
    revision: int,
    request_id: str = "",
    routing: Routing | None = None,
) -> Resolution:
    return Resolution(
        version_id=v.version_id,
        adapter_name=a.name,
        version=v.version,
        kind=a.kind,
        base_model=a.base_model,
        alias=alias,
        revision=revision,
        sha256=v.sha256,
        request_id=request_id,
        routing=routing,
    )

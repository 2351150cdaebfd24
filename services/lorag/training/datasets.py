"""Training datasets: immutable, hashed versions of a tenant's JSONL files (the feature store).

An upload is staged on the local disk and hashed as it arrives, validated with the tokenizer of
the kind's default base model, then published: the file under
``<tenant>/_datasets/<name>/<dataset id>/data.jsonl`` in the adapter blob store (adapter names start
with a letter, so the prefix never meets an adapter's), then its row. Failing datasets are stored
too (INVALID, with the report) so their line-numbered issues can be read back; they never train.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from lorag.adapters.blobstore import BlobStore
from lorag.adapters.core import check_storage_quota
from lorag.adapters.routing import check_adapter_name
from lorag.common.auth import require_role
from lorag.common.db import Database, utcnow
from lorag.common.errors import FailedPrecondition, InvalidArgument, NotFound
from lorag.common.paging import decode_token, encode_token, page_size
from lorag.common.tenancy import Principal, Role, _audit, validate_text
from lorag.training import validation
from lorag.training.models import DatasetRow
from lorag.training.settings import TrainingSettings

log = logging.getLogger("lorag.training.datasets")

KINDS = ("generation", "reranking")
DATA_FILE = "data.jsonl"
_MAX_DESCRIPTION = 1000


@dataclass(frozen=True)
class DatasetMeta:
    name: str
    kind: str  # "" = unspecified
    format: str = "jsonl"  # "" = unspecified
    description: str = ""
    expected_sha256: str = ""
    total_size: int = 0
    dry_run: bool = False


@dataclass(frozen=True)
class DatasetInfo:
    row: DatasetRow
    report: validation.Report


def check_dataset_name(name: str, *, field: str = "name") -> str:
    try:
        return check_adapter_name(name, field=field)
    except InvalidArgument:
        raise InvalidArgument(
            f"{name!r} is not a valid dataset name: 1-64 lower-case letters, digits, '-' and '_', "
            "starting with a letter",
            field=field,
        ) from None


def check_kind(kind: str, *, field: str = "kind") -> str:
    if kind not in KINDS:
        raise InvalidArgument("must be ADAPTER_KIND_GENERATION or ADAPTER_KIND_RERANKING", field=field)
    return kind


class DatasetStore:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        settings: TrainingSettings,
        *,
        staging_root: Path,
        tokenizers: Any,
    ) -> None:
        """``tokenizers``: ``tokenizer(kind, base_model) -> (tokenizer | None, name)``."""
        self.db = db
        self.blobs = blobs
        self.settings = settings
        self.staging_root = Path(staging_root)
        self.staging_root.mkdir(parents=True, exist_ok=True)
        self.tokenizers = tokenizers

    # -- upload -----------------------------------------------------------------------------
    def begin_upload(self, principal: Principal, meta: DatasetMeta) -> DatasetUpload:
        require_role(principal, Role.ADMIN)
        check_dataset_name(meta.name, field="metadata.name")
        check_kind(meta.kind, field="metadata.kind")
        if meta.format != "jsonl":
            raise InvalidArgument("must be DATASET_FORMAT_JSONL", field="metadata.format")
        if meta.total_size <= 0:
            raise InvalidArgument(
                "must be the total number of bytes that follow (> 0)", field="metadata.total_size"
            )
        if meta.total_size > self.settings.max_dataset_bytes:
            raise InvalidArgument(
                f"{meta.total_size} bytes is over the dataset size limit of "
                f"{self.settings.max_dataset_bytes} bytes (LORAG_TRAINING_MAX_DATASET_BYTES)",
                field="metadata.total_size",
            )
        if meta.expected_sha256 and (
            len(meta.expected_sha256) != 64 or meta.expected_sha256.strip("0123456789abcdef")
        ):
            raise InvalidArgument("must be 64 lower-case hex digits", field="metadata.expected_sha256")
        validate_text(meta.description, field="metadata.description", max_len=_MAX_DESCRIPTION)
        with self.db.session() as s:
            earlier = s.scalar(
                select(DatasetRow.kind)
                .where(DatasetRow.tenant_id == principal.tenant_id, DatasetRow.name == meta.name)
                .limit(1)
            )
        if earlier is not None and earlier != meta.kind:
            raise FailedPrecondition(f"dataset {meta.name!r} holds {earlier} data, not {meta.kind}")
        path = self.staging_root / f"ds_{secrets.token_hex(8)}.jsonl"
        return DatasetUpload(self, principal, meta, path)

    def store(
        self,
        principal: Principal,
        meta: DatasetMeta,
        data: bytes,
        *,
        source: str = "upload",
        trace_id: str = "",
        staged: Path | None = None,
    ) -> tuple[DatasetInfo, validation.ValidatedDataset]:
        """Validate ``data`` and (unless a dry run) store it as the next version of ``meta.name``.

        ``staged``: a local file holding ``data`` already (an upload's), stored as is."""
        digest = hashlib.sha256(data).hexdigest()
        if meta.expected_sha256 and meta.expected_sha256 != digest:
            raise InvalidArgument(
                f"the file hashes to {digest}, not the expected {meta.expected_sha256}",
                field="metadata.expected_sha256",
            )
        tokenizer, tok_name = self.tokenizers(meta.kind, "")
        checked = validation.validate(
            data, meta.kind, settings=self.settings, tokenizer=tokenizer, tokenizer_name=tok_name
        )
        report = checked.report
        state = "READY" if report.valid else "INVALID"
        now = utcnow()
        row = DatasetRow(
            dataset_id="",
            tenant_id=principal.tenant_id,
            name=meta.name,
            version=0,
            kind=meta.kind,
            format="jsonl",
            sha256=digest,
            size_bytes=len(data),
            record_count=report.valid_records,
            state=state,
            report=report.to_dict(),
            description=meta.description,
            source=source,
            blob_path="",
            created_by=principal.key_id,
            created_at=now,
        )
        if meta.dry_run:
            return DatasetInfo(row, report), checked
        dataset_id = f"ds_{secrets.token_hex(12)}"
        prefix = posixpath.join(
            self.blobs.tenant_prefix(principal.tenant_id), "_datasets", meta.name, dataset_id
        )
        if staged is not None:
            self.blobs.put_files({DATA_FILE: staged}, prefix)
        else:
            staged = self.staging_root / f"{dataset_id}.jsonl"
            staged.write_bytes(data)
            try:
                self.blobs.put_files({DATA_FILE: staged}, prefix)
            finally:
                staged.unlink(missing_ok=True)
        try:
            with self.db.session.begin() as s:
                check_storage_quota(s, principal.tenant_id, len(data))
                latest = s.scalar(
                    select(func.max(DatasetRow.version)).where(
                        DatasetRow.tenant_id == principal.tenant_id, DatasetRow.name == meta.name
                    )
                )
                row.dataset_id = dataset_id
                row.version = (latest or 0) + 1
                row.blob_path = prefix
                s.add(row)
                s.add(
                    _audit(
                        principal.tenant_id,
                        principal.key_id,
                        "dataset.upload" if source == "upload" else f"dataset.{source}",
                        f"datasets/{meta.name}/versions/{row.version}",
                        {
                            "dataset_id": dataset_id,
                            "sha256": digest,
                            "state": state,
                            "records": report.valid_records,
                        },
                        trace_id,
                    )
                )
        except BaseException:
            self.blobs.delete_prefix(prefix)
            raise
        return DatasetInfo(row, report), checked

    # -- reads ------------------------------------------------------------------------------
    def get(
        self, principal: Principal, *, dataset_id: str = "", name: str = "", version: int | None = None
    ) -> DatasetInfo:
        with self.db.session() as s:
            if dataset_id:
                row = s.get(DatasetRow, dataset_id) if len(dataset_id) <= 40 else None
                if row is None or row.tenant_id != principal.tenant_id:
                    raise NotFound(f"dataset {dataset_id!r} not found")
            else:
                check_dataset_name(name, field="ref.name")
                q = select(DatasetRow).where(
                    DatasetRow.tenant_id == principal.tenant_id, DatasetRow.name == name
                )
                if version is not None:
                    if version < 1:
                        raise InvalidArgument("must be >= 1", field="ref.version")
                    row = s.scalar(q.where(DatasetRow.version == version))
                    if row is None:
                        raise NotFound(f"dataset {name!r} has no version {version}")
                else:
                    row = s.scalar(
                        q.where(DatasetRow.state == "READY").order_by(DatasetRow.version.desc()).limit(1)
                    )
                    if row is None:
                        raise NotFound(f"dataset {name!r} has no READY version")
        return DatasetInfo(row, validation.Report.from_dict(row.report))

    def list(
        self, principal: Principal, *, name: str = "", kind: str = "", size: int = 0, token: str = ""
    ) -> tuple[list[DatasetInfo], str]:
        limit = page_size(size)
        after = decode_token(token)
        q = select(DatasetRow).where(DatasetRow.tenant_id == principal.tenant_id)
        if name:
            check_dataset_name(name)
            q = q.where(DatasetRow.name == name)
        if kind:
            q = q.where(DatasetRow.kind == check_kind(kind))
        offset = _offset(after)
        with self.db.session() as s:
            rows = list(
                s.scalars(
                    q.order_by(DatasetRow.created_at.desc(), DatasetRow.dataset_id.desc())
                    .offset(offset)
                    .limit(limit)
                )
            )
        items = [DatasetInfo(r, validation.Report.from_dict(r.report)) for r in rows]
        return items, encode_token(str(offset + limit)) if len(rows) == limit else ""

    def read(self, info: DatasetInfo) -> bytes:
        with self.blobs.open(posixpath.join(info.row.blob_path, DATA_FILE)) as fh:
            return fh.read()


class DatasetUpload:
    """One streamed dataset upload: ``write`` chunks, then ``finish``; ``abort`` removes the file."""

    def __init__(self, store: DatasetStore, principal: Principal, meta: DatasetMeta, path: Path) -> None:
        self.store = store
        self.principal = principal
        self.meta = meta
        self.path = path
        self.received = 0
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in finish/abort

    def write(self, data: bytes) -> None:
        if not data:
            raise InvalidArgument("must not be empty", field="chunk")
        self.received += len(data)
        if self.received > self.meta.total_size:
            raise InvalidArgument(
                f"the stream carries more than the declared {self.meta.total_size} bytes",
                field="metadata.total_size",
            )
        self._fh.write(data)

    def finish(self, *, trace_id: str = "") -> tuple[DatasetInfo, validation.ValidatedDataset]:
        self._fh.close()
        if self.received != self.meta.total_size:
            raise InvalidArgument(
                f"truncated upload: received {self.received} of {self.meta.total_size} bytes",
                field="metadata.total_size",
            )
        return self.store.store(
            self.principal, self.meta, self.path.read_bytes(), trace_id=trace_id, staged=self.path
        )

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self.path.unlink(missing_ok=True)


def _offset(after: str) -> int:
    if not after:
        return 0
    if not after.isdigit():
        raise InvalidArgument("malformed page token", field="page.page_token")
    return int(after)

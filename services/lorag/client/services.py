"""The high-level API of each service: ``client.rag``, ``client.adapters``, ``client.admin`` ...

Every method is written once and runs in both clients: on :class:`lorag.client.Client` it
blocks and returns the result (streams are iterators), on :class:`lorag.client.AsyncClient`
it returns an awaitable (streams are async iterators). Results are the frozen dataclasses of
:mod:`lorag.client.types` (each keeps its proto in ``raw``); failures raise the
:class:`lorag.client.LoragClientError` subclass of their gRPC code. CamelCase attributes
(``client.adapters.GetAdapter``) are the raw stub's RPCs taking and returning protos.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lorag.client import types as t
from lorag.client.base import LONG_TIMEOUT_S, AsyncRunner, BoundService, SyncRunner
from lorag.client.documents import MAX_DOCUMENT_BYTES, Document, FoundFile, document_from_path, find_files
from lorag.client.filters import FilterLike, to_filter
from lorag.client.types import enum_value

AdapterLike = str | None


def _adapter_ref(ref: AdapterLike):
    from lorag.common.v1 import common_pb2

    return common_pb2.AdapterRef(ref=ref) if ref else None


def _page(token: str, size: int = 0):
    from lorag.common.v1 import common_pb2

    return common_pb2.PageRequest(page_token=token, page_size=size)


def _drop_none(**kwargs) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


class ServiceAPI:
    """Base of the service APIs: the bound stub (``.stub``) and the runner of the client."""

    _service = ""

    def __init__(self, table, runner: SyncRunner | AsyncRunner) -> None:
        self._table = table
        self._run = runner

    @property
    def stub(self) -> BoundService:
        """The raw bound stub of this service (protos in, protos out, ``grpc.RpcError``)."""
        return self._table.service(self._service)

    def _rpc(self, name: str):
        return getattr(self.stub, name)

    def __getattr__(self, name: str):
        if name[:1].isupper():
            return getattr(self.stub, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


# -- admin ----------------------------------------------------------------------------------------


class AdminAPI(ServiceAPI):
    """Tenants and API keys (application ``adapters``).

    >>> client.admin.whoami()
    Identity(tenant_id='default', role='operator', key_id='key_...')
    >>> acme = client.admin.create_tenant("acme", display_name="Acme", admin_key=True)
    >>> acme.admin_api_key        # shown once
    """

    _service = "admin"

    def whoami(self) -> t.Identity:
        """The tenant, role and key id of this client's API key."""
        from lorag.admin.v1 import admin_pb2 as pb

        return self._run.unary(self._rpc("WhoAmI"), pb.WhoAmIRequest(), t.Identity.from_proto)

    def usage(self, tenant_id: str = "", *, start_date: str = "", end_date: str = "") -> t.UsageReport:
        """Requests and tokens per service and UTC day (``YYYY-MM-DD``; admins: their tenant).

        >>> client.admin.usage(start_date="2026-12-01").totals[0].output_tokens
        """
        from lorag.admin.v1 import admin_pb2 as pb

        req = pb.GetUsageRequest(tenant_id=tenant_id, start_date=start_date, end_date=end_date)
        return self._run.unary(self._rpc("GetUsage"), req, t.UsageReport.from_proto)

    def create_tenant(
        self,
        tenant_id: str,
        *,
        display_name: str = "",
        admin_key: bool = False,
        quota: Mapping[str, int] | None = None,
    ) -> t.NewTenant:
        """Create a tenant (operator role); ``admin_key=True`` also creates its first admin key."""
        from lorag.admin.v1 import admin_pb2 as pb

        req = pb.CreateTenantRequest(
            tenant_id=tenant_id,
            display_name=display_name,
            create_admin_key=admin_key,
            quota=pb.TenantQuota(**quota) if quota else None,
        )
        return self._run.unary(self._rpc("CreateTenant"), req, t.NewTenant.from_proto)

    def get_tenant(self, tenant_id: str) -> t.Tenant:
        """One tenant (operators: any; others: their own)."""
        from lorag.admin.v1 import admin_pb2 as pb

        return self._run.unary(
            self._rpc("GetTenant"),
            pb.GetTenantRequest(tenant_id=tenant_id),
            lambda r: t.Tenant.from_proto(r.tenant),
        )

    def list_tenants(self, *, limit: int | None = None) -> list[t.Tenant]:
        """Every tenant (operator role), over all pages, up to ``limit``."""
        from lorag.admin.v1 import admin_pb2 as pb

        return self._run.pages(
            self._rpc("ListTenants"),
            lambda token: pb.ListTenantsRequest(page=_page(token)),
            lambda r: ([t.Tenant.from_proto(x) for x in r.tenants], r.page.next_page_token),
            limit=limit,
        )

    def set_quota(
        self,
        tenant_id: str,
        *,
        max_documents: int = 0,
        max_adapters: int = 0,
        max_requests_per_minute: int = 0,
        max_storage_bytes: int = 0,
    ) -> t.Tenant:
        """Replace a tenant's quota (operator role); 0 means unlimited."""
        from lorag.admin.v1 import admin_pb2 as pb

        quota = pb.TenantQuota(
            max_documents=max_documents,
            max_adapters=max_adapters,
            max_requests_per_minute=max_requests_per_minute,
            max_storage_bytes=max_storage_bytes,
        )
        return self._run.unary(
            self._rpc("SetTenantQuota"),
            pb.SetTenantQuotaRequest(tenant_id=tenant_id, quota=quota),
            lambda r: t.Tenant.from_proto(r.tenant),
        )

    def create_key(self, *, role: str = "user", description: str = "") -> t.NewApiKey:
        """A new API key in your tenant (admin role); ``.api_key`` is its secret, shown once."""
        from lorag.admin.v1 import admin_pb2 as pb

        req = pb.CreateApiKeyRequest(role=enum_value(pb.Role, role), description=description)
        return self._run.unary(
            self._rpc("CreateApiKey"),
            req,
            lambda r: t.NewApiKey(t.ApiKey.from_proto(r.key), r.api_key, raw=r),
        )

    def list_keys(self, *, include_revoked: bool = False, limit: int | None = None) -> list[t.ApiKey]:
        """The API keys of your tenant (admin role)."""
        from lorag.admin.v1 import admin_pb2 as pb

        return self._run.pages(
            self._rpc("ListApiKeys"),
            lambda token: pb.ListApiKeysRequest(page=_page(token), include_revoked=include_revoked),
            lambda r: ([t.ApiKey.from_proto(k) for k in r.keys], r.page.next_page_token),
            limit=limit,
        )

    def revoke_key(self, key_id: str) -> t.ApiKey:
        """Revoke a key of your tenant (admin role); it stops working within a second."""
        from lorag.admin.v1 import admin_pb2 as pb

        return self._run.unary(
            self._rpc("RevokeApiKey"),
            pb.RevokeApiKeyRequest(key_id=key_id),
            lambda r: t.ApiKey.from_proto(r.key),
        )


# -- adapters -------------------------------------------------------------------------------------


def _kind(kind: str | int | None) -> int:
    from lorag.adapters.v1 import adapters_pb2 as pb

    return 0 if kind is None else enum_value(pb.AdapterKind, kind)


class AdaptersAPI(ServiceAPI):
    """LoRA adapters of your tenant: upload, aliases, rollback, resolve, download.

    >>> v = client.adapters.upload("./out/support-bot", name="support-bot")
    >>> client.adapters.canary("support-bot", v.version, weight=10)
    >>> client.adapters.promote("support-bot", v.version)
    >>> client.adapters.rollback("support-bot")
    >>> client.adapters.resolve("support-bot@production").version
    """

    _service = "adapters"

    def upload(
        self,
        path: str | os.PathLike,
        *,
        name: str,
        kind: str = "generation",
        base_model: str = "",
        description: str = "",
        parent_version_id: str = "",
        chunk_bytes: int = 1024 * 1024,
        timeout: float | None = LONG_TIMEOUT_S,
    ) -> t.AdapterVersion:
        """Upload a peft adapter directory (``adapter_config.json`` + ``*.safetensors``) as a new
        version of ``name`` (created if new; admin role). Identical files return the existing
        version. Not retried: a failed upload raises and leaves nothing behind."""
        from lorag.adapters import transfer

        requests = transfer.upload_requests(
            Path(path),
            adapter_name=name,
            kind=_kind(kind),
            base_model=base_model,
            description=description,
            parent_version_id=parent_version_id,
            chunk_bytes=chunk_bytes,
        )
        return self._run.unary(
            self._rpc("UploadAdapterVersion"),
            requests,
            lambda r: t.AdapterVersion.from_proto(r.version),
            timeout=timeout,
        )

    def register_from_uri(
        self,
        uri: str,
        *,
        name: str,
        kind: str = "generation",
        base_model: str = "",
        expected_sha256: str = "",
        parent_version_id: str = "",
        metrics: Mapping[str, float] | None = None,
        description: str = "",
    ) -> t.AdapterVersion:
        """Register a version from files the server can read at ``uri`` (operator role)."""
        from lorag.adapters.v1 import adapters_pb2 as pb

        req = pb.RegisterFromUriRequest(
            adapter_name=name,
            kind=_kind(kind),
            base_model=base_model,
            uri=uri,
            expected_sha256=expected_sha256,
            parent_version_id=parent_version_id,
            metrics=dict(metrics or {}),
            description=description,
        )
        return self._run.unary(
            self._rpc("RegisterFromUri"), req, lambda r: t.AdapterVersion.from_proto(r.version)
        )

    def create(
        self, name: str, *, kind: str = "generation", base_model: str = "", description: str = ""
    ) -> t.Adapter:
        """Create an adapter without versions (admin role)."""
        from lorag.adapters.v1 import adapters_pb2 as pb

        req = pb.CreateAdapterRequest(
            name=name, kind=_kind(kind), base_model=base_model, description=description
        )
        return self._run.unary(self._rpc("CreateAdapter"), req, lambda r: t.Adapter.from_proto(r.adapter))

    def get(self, name: str) -> t.Adapter:
        """One adapter with its aliases; NotFoundError for unknown (or foreign) names."""
        from lorag.adapters.v1 import adapters_pb2 as pb

        return self._run.unary(
            self._rpc("GetAdapter"),
            pb.GetAdapterRequest(name=name),
            lambda r: t.Adapter.from_proto(r.adapter),
        )

    def list(self, *, kind: str | None = None, limit: int | None = None) -> list[t.Adapter]:
        """The adapters of your tenant (optionally of one kind), over all pages."""
        from lorag.adapters.v1 import adapters_pb2 as pb

        return self._run.pages(
            self._rpc("ListAdapters"),
            lambda token: pb.ListAdaptersRequest(page=_page(token), kind=_kind(kind)),
            lambda r: ([t.Adapter.from_proto(a) for a in r.adapters], r.page.next_page_token),
            limit=limit,
        )

    def delete(self, name: str, *, force: bool = False) -> t.AdapterDeleted:
        """Delete an adapter and all its versions (admin role); ``force`` also when aliased."""
        from lorag.adapters.v1 import adapters_pb2 as pb

        return self._run.unary(
            self._rpc("DeleteAdapter"),
            pb.DeleteAdapterRequest(name=name, force=force),
            t.AdapterDeleted.from_proto,
        )

    def get_version(self, ref: str | None = None, *, version_id: str | None = None) -> t.AdapterVersion:
        """A version by reference (``name@v3``, ``name@production``) or by ``version_id``."""
        from lorag.adapters.v1 import adapters_pb2 as pb

        if (ref is None) == (version_id is None):
            raise ValueError("give exactly one of ref and version_id")
        req = (
            pb.GetAdapterVersionRequest(version_id=version_id)
            if version_id is not None
            else pb.GetAdapterVersionRequest(ref=_adapter_ref(ref))
        )
        return self._run.unary(
            self._rpc("GetAdapterVersion"), req, lambda r: t.AdapterVersion.from_proto(r.version)
        )

    def versions(
        self, name: str, *, state: str | None = None, limit: int | None = None
    ) -> list[t.AdapterVersion]:
        """Versions of one adapter, newest first."""
        from lorag.adapters.v1 import adapters_pb2 as pb

        state_value = 0 if state is None else enum_value(pb.AdapterVersionState, state)
        return self._run.pages(
            self._rpc("ListAdapterVersions"),
            lambda token: pb.ListAdapterVersionsRequest(
                adapter_name=name, page=_page(token), state=state_value
            ),
            lambda r: ([t.AdapterVersion.from_proto(v) for v in r.versions], r.page.next_page_token),
            limit=limit,
        )

    def set_alias(self, name: str, alias: str, version: int, *, weight: int = 0) -> t.AliasChange:
        """Point ``alias`` of adapter ``name`` at ``version`` (admin role); ``weight`` is the
        canary's traffic share in percent."""
        from lorag.adapters.v1 import adapters_pb2 as pb

        req = pb.SetAliasRequest(adapter_name=name, alias=alias, version=version, traffic_weight=weight)
        return self._run.unary(self._rpc("SetAlias"), req, t.AliasChange.from_proto)

    def promote(self, name: str, version: int, *, alias: str = "production") -> t.AliasChange:
        """Point ``production`` (or ``alias``) at ``version``."""
        return self.set_alias(name, alias, version)

    def canary(self, name: str, version: int, *, weight: int) -> t.AliasChange:
        """Make ``version`` the canary receiving ``weight`` % of bare-name requests."""
        return self.set_alias(name, "canary", version, weight=weight)

    def rollback(self, name: str, *, alias: str = "production") -> t.AliasChange:
        """Move ``alias`` back to the version it pointed at before (admin role)."""
        from lorag.adapters.v1 import adapters_pb2 as pb

        return self._run.unary(
            self._rpc("Rollback"),
            pb.RollbackRequest(adapter_name=name, alias=alias),
            t.AliasChange.from_proto,
        )

    def delete_alias(self, name: str, alias: str) -> int:
        """Remove an alias (admin role); returns the registry revision of the change."""
        from lorag.adapters.v1 import adapters_pb2 as pb

        return self._run.unary(
            self._rpc("DeleteAlias"),
            pb.DeleteAliasRequest(adapter_name=name, alias=alias),
            lambda r: r.revision,
        )

    def aliases(self, name: str) -> list[t.Alias]:
        """The aliases of one adapter."""
        from lorag.adapters.v1 import adapters_pb2 as pb

        return self._run.pages(
            self._rpc("ListAliases"),
            lambda token: pb.ListAliasesRequest(adapter_name=name, page=_page(token)),
            lambda r: ([t.Alias.from_proto(a) for a in r.aliases], r.page.next_page_token),
        )

    def resolve(self, ref: str, *, request_id: str = "") -> t.Resolution:
        """The version ``name``, ``name@alias`` or ``name@v3`` means now; a bare name goes to the
        canary for its share of ``request_id``\\ s."""
        from lorag.adapters.v1 import adapters_pb2 as pb

        return self._run.unary(
            self._rpc("Resolve"),
            pb.ResolveRequest(ref=_adapter_ref(ref), request_id=request_id),
            t.Resolution.from_proto,
        )

    def download(
        self, ref: str, dest: str | os.PathLike, *, timeout: float | None = LONG_TIMEOUT_S
    ) -> t.AdapterVersion:
        """Write the files of the version ``ref`` resolves to into ``dest``, every hash verified."""
        from lorag.adapters import transfer
        from lorag.adapters.v1 import adapters_pb2 as pb

        def fetch(resolution: t.Resolution):
            messages = self._run.stream(
                self._rpc("Download"),
                pb.DownloadRequest(version_id=resolution.version_id),
                lambda m: (m,),
                timeout=timeout,
            )
            if self._run.is_async:

                async def write():
                    return t.AdapterVersion.from_proto(await transfer.awrite_download(messages, Path(dest)))

                return write()
            return t.AdapterVersion.from_proto(transfer.write_download(messages, Path(dest)))

        return self._run.then(self.resolve(ref), fetch)

    def watch(self, *, from_revision: int = 0, timeout: float | None = None) -> Iterator[t.RevisionEvent]:
        """Registry revisions as they happen: first the current one, then every change (events of
        your tenant carry the adapter, alias and version). Runs until cancelled or ``timeout``."""
        from lorag.adapters.v1 import adapters_pb2 as pb

        return self._run.stream(
            self._rpc("WatchRevisions"),
            pb.WatchRevisionsRequest(from_revision=from_revision),
            lambda m: (t.RevisionEvent.from_proto(m),),
            timeout=timeout if timeout is not None else 24 * 3600.0,
        )

    def audit(
        self,
        *,
        action_prefix: str = "",
        resource_prefix: str = "",
        limit: int | None = None,
    ) -> list[t.AuditEvent]:
        """The tenant's audit log, newest first (admin role)."""
        from lorag.adapters.v1 import adapters_pb2 as pb

        return self._run.pages(
            self._rpc("ListAuditEvents"),
            lambda token: pb.ListAuditEventsRequest(
                page=_page(token), action_prefix=action_prefix, resource_prefix=resource_prefix
            ),
            lambda r: ([t.AuditEvent.from_proto(e) for e in r.events], r.page.next_page_token),
            limit=limit,
        )


# -- training -------------------------------------------------------------------------------------


def _dataset_ref(dataset: str):
    """``name`` or ``name@3`` -> DatasetRef."""
    from lorag.adapters.v1 import training_pb2 as pb

    name, _, version = dataset.partition("@")
    if version:
        number = version[1:] if version[:1] in ("v", "V") else version
        if not number.isdigit():
            raise ValueError(f"dataset {dataset!r}: write name or name@<version number>")
        return pb.DatasetRef(name=name, version=int(number))
    return pb.DatasetRef(name=name)


class TrainingAPI(ServiceAPI):
    """Datasets and LoRA training jobs (application ``adapters``).

    >>> job = client.training.start("support-bot", dataset="support-qa", hyperparameters={"rank": 16})
    >>> for event in client.training.watch(job.job_id):
    ...     print(event.phase, event.step, event.total_steps, event.loss)
    """

    _service = "training"

    def upload_dataset(
        self,
        path: str | os.PathLike,
        *,
        name: str,
        kind: str = "generation",
        description: str = "",
        dry_run: bool = False,
        chunk_bytes: int = 1024 * 1024,
        timeout: float | None = LONG_TIMEOUT_S,
    ) -> t.Dataset:
        """Upload a JSONL file as the next version of dataset ``name``; the result carries the
        validation report. ``dry_run`` validates without storing. Not retried."""
        import hashlib

        from lorag.adapters.v1 import training_pb2 as pb

        path = Path(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()

        def requests():
            yield pb.UploadDatasetRequest(
                metadata=pb.DatasetUploadMetadata(
                    name=name,
                    kind=_kind(kind),
                    format=pb.DATASET_FORMAT_JSONL,
                    description=description,
                    expected_sha256=digest,
                    total_size=path.stat().st_size,
                    dry_run=dry_run,
                )
            )
            with open(path, "rb") as fh:
                while data := fh.read(chunk_bytes):
                    yield pb.UploadDatasetRequest(chunk=data)

        return self._run.unary(
            self._rpc("UploadDataset"), requests(), lambda r: t.Dataset.from_proto(r.dataset), timeout=timeout
        )

    def get_dataset(self, dataset: str | None = None, *, dataset_id: str | None = None) -> t.Dataset:
        """A dataset by ``name`` / ``name@3`` (newest version without one) or by ``dataset_id``."""
        from lorag.adapters.v1 import training_pb2 as pb

        if (dataset is None) == (dataset_id is None):
            raise ValueError("give exactly one of dataset and dataset_id")
        req = (
            pb.GetDatasetRequest(dataset_id=dataset_id)
            if dataset_id is not None
            else pb.GetDatasetRequest(ref=_dataset_ref(dataset))
        )
        return self._run.unary(self._rpc("GetDataset"), req, lambda r: t.Dataset.from_proto(r.dataset))

    def datasets(
        self, *, name: str = "", kind: str | None = None, limit: int | None = None
    ) -> list[t.Dataset]:
        """Datasets of your tenant, newest first."""
        from lorag.adapters.v1 import training_pb2 as pb

        return self._run.pages(
            self._rpc("ListDatasets"),
            lambda token: pb.ListDatasetsRequest(page=_page(token), name=name, kind=_kind(kind)),
            lambda r: ([t.Dataset.from_proto(d) for d in r.datasets], r.page.next_page_token),
            limit=limit,
        )

    def start(
        self,
        adapter: str,
        *,
        dataset: str,
        kind: str = "generation",
        base_model: str = "",
        hyperparameters: Mapping[str, Any] | None = None,
        parent_version_id: str = "",
        canary_weight: int | None = None,
        description: str = "",
    ) -> t.TrainingJob:
        """Start a training job for ``adapter`` on ``dataset`` (``name`` or ``name@3``; admin
        role). ``hyperparameters`` are the fields of ``training.v1.Hyperparameters`` (``rank``,
        ``alpha``, ``epochs``, ``learning_rate``, ``max_steps`` ...); unset ones take server
        defaults. ``canary_weight`` makes the result the canary with that share. Not retried."""
        from lorag.adapters.v1 import training_pb2 as pb

        hp = pb.Hyperparameters(**dict(hyperparameters or {}))
        req = pb.StartTrainingRequest(
            adapter_name=adapter,
            kind=_kind(kind),
            base_model=base_model,
            dataset=_dataset_ref(dataset),
            hyperparameters=hp,
            parent_version_id=parent_version_id,
            set_canary=canary_weight is not None,
            canary_weight=canary_weight or 0,
            description=description,
        )
        return self._run.unary(self._rpc("StartTraining"), req, lambda r: t.TrainingJob.from_proto(r.job))

    def get(self, job_id: str) -> t.TrainingJob:
        """One training job."""
        from lorag.adapters.v1 import training_pb2 as pb

        return self._run.unary(
            self._rpc("GetTrainingJob"),
            pb.GetTrainingJobRequest(job_id=job_id),
            lambda r: t.TrainingJob.from_proto(r.job),
        )

    def list(
        self, *, adapter: str = "", phase: str | None = None, limit: int | None = None
    ) -> list[t.TrainingJob]:
        """Training jobs of your tenant, newest first, optionally of one adapter or phase."""
        from lorag.adapters.v1 import training_pb2 as pb

        phase_value = 0 if phase is None else enum_value(pb.TrainingPhase, phase)
        return self._run.pages(
            self._rpc("ListTrainingJobs"),
            lambda token: pb.ListTrainingJobsRequest(
                page=_page(token), adapter_name=adapter, phase=phase_value
            ),
            lambda r: ([t.TrainingJob.from_proto(j) for j in r.jobs], r.page.next_page_token),
            limit=limit,
        )

    def watch(
        self, job_id: str, *, from_sequence: int = 0, timeout: float | None = None
    ) -> Iterator[t.TrainingEvent]:
        """Progress events of a job until it finishes (the last event has ``finished`` True)."""
        from lorag.adapters.v1 import training_pb2 as pb

        return self._run.stream(
            self._rpc("WatchTrainingJob"),
            pb.WatchTrainingJobRequest(job_id=job_id, from_sequence=from_sequence),
            lambda m: (t.TrainingEvent.from_proto(m.event),),
            timeout=timeout if timeout is not None else 24 * 3600.0,
        )

    def from_feedback(
        self,
        dataset_name: str,
        *,
        kind: str = "generation",
        min_records: int | None = None,
        adapter: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        canary_weight: int | None = None,
        since=None,
        description: str = "",
    ):
        """Continuous training: store the next version of ``dataset_name`` built from your
        tenant's feedback and, with ``adapter``, start training it on that dataset (admin role).
        Returns ``(dataset, job or None)``."""
        from lorag.adapters.v1 import training_pb2 as pb

        start = None
        if adapter:
            start = pb.StartTrainingRequest(
                adapter_name=adapter,
                kind=_kind(kind),
                hyperparameters=pb.Hyperparameters(**dict(hyperparameters or {})),
                set_canary=canary_weight is not None,
                canary_weight=canary_weight or 0,
            )
        req = pb.BuildDatasetFromFeedbackRequest(
            dataset_name=dataset_name,
            kind=_kind(kind),
            min_records=min_records or 0,
            start=start,
            description=description,
        )
        if since is not None:
            req.since.FromDatetime(since)

        def convert(r):
            job = t.TrainingJob.from_proto(r.job) if r.HasField("job") else None
            return t.Dataset.from_proto(r.dataset), job

        return self._run.unary(self._rpc("BuildDatasetFromFeedback"), req, convert)

    def cancel(self, job_id: str) -> t.TrainingJob:
        """Cancel a job (admin role); cancelling a finished job changes nothing."""
        from lorag.adapters.v1 import training_pb2 as pb

        return self._run.unary(
            self._rpc("CancelTrainingJob"),
            pb.CancelTrainingJobRequest(job_id=job_id),
            lambda r: t.TrainingJob.from_proto(r.job),
        )


# -- embedding, reranking, generation -------------------------------------------------------------


class EmbeddingAPI(ServiceAPI):
    """Sentence embeddings.

    >>> e = client.embedding.embed(["How do I reset my password?"], input_type="query")
    >>> e.dimension, len(e[0])
    (384, 384)
    """

    _service = "embedding"

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        model: str = "",
        input_type: str | None = None,
        normalize: bool | None = None,
        truncate: bool | None = None,
    ) -> t.Embeddings:
        """Vectors of ``texts`` (a single string gives one vector); ``input_type`` ``"query"`` or
        ``"passage"`` adds the model's prefix."""
        from lorag.embedding.v1 import embedding_pb2 as pb

        texts = [texts] if isinstance(texts, str) else list(texts)
        req = pb.EmbedRequest(
            texts=texts,
            model=model,
            input_type=0 if input_type is None else enum_value(pb.InputType, input_type),
            **_drop_none(normalize=normalize, truncate=truncate),
        )
        return self._run.unary(self._rpc("Embed"), req, t.Embeddings.from_proto)

    def models(self) -> list[t.ModelInfo]:
        """Embedding models the service offers."""
        from lorag.embedding.v1 import embedding_pb2 as pb

        return self._run.unary(
            self._rpc("ListModels"),
            pb.ListModelsRequest(),
            lambda r: [t.ModelInfo.from_proto(m) for m in r.models],
        )


PassageLike = str | tuple[str, str] | Mapping[str, str]


class RerankingAPI(ServiceAPI):
    """Cross-encoder reranking.

    >>> r = client.reranking.rerank("reset password", ["Go to settings ...", "Volcanoes ..."], top_n=1)
    >>> r.results[0].index, r.results[0].score
    """

    _service = "reranking"

    def rerank(
        self,
        query: str,
        passages: Sequence[PassageLike],
        *,
        top_n: int = 0,
        model: str = "",
        adapter: AdapterLike = None,
    ) -> t.Reranking:
        """Passages sorted by relevance to ``query``. A passage is a string, an ``(id, text)``
        pair or a dict with ``id`` and ``text``; results keep the input index, id and text."""
        from lorag.reranking.v1 import reranking_pb2 as pb

        protos = []
        for i, p in enumerate(passages):
            if isinstance(p, str):
                protos.append(pb.Passage(id=str(i), text=p))
            elif isinstance(p, Mapping):
                protos.append(pb.Passage(id=str(p.get("id", i)), text=p["text"]))
            else:
                pid, text = p
                protos.append(pb.Passage(id=str(pid), text=text))
        texts = [p.text for p in protos]
        req = pb.RerankRequest(
            query=query, passages=protos, top_n=top_n, model=model, adapter=_adapter_ref(adapter)
        )
        return self._run.unary(self._rpc("Rerank"), req, lambda r: t.Reranking.from_proto(r, texts))

    def models(self) -> list[t.ModelInfo]:
        """Reranker models the service offers."""
        from lorag.reranking.v1 import reranking_pb2 as pb

        return self._run.unary(
            self._rpc("ListRerankerModels"),
            pb.ListRerankerModelsRequest(),
            lambda r: [t.ModelInfo.from_proto(m) for m in r.models],
        )


MessageLike = Mapping[str, str] | tuple[str, str]


def sampling_params(
    *,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    stop: Sequence[str] | None = None,
    seed: int | None = None,
    repetition_penalty: float | None = None,
):
    """``generation.v1.SamplingParams`` from keyword arguments (None = server default); None when
    every argument is None."""
    from lorag.generation.v1 import generation_pb2 as pb

    given = _drop_none(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        stop=list(stop) if stop is not None else None,
        seed=seed,
        repetition_penalty=repetition_penalty,
    )
    return pb.SamplingParams(**given) if given else None


class GenerationAPI(ServiceAPI):
    """Text generation with the base model or one of your adapters.

    >>> client.generation.generate("The capital of France is", max_new_tokens=8, temperature=0).text
    >>> for piece in client.generation.generate_stream(messages=[{"role": "user", "content": "Hi"}]):
    ...     print(piece if isinstance(piece, str) else f"\\n[{piece.finish_reason}]", end="")
    """

    _service = "generation"

    @staticmethod
    def _request(message_type, prompt, messages, *, adapter, model, include_token_ids, sampling):
        from lorag.generation.v1 import generation_pb2 as pb

        if (prompt is None) == (messages is None):
            raise ValueError("give exactly one of prompt and messages")
        kwargs: dict[str, Any] = dict(
            adapter=_adapter_ref(adapter), model=model, include_token_ids=include_token_ids, sampling=sampling
        )
        if prompt is not None:
            kwargs["prompt"] = prompt
        else:
            chat = []
            for m in messages:
                role, content = (m["role"], m["content"]) if isinstance(m, Mapping) else m
                chat.append(pb.ChatMessage(role=enum_value(pb.ChatRole, role), content=content))
            kwargs["chat"] = pb.Chat(messages=chat)
        return message_type(**kwargs)

    def generate(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[MessageLike] | None = None,
        adapter: AdapterLike = None,
        model: str = "",
        include_token_ids: bool = False,
        **sampling: Any,
    ) -> t.Generation:
        """A completion of ``prompt`` or of a chat (``messages`` of role/content; roles system,
        user, assistant). ``adapter`` is ``name``, ``name@alias`` or ``name@v3``; ``sampling``
        keywords are those of :func:`sampling_params` (``max_new_tokens``, ``temperature`` ...)."""
        from lorag.generation.v1 import generation_pb2 as pb

        req = self._request(
            pb.GenerateRequest,
            prompt,
            messages,
            adapter=adapter,
            model=model,
            include_token_ids=include_token_ids,
            sampling=sampling_params(**sampling),
        )
        return self._run.unary(self._rpc("Generate"), req, t.Generation.from_proto)

    def generate_stream(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[MessageLike] | None = None,
        adapter: AdapterLike = None,
        model: str = "",
        include_token_ids: bool = False,
        timeout: float | None = None,
        **sampling: Any,
    ) -> Iterator[str | t.Generation]:
        """Like :meth:`generate`, streaming: text pieces (``str``) as they are decoded, then one
        :class:`~lorag.client.types.Generation` with the whole text and the summary. Leaving the
        loop early cancels the generation."""
        from lorag.generation.v1 import generation_pb2 as pb

        req = self._request(
            pb.GenerateStreamRequest,
            prompt,
            messages,
            adapter=adapter,
            model=model,
            include_token_ids=include_token_ids,
            sampling=sampling_params(**sampling),
        )
        text: list[str] = []
        token_ids: list[int] = []

        def convert(m) -> list:
            out: list = []
            if m.text:
                text.append(m.text)
                out.append(m.text)
            token_ids.extend(m.token_ids)
            if m.HasField("summary"):
                out.append(t.Generation.from_summary("".join(text), m.summary, token_ids=token_ids, raw=m))
            return out

        return self._run.stream(self._rpc("GenerateStream"), req, convert, timeout=timeout)

    def models(self) -> list[t.ModelInfo]:
        """Generation base models the service offers."""
        from lorag.generation.v1 import generation_pb2 as pb

        return self._run.unary(
            self._rpc("ListGenerationModels"),
            pb.ListGenerationModelsRequest(),
            lambda r: [t.ModelInfo.from_proto(m) for m in r.models],
        )


# -- retrieval ------------------------------------------------------------------------------------


def _search_mode(mode: str | None) -> int:
    from lorag.retrieval.v1 import retrieval_pb2 as pb

    return 0 if mode is None else enum_value(pb.SearchMode, mode)


def _fusion(fusion: str | None) -> int:
    from lorag.retrieval.v1 import retrieval_pb2 as pb

    return 0 if fusion is None else enum_value(pb.FusionMethod, fusion)


DocumentLike = Document | Mapping[str, Any] | str | os.PathLike | FoundFile


def _as_documents(items: Iterable[DocumentLike]) -> Iterator[Document | FoundFile | Exception]:
    """Documents in order; paths (files, directories, globs) expand through ``find_files``."""
    for item in items:
        if isinstance(item, Document | FoundFile):
            yield item
        elif isinstance(item, Mapping):
            yield Document(**item)
        elif isinstance(item, str | os.PathLike):
            yield from find_files([item])
        elif hasattr(item, "DESCRIPTOR"):
            yield item  # a rag.v1.Document proto, sent as it is
        else:
            raise TypeError(f"cannot ingest {type(item).__name__}: give paths, Document objects or dicts")


def _read(item: Document | FoundFile, metadata: Mapping[str, Any] | None) -> Document:
    if isinstance(item, FoundFile):
        size = item.path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise ValueError(
                f"{size} bytes, over the {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB limit per document"
            )
        return document_from_path(item.path, doc_id=item.doc_id, metadata=metadata, mime_type=item.mime_type)
    if metadata:
        return Document(
            item.doc_id,
            text=item.text,
            data=item.data,
            title=item.title,
            mime_type=item.mime_type,
            metadata={**metadata, **item.metadata},
        )
    return item


class RetrievalAPI(ServiceAPI):
    """Chunks and search on the retrieval service directly (without generation).

    >>> hits = client.retrieval.search("reset password", top_k=5, filter={"lang": "en"})
    >>> [(h.doc_id, round(h.score, 3)) for h in hits]
    """

    _service = "retrieval"

    def search(
        self,
        query: str = "",
        *,
        top_k: int | None = None,
        mode: str | None = None,
        filter: FilterLike = None,  # noqa: A002 - the natural name for callers
        fusion: str | None = None,
        dense_weight: float | None = None,
        sparse_weight: float | None = None,
        rrf_k: int = 0,
        query_vector: Sequence[float] | None = None,
        embedding_model: str = "",
    ) -> t.SearchResult:
        """Chunks of your tenant matching ``query``: ``mode`` ``"dense"``, ``"sparse"`` (BM25) or
        ``"hybrid"`` (server default), ``filter`` in the dict language of
        :mod:`lorag.client.filters`, ``fusion`` ``"rrf"`` or ``"weighted"`` for hybrid."""
        from lorag.retrieval.v1 import retrieval_pb2 as pb

        req = pb.SearchRequest(
            query_text=query,
            query_vector=list(query_vector or ()),
            mode=_search_mode(mode),
            fusion=_fusion(fusion),
            rrf_k=rrf_k,
            filter=to_filter(filter),
            embedding_model=embedding_model,
            **_drop_none(top_k=top_k, dense_weight=dense_weight, sparse_weight=sparse_weight),
        )
        return self._run.unary(self._rpc("Search"), req, t.SearchResult.from_proto)

    def upsert(
        self,
        documents: Iterable[DocumentLike],
        *,
        embedding_model: str = "",
        chunk_tokens: int = 0,
        overlap_tokens: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = LONG_TIMEOUT_S,
    ) -> Iterator[t.UpsertProgress]:
        """Chunk, embed and store documents (paths, :class:`Document` objects or dicts); yields one
        progress record per document. Re-sending a doc id replaces its chunks. Not retried."""
        from lorag.retrieval.v1 import retrieval_pb2 as pb

        inputs = []
        for item in _as_documents(documents):
            d = _read(item, metadata) if isinstance(item, Document | FoundFile) else item
            if not isinstance(d, Document):
                raise TypeError("retrieval.upsert takes paths, Document objects or dicts")
            doc = pb.DocumentInput(doc_id=d.doc_id, title=d.title, mime_type=d.mime_type)
            if d.metadata:
                doc.metadata.update(dict(d.metadata))
            if d.text is not None:
                doc.text = d.text
            else:
                doc.data = d.data
            inputs.append(doc)
        chunking = pb.ChunkingOptions(chunk_tokens=chunk_tokens, **_drop_none(overlap_tokens=overlap_tokens))
        req = pb.UpsertRequest(documents=inputs, embedding_model=embedding_model, chunking=chunking)
        return self._run.stream(
            self._rpc("Upsert"), req, lambda m: (t.UpsertProgress.from_proto(m),), timeout=timeout
        )

    def delete(self, doc_ids: Sequence[str], *, embedding_model: str = "") -> t.Deleted:
        """Delete documents and all their chunks; unknown ids are no error."""
        from lorag.retrieval.v1 import retrieval_pb2 as pb

        req = pb.DeleteDocumentsRequest(doc_ids=list(doc_ids), embedding_model=embedding_model)
        return self._run.unary(self._rpc("DeleteDocuments"), req, t.Deleted.from_proto)

    def get_document(self, doc_id: str, *, embedding_model: str = "") -> t.StoredDocument:
        """One stored document; NotFoundError when your tenant has none with this id."""
        from lorag.retrieval.v1 import retrieval_pb2 as pb

        return self._run.unary(
            self._rpc("GetDocument"),
            pb.GetDocumentRequest(doc_id=doc_id, embedding_model=embedding_model),
            lambda r: t.StoredDocument.from_proto(r.document),
        )

    def documents(
        self,
        *,
        filter: FilterLike = None,
        embedding_model: str = "",
        limit: int | None = None,  # noqa: A002
    ) -> list[t.StoredDocument]:
        """Stored documents of your tenant (optionally filtered), over all pages up to ``limit``."""
        from lorag.retrieval.v1 import retrieval_pb2 as pb

        flt = to_filter(filter)
        return self._run.pages(
            self._rpc("ListDocuments"),
            lambda token: pb.ListDocumentsRequest(
                page=_page(token), filter=flt, embedding_model=embedding_model
            ),
            lambda r: ([t.StoredDocument.from_proto(d) for d in r.documents], r.page.next_page_token),
            limit=limit,
        )

    def stats(self, *, embedding_model: str = "") -> t.RetrievalStats:
        """Document and chunk counts of your tenant."""
        from lorag.retrieval.v1 import retrieval_pb2 as pb

        return self._run.unary(
            self._rpc("Stats"), pb.StatsRequest(embedding_model=embedding_model), t.RetrievalStats.from_proto
        )


# -- rag ------------------------------------------------------------------------------------------


def ingest_options(
    *,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    embedding_model: str = "",
    force: bool = False,
):
    """``rag.v1.IngestOptions``; ``chunk_size``/``chunk_overlap`` go to the contract's chunking
    fields (``chunk_tokens``/``overlap_tokens`` when the contract has them, else
    ``chunk_size``/``chunk_overlap``), in the unit the server documents for them. None when
    everything is default."""
    from lorag.rag.v1 import rag_pb2 as pb

    fields = pb.IngestOptions.DESCRIPTOR.fields_by_name
    size_field = "chunk_tokens" if "chunk_tokens" in fields else "chunk_size"
    overlap_field = "overlap_tokens" if "overlap_tokens" in fields else "chunk_overlap"
    given = _drop_none(**{size_field: chunk_size, overlap_field: chunk_overlap})
    if embedding_model:
        given["embedding_model"] = embedding_model
    if force:
        given["force"] = True
    return pb.IngestOptions(**given) if given else None


def _feedback_rating(rating: str | bool | None) -> int:
    from lorag.rag.v1 import rag_pb2 as pb

    if rating is None:
        return 0
    if isinstance(rating, bool):
        return pb.FEEDBACK_RATING_THUMBS_UP if rating else pb.FEEDBACK_RATING_THUMBS_DOWN
    aliases = {"up": "thumbs_up", "down": "thumbs_down", "+1": "thumbs_up", "-1": "thumbs_down"}
    return enum_value(pb.FeedbackRating, aliases.get(str(rating).lower(), str(rating)))


class RagAPI(ServiceAPI):
    """Ask questions of your documents; ingest and delete documents; give feedback.

    >>> answer = client.rag.ask("How do I reset my password?", adapter="support@production",
    ...                         filter={"lang": "en", "year": {"gte": 2020}}, top_k=20)
    >>> print(answer.answer); [c.doc_id for c in answer.citations]
    >>> for piece in client.rag.ask_stream("How do I reset my password?"):
    ...     if isinstance(piece, str):
    ...         print(piece, end="", flush=True)     # text as it is generated
    ...     else:
    ...         answer = piece                       # last: the whole Answer with citations
    >>> for p in client.rag.ingest(["docs/", "notes/**/*.md"]):
    ...     print(p.doc_id, p.status, p.chunk_count, p.totals.chunks)
    """

    _service = "rag"

    @staticmethod
    def _ask_fields(
        question: str,
        *,
        adapter: AdapterLike,
        reranker_adapter: AdapterLike,
        filter: FilterLike,  # noqa: A002
        top_k: int | None,
        rerank: bool | None,
        rerank_top_n: int | None,
        mode: str | None,
        fusion: str | None,
        min_relevance: float | None,
        model: str,
        sampling: Mapping[str, Any],
        template: str,
        history: Sequence[tuple[str, str] | Mapping[str, str]] | None,
        query_rewrite: bool,
        multi_query: int,
        routing: str | None,
        return_contexts: bool,
    ) -> dict[str, Any]:
        from lorag.rag.v1 import rag_pb2 as pb

        retrieval = _drop_none(
            top_k=top_k, rerank=rerank, rerank_top_n=rerank_top_n, min_relevance=min_relevance
        )
        if mode is not None:
            retrieval["mode"] = _search_mode(mode)
        if fusion is not None:
            retrieval["fusion"] = _fusion(fusion)
        params = sampling_params(**sampling)
        generation = _drop_none(model=model or None, sampling=params)
        turns = []
        for h in history or ():
            q, a = (h["question"], h["answer"]) if isinstance(h, Mapping) else h
            turns.append(pb.ConversationTurn(question=q, answer=a))
        return dict(
            question=question,
            adapter=_adapter_ref(adapter),
            reranker_adapter=_adapter_ref(reranker_adapter),
            filter=to_filter(filter) if filter is not None else None,
            retrieval=pb.RetrievalOptions(**retrieval) if retrieval else None,
            generation=pb.GenerationOptions(**generation) if generation else None,
            template=template,
            history=turns,
            query_rewrite=query_rewrite,
            multi_query=multi_query,
            routing=0 if routing is None else enum_value(pb.RetrievalRouting, routing),
            return_contexts=return_contexts,
        )

    def ask(
        self,
        question: str,
        *,
        adapter: AdapterLike = None,
        reranker_adapter: AdapterLike = None,
        filter: FilterLike = None,  # noqa: A002
        top_k: int | None = None,
        rerank: bool | None = None,
        rerank_top_n: int | None = None,
        mode: str | None = None,
        fusion: str | None = None,
        min_relevance: float | None = None,
        model: str = "",
        template: str = "",
        history: Sequence[tuple[str, str] | Mapping[str, str]] | None = None,
        query_rewrite: bool = False,
        multi_query: int = 0,
        routing: str | None = None,
        return_contexts: bool = False,
        timeout: float | None = None,
        **sampling: Any,
    ) -> t.Answer:
        """Answer ``question`` from your documents.

        ``adapter``/``reranker_adapter``: ``name``, ``name@alias`` or ``name@v3`` of your tenant;
        ``filter``: metadata conditions (:mod:`lorag.client.filters`); ``top_k``: chunks retrieved,
        ``rerank_top_n``: chunks kept for the prompt, ``rerank=False`` skips the cross-encoder,
        ``min_relevance`` overrides the rejection threshold; ``mode`` dense/sparse/hybrid;
        ``template`` a prompt template name; ``history`` earlier ``(question, answer)`` turns;
        ``routing`` auto/always/never; ``sampling`` keywords as for generation
        (``max_new_tokens``, ``temperature`` ...). Unset options take server defaults.
        ``answer.rejected`` is True when the documents did not support an answer.
        """
        from lorag.rag.v1 import rag_pb2 as pb

        fields = self._ask_fields(
            question,
            adapter=adapter,
            reranker_adapter=reranker_adapter,
            filter=filter,
            top_k=top_k,
            rerank=rerank,
            rerank_top_n=rerank_top_n,
            mode=mode,
            fusion=fusion,
            min_relevance=min_relevance,
            model=model,
            sampling=sampling,
            template=template,
            history=history,
            query_rewrite=query_rewrite,
            multi_query=multi_query,
            routing=routing,
            return_contexts=return_contexts,
        )
        return self._run.unary(
            self._rpc("Ask"), pb.AskRequest(**fields), t.Answer.from_proto, timeout=timeout
        )

    def ask_stream(
        self,
        question: str,
        *,
        adapter: AdapterLike = None,
        reranker_adapter: AdapterLike = None,
        filter: FilterLike = None,  # noqa: A002
        top_k: int | None = None,
        rerank: bool | None = None,
        rerank_top_n: int | None = None,
        mode: str | None = None,
        fusion: str | None = None,
        min_relevance: float | None = None,
        model: str = "",
        template: str = "",
        history: Sequence[tuple[str, str] | Mapping[str, str]] | None = None,
        query_rewrite: bool = False,
        multi_query: int = 0,
        routing: str | None = None,
        return_contexts: bool = False,
        timeout: float | None = None,
        **sampling: Any,
    ) -> Iterator[str | t.Answer]:
        """Like :meth:`ask`, streaming: answer text pieces (``str``) as they are generated, then
        one :class:`~lorag.client.types.Answer` with citations and metadata. A stream that ends
        without the final Answer raises UnavailableError (a partial answer is never presented as
        complete); leaving the loop early cancels the request."""
        from lorag.client.errors import UnavailableError
        from lorag.rag.v1 import rag_pb2 as pb

        fields = self._ask_fields(
            question,
            adapter=adapter,
            reranker_adapter=reranker_adapter,
            filter=filter,
            top_k=top_k,
            rerank=rerank,
            rerank_top_n=rerank_top_n,
            mode=mode,
            fusion=fusion,
            min_relevance=min_relevance,
            model=model,
            sampling=sampling,
            template=template,
            history=history,
            query_rewrite=query_rewrite,
            multi_query=multi_query,
            routing=routing,
            return_contexts=return_contexts,
        )
        state = {"final": False}

        def convert(m) -> tuple:
            kind = m.WhichOneof("event")
            if kind == "answer_delta":
                return (m.answer_delta,) if m.answer_delta else ()
            if kind == "result":
                state["final"] = True
                return (t.Answer.from_proto(m.result),)
            return ()

        def finish() -> tuple:
            if not state["final"]:
                raise UnavailableError("the answer stream ended before its final result")
            return ()

        return self._run.stream(
            self._rpc("AskStream"), pb.AskStreamRequest(**fields), convert, timeout=timeout, finish=finish
        )

    def ingest(
        self,
        documents: DocumentLike | Iterable[DocumentLike],
        *,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        embedding_model: str = "",
        force: bool = False,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = LONG_TIMEOUT_S,
    ) -> Iterator[t.IngestProgress]:
        """Ingest documents, yielding one :class:`~lorag.client.types.IngestProgress` per document
        (``status`` indexed, failed or skipped, with the running totals); server results come in
        the order sent, documents that could not be read as soon as they are noticed.

        ``documents``: paths (files, directories walked recursively, glob patterns; doc id = the
        relative path, see :func:`lorag.client.documents.find_files`), :class:`Document` objects,
        dicts of Document fields, or ``rag.v1.Document`` protos. Files are read as they are sent;
        one that cannot be read (or is over 8 MiB) is reported as failed without reaching the
        server. ``metadata`` is added to every document. Re-ingesting a doc id replaces it;
        unchanged documents come back ``skipped`` unless ``force``. Not retried.
        """
        from lorag.rag.v1 import rag_pb2 as pb

        if isinstance(documents, str | os.PathLike | Document | FoundFile | Mapping):
            documents = [documents]
        options = ingest_options(
            chunk_size=chunk_size, chunk_overlap=chunk_overlap, embedding_model=embedding_model, force=force
        )
        local_failures: list[tuple[str, str]] = []
        counts = {"local": 0}
        last = {"totals": None}

        def requests():
            first = True
            for item in _as_documents(documents):
                if hasattr(item, "DESCRIPTOR"):
                    doc = item
                else:
                    try:
                        doc = _read(item, metadata).to_proto()
                    except (OSError, ValueError) as exc:
                        local_failures.append((item.doc_id, f"not sent: {exc}"))
                        continue
                req = pb.IngestRequest(document=doc)
                if first and options is not None:
                    req.options.CopyFrom(options)
                first = False
                yield req

        def local_progress() -> list[t.IngestProgress]:
            out = []
            while local_failures:
                doc_id, error = local_failures.pop(0)
                counts["local"] += 1
                out.append(
                    t.IngestProgress(doc_id, "failed", 0, error, _with_local(last["totals"], counts["local"]))
                )
            return out

        def convert(m) -> list[t.IngestProgress]:
            out = local_progress()
            last["totals"] = m.totals
            p = t.IngestProgress.from_proto(m)
            out.append(
                t.IngestProgress(
                    p.doc_id, p.status, p.chunk_count, p.error, _with_local(m.totals, counts["local"]), raw=m
                )
            )
            return out

        return self._run.stream(
            self._rpc("Ingest"), requests(), convert, timeout=timeout, finish=local_progress
        )

    def ingest_batch(
        self,
        documents: Iterable[DocumentLike],
        *,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        embedding_model: str = "",
        force: bool = False,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = LONG_TIMEOUT_S,
    ) -> list[t.IngestProgress]:
        """Ingest 1-100 documents in one unary call; one result per document, in order."""
        from lorag.rag.v1 import rag_pb2 as pb

        docs = [
            item if hasattr(item, "DESCRIPTOR") else _read(item, metadata).to_proto()
            for item in _as_documents(documents)
        ]
        req = pb.IngestDocumentsRequest(
            documents=docs,
            options=ingest_options(
                chunk_size=chunk_size,
                chunk_overlap=chunk_overlap,
                embedding_model=embedding_model,
                force=force,
            ),
        )
        return self._run.unary(
            self._rpc("IngestDocuments"),
            req,
            lambda r: [t.IngestProgress.from_result(res, r.totals, raw=r) for res in r.results],
            timeout=timeout,
        )

    def delete(self, doc_ids: str | Sequence[str]) -> t.Deleted:
        """Delete documents and all their chunks; unknown ids are no error."""
        from lorag.rag.v1 import rag_pb2 as pb

        ids = [doc_ids] if isinstance(doc_ids, str) else list(doc_ids)
        return self._run.unary(
            self._rpc("DeleteDocuments"), pb.DeleteDocumentsRequest(doc_ids=ids), t.Deleted.from_proto
        )

    def feedback(
        self,
        answer_id: str,
        *,
        rating: str | bool | None = None,
        score: float | None = None,
        comment: str = "",
        corrected_answer: str = "",
        relevant_chunk_ids: Sequence[str] = (),
        irrelevant_chunk_ids: Sequence[str] = (),
    ) -> str:
        """Record feedback on an answer; ``rating`` ``"up"``/``"down"`` (or True/False) and/or a
        ``score`` in [0, 1]. Returns the feedback id. Not retried."""
        from lorag.rag.v1 import rag_pb2 as pb

        req = pb.FeedbackRequest(
            answer_id=answer_id,
            rating=_feedback_rating(rating),
            comment=comment,
            corrected_answer=corrected_answer,
            relevant_chunk_ids=list(relevant_chunk_ids),
            irrelevant_chunk_ids=list(irrelevant_chunk_ids),
            **_drop_none(score=score),
        )
        return self._run.unary(self._rpc("Feedback"), req, lambda r: r.feedback_id)


def _with_local(totals, local_failed: int) -> t.IngestTotals:
    """Server totals plus the documents that failed before reaching the server."""
    base = t.IngestTotals.from_proto(totals) if totals is not None else t.IngestTotals()
    return t.IngestTotals(
        received=base.received + local_failed,
        indexed=base.indexed,
        failed=base.failed + local_failed,
        skipped=base.skipped,
        chunks=base.chunks,
    )

"""Servicers of the `adapters` application: adapter registry, training and admin APIs.

AdapterServicer maps lorag.adapters.v1.AdapterService onto :class:`lorag.adapters.core.AdapterRegistry`
(proto <-> core, nothing else). Registry calls are blocking and run in a thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import threading

from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from lorag.adapters import core
from lorag.adapters.core import AdapterRegistry, AliasInfo, UploadMetadata, VersionInfo
from lorag.adapters.settings import load_adapter_settings
from lorag.adapters.v1 import adapters_pb2 as pb
from lorag.adapters.v1 import training_pb2
from lorag.admin.servicer import AdminServicer
from lorag.common.convert import timestamp_pb
from lorag.common.errors import FailedPrecondition, InvalidArgument
from lorag.common.rpc import Call, Runtime, ServicerBase, rpc
from lorag.common.tenancy import AuditEventRow, Role
from lorag.common.v1 import common_pb2
from lorag.training import jobs, validation
from lorag.training.datasets import DatasetInfo, DatasetMeta
from lorag.training.jobs import TrainingCore
from lorag.training.models import TrainingEventRow
from lorag.training.runners import RayRunner, ThreadRunner
from lorag.training.settings import load_training_settings

KIND_TO_PB = {"generation": pb.ADAPTER_KIND_GENERATION, "reranking": pb.ADAPTER_KIND_RERANKING}
KIND_FROM_PB = {v: k for k, v in KIND_TO_PB.items()}
STATE_TO_PB = {"READY": pb.ADAPTER_VERSION_STATE_READY}
STATE_FROM_PB = {pb.ADAPTER_VERSION_STATE_READY: "READY"}
EVENT_TO_PB = {
    core.EVENT_VERSION_CREATED: pb.ADAPTER_EVENT_TYPE_VERSION_CREATED,
    core.EVENT_ALIAS_SET: pb.ADAPTER_EVENT_TYPE_ALIAS_SET,
    core.EVENT_ALIAS_DELETED: pb.ADAPTER_EVENT_TYPE_ALIAS_DELETED,
    core.EVENT_ADAPTER_DELETED: pb.ADAPTER_EVENT_TYPE_ADAPTER_DELETED,
}
MAX_CHUNK_BYTES = 4 * 1024 * 1024
_WATCH_BATCH = 500
_registries: dict[str, AdapterRegistry] = {}


def registry_for(runtime: Runtime) -> AdapterRegistry:
    """One AdapterRegistry per registry URL and process (settings read at first use)."""
    key = runtime.settings.resolved_registry_url
    if key not in _registries:
        _registries[key] = AdapterRegistry.build(
            runtime.db, data_dir=runtime.settings.data_dir, settings=load_adapter_settings()
        )
    return _registries[key]


def _kind(value: int, *, field: str = "kind") -> str:
    if value not in KIND_FROM_PB:
        raise InvalidArgument("must be ADAPTER_KIND_GENERATION or ADAPTER_KIND_RERANKING", field=field)
    return KIND_FROM_PB[value]


def _time(value, *, field: str) -> dt.datetime:
    """A Timestamp as a UTC datetime; INVALID_ARGUMENT outside years 1-9999."""
    try:
        return value.ToDatetime(dt.UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument("is outside the years 1-9999", field=field) from None


def _optional_kind(value: int, *, field: str = "kind") -> str:
    """An unset kind is "" (the existing adapter's); an unknown enum value is INVALID_ARGUMENT."""
    return _kind(value, field=field) if value else ""


def alias_pb(a: AliasInfo) -> pb.Alias:
    return pb.Alias(
        adapter_name=a.adapter_name,
        name=a.name,
        version=a.version,
        version_id=a.version_id,
        traffic_weight=a.traffic_weight,
        previous_version_id=a.previous_version_id,
        updated_by=a.updated_by,
        update_time=timestamp_pb(a.updated_at),
    )


def adapter_pb(info: core.AdapterInfo) -> pb.Adapter:
    r = info.row
    return pb.Adapter(
        name=r.name,
        kind=KIND_TO_PB[r.kind],
        base_model=r.base_model,
        description=r.description,
        latest_version=r.latest_version,
        aliases=[alias_pb(a) for a in info.aliases],
        create_time=timestamp_pb(r.created_at),
        update_time=timestamp_pb(r.updated_at),
    )


def version_pb(info: VersionInfo) -> pb.AdapterVersion:
    v = info.row
    return pb.AdapterVersion(
        version_id=v.version_id,
        adapter_name=info.adapter_name,
        version=v.version,
        kind=KIND_TO_PB[info.kind],
        base_model=info.base_model,
        sha256=v.sha256,
        rank=v.rank,
        alpha=v.alpha,
        target_modules=list(v.target_modules),
        size_bytes=v.size_bytes,
        files=[pb.AdapterFile(name=f["name"], size_bytes=f["size"], sha256=f["sha256"]) for f in v.files],
        parent_version_id=v.parent_version_id,
        metrics=v.metrics,
        created_by=v.created_by,
        training_job_id=v.training_job_id,
        description=v.description,
        state=STATE_TO_PB.get(v.state, pb.ADAPTER_VERSION_STATE_UNSPECIFIED),
        create_time=timestamp_pb(v.created_at),
    )


def audit_pb(row: AuditEventRow) -> pb.AuditEvent:
    details = Struct()
    json_format.ParseDict(row.details or {}, details)
    return pb.AuditEvent(
        event_id=str(row.id),
        event_time=timestamp_pb(row.created_at),
        actor=row.actor_key_id,
        action=row.action,
        resource=row.target,
        details=details,
        trace_id=row.trace_id or "",
    )


def _page(page: core.Page) -> common_pb2.PageResponse:
    return common_pb2.PageResponse(next_page_token=page.next_token)


async def _upload_metadata(request):
    """The metadata of a client-streamed upload (its first message) and the rest of the stream."""
    stream = aiter(request)
    first = await anext(stream, None)
    if first is None or first.WhichOneof("payload") != "metadata":
        raise InvalidArgument("the first message of the stream must carry the metadata", field="metadata")
    return first.metadata, stream


async def _upload_chunks(stream, data, limit: int, field: str):
    """The chunk messages of an upload; ``data(message)`` is a chunk's bytes, at most ``limit``."""
    async for message in stream:
        if message.WhichOneof("payload") != "chunk":
            raise InvalidArgument("only the first message may carry metadata", field="chunk")
        if len(data(message)) > limit:
            raise InvalidArgument(f"a chunk holds at most {limit} bytes", field=field)
        yield message


class AdapterServicer(ServicerBase):
    """lorag.adapters.v1.AdapterService: the versioned LoRA adapter registry."""

    SERVICES = (pb.DESCRIPTOR.services_by_name["AdapterService"],)
    PENDING = "the versioned LoRA adapter registry is not deployed yet"

    def __init__(self, runtime: Runtime | None = None) -> None:
        super().__init__(runtime)
        self.registry = registry_for(self.runtime)

    # -- upload -------------------------------------------------------------------------------
    @rpc(Role.ADMIN)
    async def UploadAdapterVersion(self, request, call: Call):
        m, stream = await _upload_metadata(request)
        meta = UploadMetadata(
            adapter_name=m.adapter_name,
            kind=_optional_kind(m.kind, field="metadata.kind"),
            base_model=m.base_model,
            description=m.description,
            expected_sha256=m.expected_sha256,
            total_size=m.total_size,
            parent_version_id=m.parent_version_id,
        )
        session = await asyncio.to_thread(
            self.registry.begin_upload, call.principal, meta, trace_id=call.trace_id
        )
        try:
            async for message in _upload_chunks(
                stream, lambda m: m.chunk.data, MAX_CHUNK_BYTES, "chunk.data"
            ):
                await asyncio.to_thread(session.write, message.chunk.file_name, message.chunk.data)
            version, _created = await asyncio.to_thread(session.finish)
        finally:
            session.abort()  # an interrupted or failed upload leaves nothing behind
        return pb.UploadAdapterVersionResponse(version=version_pb(version))

    @rpc(Role.ADMIN)
    async def RegisterFromUri(self, request: pb.RegisterFromUriRequest, call: Call):
        version, _created = await asyncio.to_thread(
            self.registry.register_from_uri,
            call.principal,
            adapter_name=request.adapter_name,
            kind=_optional_kind(request.kind),
            base_model=request.base_model,
            uri=request.uri,
            expected_sha256=request.expected_sha256,
            parent_version_id=request.parent_version_id,
            metrics=dict(request.metrics),
            description=request.description,
            trace_id=call.trace_id,
        )
        return pb.RegisterFromUriResponse(version=version_pb(version))

    # -- adapters -----------------------------------------------------------------------------
    @rpc(Role.ADMIN)
    async def CreateAdapter(self, request: pb.CreateAdapterRequest, call: Call):
        info = await asyncio.to_thread(
            self.registry.create_adapter,
            call.principal,
            name=request.name,
            kind=_kind(request.kind),
            base_model=request.base_model,
            description=request.description,
            trace_id=call.trace_id,
        )
        return pb.CreateAdapterResponse(adapter=adapter_pb(info))

    @rpc(Role.USER)
    async def GetAdapter(self, request: pb.GetAdapterRequest, call: Call):
        info = await asyncio.to_thread(self.registry.get_adapter, call.principal, name=request.name)
        return pb.GetAdapterResponse(adapter=adapter_pb(info))

    @rpc(Role.USER)
    async def ListAdapters(self, request: pb.ListAdaptersRequest, call: Call):
        kind = _kind(request.kind) if request.kind else ""
        page = await asyncio.to_thread(
            self.registry.list_adapters,
            call.principal,
            kind=kind,
            size=request.page.page_size,
            token=request.page.page_token,
        )
        return pb.ListAdaptersResponse(adapters=[adapter_pb(a) for a in page.items], page=_page(page))

    @rpc(Role.ADMIN)
    async def DeleteAdapter(self, request: pb.DeleteAdapterRequest, call: Call):
        count, revision = await asyncio.to_thread(
            self.registry.delete_adapter,
            call.principal,
            name=request.name,
            force=request.force,
            trace_id=call.trace_id,
        )
        return pb.DeleteAdapterResponse(deleted_version_count=count, revision=revision)

    # -- versions -----------------------------------------------------------------------------
    @rpc(Role.USER)
    async def GetAdapterVersion(self, request: pb.GetAdapterVersionRequest, call: Call):
        info = await asyncio.to_thread(
            self.registry.get_version,
            call.principal,
            version_id=request.version_id,
            ref=request.ref.ref if request.HasField("ref") else "",
        )
        return pb.GetAdapterVersionResponse(version=version_pb(info))

    @rpc(Role.USER)
    async def ListAdapterVersions(self, request: pb.ListAdapterVersionsRequest, call: Call):
        state = ""
        if request.state:
            if request.state not in pb.AdapterVersionState.values():
                raise InvalidArgument(f"unknown state {request.state}", field="state")
            if request.state not in STATE_FROM_PB:
                return pb.ListAdapterVersionsResponse()  # no other state is ever stored
            state = STATE_FROM_PB[request.state]
        page = await asyncio.to_thread(
            self.registry.list_versions,
            call.principal,
            adapter_name=request.adapter_name,
            state=state,
            size=request.page.page_size,
            token=request.page.page_token,
        )
        return pb.ListAdapterVersionsResponse(versions=[version_pb(v) for v in page.items], page=_page(page))

    @rpc(Role.USER)
    async def Download(self, request: pb.DownloadRequest, call: Call):
        chunk_bytes = min(
            self.registry.settings.download_chunk_bytes, self.runtime.settings.max_message_bytes - 4096
        )
        info, chunks = await asyncio.to_thread(
            self.registry.download, call.tenant_id, request.version_id, chunk_bytes=chunk_bytes
        )
        yield pb.DownloadResponse(version=version_pb(info))
        while (item := await asyncio.to_thread(next, chunks, None)) is not None:
            name, data = item
            yield pb.DownloadResponse(chunk=pb.AdapterFileChunk(file_name=name, data=data))

    # -- aliases ------------------------------------------------------------------------------
    @rpc(Role.ADMIN)
    async def SetAlias(self, request: pb.SetAliasRequest, call: Call):
        alias, revision = await asyncio.to_thread(
            self.registry.set_alias,
            call.principal,
            adapter_name=request.adapter_name,
            alias=request.alias,
            version=request.version,
            traffic_weight=request.traffic_weight,
            trace_id=call.trace_id,
        )
        return pb.SetAliasResponse(alias=alias_pb(alias), revision=revision)

    @rpc(Role.ADMIN)
    async def DeleteAlias(self, request: pb.DeleteAliasRequest, call: Call):
        revision = await asyncio.to_thread(
            self.registry.delete_alias,
            call.principal,
            adapter_name=request.adapter_name,
            alias=request.alias,
            trace_id=call.trace_id,
        )
        return pb.DeleteAliasResponse(revision=revision)

    @rpc(Role.USER)
    async def ListAliases(self, request: pb.ListAliasesRequest, call: Call):
        page = await asyncio.to_thread(
            self.registry.list_aliases,
            call.principal,
            adapter_name=request.adapter_name,
            size=request.page.page_size,
            token=request.page.page_token,
        )
        return pb.ListAliasesResponse(aliases=[alias_pb(a) for a in page.items], page=_page(page))

    @rpc(Role.ADMIN)
    async def Rollback(self, request: pb.RollbackRequest, call: Call):
        alias, revision = await asyncio.to_thread(
            self.registry.rollback,
            call.principal,
            adapter_name=request.adapter_name,
            alias=request.alias,
            trace_id=call.trace_id,
        )
        return pb.RollbackResponse(alias=alias_pb(alias), revision=revision)

    # -- resolution and revisions -------------------------------------------------------------
    @rpc(Role.USER)
    async def Resolve(self, request: pb.ResolveRequest, call: Call):
        r = await asyncio.to_thread(
            self.registry.resolve, call.tenant_id, request.ref.ref, request_id=request.request_id
        )
        routing = None
        if r.routing is not None:
            routing = pb.Routing(
                primary_version_id=r.routing.primary_version_id,
                primary_version=r.routing.primary_version,
                primary_alias=r.routing.primary_alias,
                canary_version_id=r.routing.canary_version_id,
                canary_version=r.routing.canary_version,
                canary_weight=r.routing.canary_weight,
            )
        return pb.ResolveResponse(
            version_id=r.version_id,
            adapter_name=r.adapter_name,
            version=r.version,
            kind=KIND_TO_PB[r.kind],
            base_model=r.base_model,
            alias=r.alias,
            revision=r.revision,
            sha256=r.sha256,
            routing=routing,
            request_id=r.request_id,
        )

    @rpc(Role.USER, concurrent=False)  # long-lived: outside the concurrency limit
    async def WatchRevisions(self, request: pb.WatchRevisionsRequest, call: Call):
        registry = self.registry
        cursor = await asyncio.to_thread(registry.check_watch_start, request.from_revision, call.tenant_id)
        yield pb.WatchRevisionsResponse(
            revision=await asyncio.to_thread(registry.current_revision, call.tenant_id)
        )
        poll = registry.settings.watch_poll_interval_s
        # End cleanly (OK) before the call's deadline; the client watches again from `cursor`.
        while call.remaining() > poll + 1.0:
            events = await asyncio.to_thread(
                registry.events_after, call.tenant_id, cursor, limit=_WATCH_BATCH
            )
            for e in events:
                cursor = e.tenant_revision
                yield pb.WatchRevisionsResponse(
                    revision=e.tenant_revision,
                    event=pb.AdapterEvent(
                        revision=e.tenant_revision,
                        type=EVENT_TO_PB[e.type],
                        adapter_name=e.adapter_name,
                        kind=KIND_TO_PB[e.kind],
                        alias=e.alias,
                        version_id=e.version_id,
                        version=e.version,
                        traffic_weight=e.traffic_weight,
                        event_time=timestamp_pb(e.created_at),
                    ),
                )
            if len(events) < _WATCH_BATCH:
                await registry.changes.wait(poll)

    # -- audit --------------------------------------------------------------------------------
    @rpc(Role.ADMIN)
    async def ListAuditEvents(self, request: pb.ListAuditEventsRequest, call: Call):
        start = _time(request.start_time, field="start_time") if request.HasField("start_time") else None
        end = _time(request.end_time, field="end_time") if request.HasField("end_time") else None
        if start is not None and end is not None and start > end:
            raise InvalidArgument("must not be after end_time", field="start_time")
        page = await asyncio.to_thread(
            self.registry.list_audit_events,
            call.principal,
            action_prefix=request.action_prefix,
            resource_prefix=request.resource_prefix,
            start=start,
            end=end,
            size=request.page.page_size,
            token=request.page.page_token,
        )
        return pb.ListAuditEventsResponse(events=[audit_pb(r) for r in page.items], page=_page(page))


# -- training -------------------------------------------------------------------------------------

_trainings: dict[str, TrainingCore] = {}
_trainings_lock = threading.Lock()
PHASE_TO_PB = {name: training_pb2.TrainingPhase.Value(f"TRAINING_PHASE_{name}") for name in jobs.PHASES}
PHASE_FROM_PB = {v: k for k, v in PHASE_TO_PB.items()}
DATASET_STATE_TO_PB = {
    "READY": training_pb2.DATASET_STATE_READY,
    "INVALID": training_pb2.DATASET_STATE_INVALID,
}
MAX_DATASET_CHUNK_BYTES = 1024 * 1024


def training_for(runtime: Runtime) -> TrainingCore:
    """One TrainingCore per registry URL and process; its runner starts with it (and resubmits
    jobs whose process died, which resume from their checkpoints)."""
    key = runtime.settings.resolved_registry_url
    with _trainings_lock:
        if key not in _trainings:
            settings = load_training_settings()
            registry = registry_for(runtime)
            core_ = TrainingCore(runtime.db, registry, settings, data_dir=runtime.settings.data_dir)
            if settings.runner == "ray":
                core_.runner = RayRunner(
                    registry_url=key,
                    data_dir=str(runtime.settings.data_dir),
                    num_cpus=settings.ray_num_cpus,
                    num_gpus=settings.ray_num_gpus,
                )
            elif settings.runner == "thread":
                core_.runner = ThreadRunner(core_.run_job, workers=settings.concurrent_jobs)
            core_.recover()
            _trainings[key] = core_
        return _trainings[key]


def report_pb(r: validation.Report) -> training_pb2.ValidationReport:
    out = training_pb2.ValidationReport(
        valid=r.valid,
        total_records=r.total_records,
        valid_records=r.valid_records,
        duplicate_records=r.duplicate_records,
        empty_records=r.empty_records,
        too_long_records=r.too_long_records,
        malformed_records=r.malformed_records,
        issues=[training_pb2.ValidationIssue(line=i.line, code=i.code, message=i.message) for i in r.issues],
        near_duplicate_records=r.near_duplicate_records,
        train_records=r.train_records,
        validation_records=r.validation_records,
        overlap_records=r.overlap_records,
        unknown_token_share=r.unknown_token_share,
        low_coverage_share=r.low_coverage_share,
        tokenizer=r.tokenizer,
    )
    if r.token_lengths:
        out.token_lengths.CopyFrom(training_pb2.TokenLengthStats(**r.token_lengths))
    return out


def dataset_pb(info: DatasetInfo) -> training_pb2.Dataset:
    r = info.row
    return training_pb2.Dataset(
        dataset_id=r.dataset_id,
        name=r.name,
        version=r.version,
        kind=KIND_TO_PB[r.kind],
        format=training_pb2.DATASET_FORMAT_JSONL,
        sha256=r.sha256,
        size_bytes=r.size_bytes,
        record_count=r.record_count,
        state=DATASET_STATE_TO_PB[r.state],
        validation=report_pb(info.report),
        description=r.description,
        created_by=r.created_by,
        create_time=timestamp_pb(r.created_at),
    )


def event_pb(e: TrainingEventRow) -> training_pb2.TrainingJobEvent:
    out = training_pb2.TrainingJobEvent(
        job_id=e.job_id,
        sequence=e.sequence,
        phase=PHASE_TO_PB[e.phase],
        step=e.step,
        total_steps=e.total_steps,
        eval_metrics=e.eval_metrics or {},
        message=e.message,
        event_time=timestamp_pb(e.created_at),
    )
    if e.loss is not None:
        out.loss = e.loss
    if e.eta_seconds is not None:
        out.eta_seconds = e.eta_seconds
    return out


def hyperparameters_pb(hp: dict) -> training_pb2.Hyperparameters:
    return training_pb2.Hyperparameters(
        rank=hp["rank"],
        alpha=hp["alpha"],
        dropout=hp["dropout"],
        target_modules=hp["target_modules"],
        learning_rate=hp["learning_rate"],
        epochs=hp["epochs"],
        batch_size=hp["batch_size"],
        max_steps=hp["max_steps"],
        general_data_ratio=hp["general_data_ratio"],
        seed=hp["seed"],
    )


def job_pb(info: jobs.JobInfo) -> training_pb2.TrainingJob:
    r = info.row
    return training_pb2.TrainingJob(
        job_id=r.job_id,
        adapter_name=r.adapter_name,
        kind=KIND_TO_PB[r.kind],
        base_model=r.base_model,
        dataset_id=r.dataset_id,
        dataset=training_pb2.DatasetRef(name=r.dataset_name, version=r.dataset_version),
        hyperparameters=hyperparameters_pb(r.hyperparameters),
        phase=PHASE_TO_PB[r.phase],
        last_event=event_pb(info.last_event) if info.last_event is not None else None,
        set_canary=r.set_canary,
        canary_weight=r.canary_weight,
        canary_set=r.canary_set,
        result_version_id=r.result_version_id,
        result_version=r.result_version,
        metrics=r.metrics or {},
        error_message=r.error_message,
        created_by=r.created_by,
        create_time=timestamp_pb(r.created_at),
        start_time=timestamp_pb(r.started_at),
        end_time=timestamp_pb(r.ended_at),
    )


def _job_request(request: training_pb2.StartTrainingRequest, dataset: training_pb2.DatasetRef | None = None):
    hp = request.hyperparameters
    ref = dataset if dataset is not None else request.dataset
    if not ref.name:
        raise InvalidArgument("is required", field="dataset.name")
    return jobs.JobRequest(
        adapter_name=request.adapter_name,
        kind=_kind(request.kind),
        dataset_name=ref.name,
        dataset_version=ref.version if ref.HasField("version") else None,
        base_model=request.base_model,
        hyperparameters={
            "rank": hp.rank,
            "alpha": hp.alpha,
            "dropout": hp.dropout if hp.HasField("dropout") else None,
            "target_modules": list(hp.target_modules),
            "learning_rate": hp.learning_rate,
            "epochs": hp.epochs,
            "batch_size": hp.batch_size,
            "max_steps": hp.max_steps,
            "general_data_ratio": hp.general_data_ratio if hp.HasField("general_data_ratio") else None,
            "seed": hp.seed if hp.HasField("seed") else None,
        },
        parent_version_id=request.parent_version_id,
        set_canary=request.set_canary,
        canary_weight=request.canary_weight,
        description=request.description,
    )


class TrainingServicer(ServicerBase):
    """lorag.adapters.v1.TrainingService: datasets and LoRA training jobs."""

    SERVICES = (training_pb2.DESCRIPTOR.services_by_name["TrainingService"],)
    PENDING = "the LoRA training pipeline is not deployed yet"

    def __init__(self, runtime: Runtime | None = None) -> None:
        super().__init__(runtime)
        self.training = training_for(self.runtime)

    @rpc(Role.ADMIN)
    async def UploadDataset(self, request, call: Call):
        m, stream = await _upload_metadata(request)
        meta = DatasetMeta(
            name=m.name,
            kind=_optional_kind(m.kind, field="metadata.kind"),
            format="jsonl" if m.format == training_pb2.DATASET_FORMAT_JSONL else "",
            description=m.description,
            expected_sha256=m.expected_sha256,
            total_size=m.total_size,
            dry_run=m.dry_run,
        )
        upload = await asyncio.to_thread(self.training.datasets.begin_upload, call.principal, meta)
        try:
            async for message in _upload_chunks(stream, lambda m: m.chunk, MAX_DATASET_CHUNK_BYTES, "chunk"):
                await asyncio.to_thread(upload.write, message.chunk)
            info, _ = await asyncio.to_thread(upload.finish, trace_id=call.trace_id)
        finally:
            upload.abort()
        return training_pb2.UploadDatasetResponse(dataset=dataset_pb(info))

    @rpc(Role.USER)
    async def GetDataset(self, request: training_pb2.GetDatasetRequest, call: Call):
        which = request.WhichOneof("selector")
        if which == "dataset_id":
            info = await asyncio.to_thread(
                self.training.datasets.get, call.principal, dataset_id=request.dataset_id or "-"
            )
        elif which == "ref":
            ref = request.ref
            info = await asyncio.to_thread(
                self.training.datasets.get,
                call.principal,
                name=ref.name,
                version=ref.version if ref.HasField("version") else None,
            )
        else:
            raise InvalidArgument("exactly one of dataset_id and ref must be set", field="selector")
        return training_pb2.GetDatasetResponse(dataset=dataset_pb(info))

    @rpc(Role.USER)
    async def ListDatasets(self, request: training_pb2.ListDatasetsRequest, call: Call):
        items, token = await asyncio.to_thread(
            self.training.datasets.list,
            call.principal,
            name=request.name,
            kind=_kind(request.kind) if request.kind else "",
            size=request.page.page_size,
            token=request.page.page_token,
        )
        return training_pb2.ListDatasetsResponse(
            datasets=[dataset_pb(i) for i in items], page=common_pb2.PageResponse(next_page_token=token)
        )

    @rpc(Role.ADMIN)
    async def StartTraining(self, request: training_pb2.StartTrainingRequest, call: Call):
        info = await asyncio.to_thread(
            self.training.start, call.principal, _job_request(request), trace_id=call.trace_id
        )
        return training_pb2.StartTrainingResponse(job=job_pb(info))

    @rpc(Role.USER)
    async def GetTrainingJob(self, request: training_pb2.GetTrainingJobRequest, call: Call):
        info = await asyncio.to_thread(self.training.get, call.principal, request.job_id)
        return training_pb2.GetTrainingJobResponse(job=job_pb(info))

    @rpc(Role.USER)
    async def ListTrainingJobs(self, request: training_pb2.ListTrainingJobsRequest, call: Call):
        phase = ""
        if request.phase:
            if request.phase not in PHASE_FROM_PB:
                raise InvalidArgument("unknown phase", field="phase")
            phase = PHASE_FROM_PB[request.phase]
        items, token = await asyncio.to_thread(
            self.training.list,
            call.principal,
            adapter_name=request.adapter_name,
            phase=phase,
            size=request.page.page_size,
            token=request.page.page_token,
        )
        return training_pb2.ListTrainingJobsResponse(
            jobs=[job_pb(i) for i in items], page=common_pb2.PageResponse(next_page_token=token)
        )

    @rpc(Role.USER, concurrent=False)  # long-lived: outside the concurrency limit
    async def WatchTrainingJob(self, request: training_pb2.WatchTrainingJobRequest, call: Call):
        if request.from_sequence < 0:
            raise InvalidArgument("must be >= 0", field="from_sequence")
        cursor = request.from_sequence
        poll = 0.25
        # End cleanly (OK) before the call's deadline; the client watches again from its cursor.
        while call.remaining() > poll + 1.0:
            events = await asyncio.to_thread(
                self.training.events_after, call.principal, request.job_id, cursor
            )
            for e in events:
                cursor = e.sequence
                yield training_pb2.WatchTrainingJobResponse(event=event_pb(e))
                if e.phase in jobs.FINAL:
                    return
            if not events:
                await asyncio.to_thread(self.training.wait_change, poll)

    @rpc(Role.ADMIN)
    async def CancelTrainingJob(self, request: training_pb2.CancelTrainingJobRequest, call: Call):
        info = await asyncio.to_thread(
            self.training.cancel, call.principal, request.job_id, trace_id=call.trace_id
        )
        return training_pb2.CancelTrainingJobResponse(job=job_pb(info))

    @rpc(Role.ADMIN)
    async def PromoteCanary(self, request: training_pb2.PromoteCanaryRequest, call: Call):
        d = await asyncio.to_thread(
            jobs.promote_canary,
            self.training,
            call.principal,
            adapter_name=request.adapter_name,
            min_feedback=request.min_feedback,
            dry_run=request.dry_run,
            trace_id=call.trace_id,
        )
        return training_pb2.PromoteCanaryResponse(**dataclasses.asdict(d))

    @rpc(Role.ADMIN)
    async def BuildDatasetFromFeedback(
        self, request: training_pb2.BuildDatasetFromFeedbackRequest, call: Call
    ):
        kind = _kind(request.kind)
        start = None
        if request.HasField("start"):
            template = training_pb2.StartTrainingRequest()
            template.CopyFrom(request.start)
            template.kind = template.kind or request.kind  # unset: the dataset's kind
            start = _job_request(template, training_pb2.DatasetRef(name=request.dataset_name or "x"))
            if start.kind != kind:
                raise FailedPrecondition(f"start.kind must be the dataset's kind ({kind})")
            # a job that cannot start must not leave a new dataset version behind
            await asyncio.to_thread(self.training.check_request, call.principal, start)
        info, count = await asyncio.to_thread(
            self.training.build_from_feedback,
            call.principal,
            dataset_name=request.dataset_name,
            kind=kind,
            since=_time(request.since, field="since") if request.HasField("since") else None,
            min_records=request.min_records,
            description=request.description,
            trace_id=call.trace_id,
        )
        response = training_pb2.BuildDatasetFromFeedbackResponse(
            dataset=dataset_pb(info), feedback_count=count
        )
        if start is not None and info.row.state == "READY":
            start = dataclasses.replace(start, dataset_name=info.row.name, dataset_version=info.row.version)
            job = await asyncio.to_thread(self.training.start, call.principal, start, trace_id=call.trace_id)
            response.job.CopyFrom(job_pb(job))
        return response


class AdaptersAppServicer(AdminServicer, AdapterServicer, TrainingServicer):
    """Ingress of the `adapters` application: AdminService, AdapterService, TrainingService.

    Ray Serve's proxy dispatches by method name, so RPC names are unique across the three.
    """

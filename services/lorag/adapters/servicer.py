"""Servicers of the `adapters` application: adapter registry, training and admin APIs.

AdapterServicer maps lorag.adapters.v1.AdapterService onto :class:`lorag.adapters.core.AdapterRegistry`
(proto <-> core, nothing else). Registry calls are blocking and run in a thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from lorag.adapters import core
from lorag.adapters.core import AdapterRegistry, AliasInfo, UploadMetadata, VersionInfo
from lorag.adapters.settings import load_adapter_settings
from lorag.adapters.v1 import adapters_pb2 as pb
from lorag.adapters.v1 import training_pb2
from lorag.admin.servicer import AdminServicer
from lorag.common.convert import timestamp_pb
from lorag.common.errors import InvalidArgument
from lorag.common.rpc import Call, Runtime, ServicerBase, rpc
from lorag.common.tenancy import AuditEventRow, Role
from lorag.common.v1 import common_pb2

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
        stream = aiter(request)
        first = await anext(stream, None)
        if first is None or first.WhichOneof("payload") != "metadata":
            raise InvalidArgument("the first message of the stream must carry the metadata", field="metadata")
        m = first.metadata
        meta = UploadMetadata(
            adapter_name=m.adapter_name,
            kind=KIND_FROM_PB.get(m.kind, ""),
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
            async for message in stream:
                if message.WhichOneof("payload") != "chunk":
                    raise InvalidArgument("only the first message may carry metadata", field="chunk")
                if len(message.chunk.data) > MAX_CHUNK_BYTES:
                    raise InvalidArgument(
                        f"a chunk holds at most {MAX_CHUNK_BYTES} bytes", field="chunk.data"
                    )
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
            kind=KIND_FROM_PB.get(request.kind, ""),
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

    @rpc(Role.USER)
    async def WatchRevisions(self, request: pb.WatchRevisionsRequest, call: Call):
        registry = self.registry
        cursor = await asyncio.to_thread(registry.check_watch_start, request.from_revision)
        yield pb.WatchRevisionsResponse(revision=await asyncio.to_thread(registry.current_revision))
        poll = registry.settings.watch_poll_interval_s
        # End cleanly (OK) before the call's deadline; the client watches again from `cursor`.
        while call.remaining() > poll + 1.0:
            events = await asyncio.to_thread(
                registry.events_after, call.tenant_id, cursor, limit=_WATCH_BATCH
            )
            for e in events:
                cursor = e.revision
                yield pb.WatchRevisionsResponse(
                    revision=e.revision,
                    event=pb.AdapterEvent(
                        revision=e.revision,
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
        page = await asyncio.to_thread(
            self.registry.list_audit_events,
            call.principal,
            action_prefix=request.action_prefix,
            resource_prefix=request.resource_prefix,
            start=request.start_time.ToDatetime(dt.UTC) if request.HasField("start_time") else None,
            end=request.end_time.ToDatetime(dt.UTC) if request.HasField("end_time") else None,
            size=request.page.page_size,
            token=request.page.page_token,
        )
        return pb.ListAuditEventsResponse(events=[audit_pb(r) for r in page.items], page=_page(page))


class TrainingServicer(ServicerBase):
    SERVICES = (training_pb2.DESCRIPTOR.services_by_name["TrainingService"],)
    PENDING = "the LoRA training pipeline is not deployed yet"


class AdaptersAppServicer(AdminServicer, AdapterServicer, TrainingServicer):
    """Ingress of the `adapters` application: AdminService, AdapterService, TrainingService.

    Ray Serve's proxy dispatches by method name, so RPC names are unique across the three.
    """

"""RegistryClient implementations for :class:`lorag.adapters.cache.AdapterCache`.

* :class:`LocalRegistryClient` talks to the registry in-process (same SQL registry and blob store),
  for replicas of generation and reranking inside the platform: one client serves every tenant,
  and its watch follows the changes of all tenants (registry-wide revisions).
* :class:`GrpcRegistryClient` talks to AdapterService over gRPC with one API key, so it serves the
  tenant of that key only (for deployments outside the platform); its revisions are the tenant's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from lorag.adapters.cache import RevisionEvent, VersionFiles
from lorag.adapters.core import AdapterRegistry
from lorag.adapters.routing import Resolution, Routing
from lorag.common.errors import NotFound

_KINDS = {1: "generation", 2: "reranking"}


class LocalRegistryClient:
    def __init__(self, registry: AdapterRegistry, *, poll_interval_s: float | None = None) -> None:
        self.registry = registry
        self.poll_interval_s = poll_interval_s or registry.settings.watch_poll_interval_s

    async def resolve(self, tenant_id: str, ref: str, *, request_id: str = "") -> Resolution:
        return await asyncio.to_thread(self.registry.resolve, tenant_id, ref, request_id=request_id)

    async def download(self, tenant_id: str, version_id: str, dest: Path) -> VersionFiles:
        def run() -> VersionFiles:
            info, chunks = self.registry.download(tenant_id, version_id)
            handles = {}
            try:
                for name, data in chunks:
                    if name not in handles:
                        handles[name] = open(Path(dest) / name, "wb")  # noqa: SIM115
                    handles[name].write(data)
            finally:
                for fh in handles.values():
                    fh.close()
            return VersionFiles(
                version_id=info.version_id,
                sha256=info.row.sha256,
                files={f["name"]: f["sha256"] for f in info.files},
                size_bytes=info.row.size_bytes,
            )

        return await asyncio.to_thread(run)

    async def watch(self, from_revision: int) -> AsyncIterator[RevisionEvent]:
        registry = self.registry
        cursor = await asyncio.to_thread(registry.check_watch_start, from_revision)
        yield RevisionEvent(revision=await asyncio.to_thread(registry.current_revision))
        while True:
            events = await asyncio.to_thread(registry.events_after, None, cursor)
            for e in events:
                cursor = e.revision
                yield RevisionEvent(
                    revision=e.revision,
                    tenant_id=e.tenant_id,
                    adapter_name=e.adapter_name,
                    tenant_revision=e.tenant_revision,
                )
            if len(events) < 500:
                await registry.changes.wait(self.poll_interval_s)


class GrpcRegistryClient:
    """Over gRPC with the SDK's :class:`lorag.client.AsyncClient`; ``tenant_id`` must be the key's."""

    def __init__(self, client, tenant_id: str) -> None:
        self.client = client
        self.tenant_id = tenant_id

    def _check(self, tenant_id: str) -> None:
        if tenant_id != self.tenant_id:
            raise NotFound("adapter not found")  # this client cannot see other tenants

    async def resolve(self, tenant_id: str, ref: str, *, request_id: str = "") -> Resolution:
        from lorag.adapters.v1 import adapters_pb2 as pb
        from lorag.common.v1 import common_pb2

        self._check(tenant_id)
        r = await self.client.adapters.Resolve(
            pb.ResolveRequest(ref=common_pb2.AdapterRef(ref=ref), request_id=request_id)
        )
        routing = None
        if r.HasField("routing"):
            g = r.routing
            routing = Routing(
                g.primary_version_id,
                g.primary_version,
                g.primary_alias,
                g.canary_version_id,
                g.canary_version,
                g.canary_weight,
            )
        return Resolution(
            version_id=r.version_id,
            adapter_name=r.adapter_name,
            version=r.version,
            kind=_KINDS.get(r.kind, ""),
            base_model=r.base_model,
            alias=r.alias,
            revision=r.revision,
            sha256=r.sha256,
            request_id=r.request_id,
            routing=routing,
        )

    async def download(self, tenant_id: str, version_id: str, dest: Path) -> VersionFiles:
        from lorag.adapters.transfer import awrite_download
        from lorag.adapters.v1 import adapters_pb2 as pb

        self._check(tenant_id)
        version = await awrite_download(
            self.client.adapters.Download(pb.DownloadRequest(version_id=version_id)), dest
        )
        return VersionFiles(
            version_id=version.version_id,
            sha256=version.sha256,
            files={f.name: f.sha256 for f in version.files},
            size_bytes=version.size_bytes,
        )

    async def watch(self, from_revision: int) -> AsyncIterator[RevisionEvent]:
        import grpc

        from lorag.adapters.v1 import adapters_pb2 as pb
        from lorag.common.errors import OutOfRange

        call = self.client.adapters.WatchRevisions(
            pb.WatchRevisionsRequest(from_revision=from_revision), timeout=3600
        )
        try:
            async for message in call:
                yield RevisionEvent(
                    revision=message.revision,
                    tenant_id=self.tenant_id if message.HasField("event") else "",
                    adapter_name=message.event.adapter_name if message.HasField("event") else "",
                )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                raise OutOfRange(exc.details() or "revision out of range") from None
            raise
        finally:
            call.cancel()

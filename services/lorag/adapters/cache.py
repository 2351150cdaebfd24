"""AdapterCache: the replica-side piece that turns adapter references into loaded adapters.

Generation and reranking replicas use it the same way::

    cache = AdapterCache(client, loader=load, unloader=unload, memory_budget_bytes=512 << 20,
                         download_dir=data_dir / "adapter-cache")
    await cache.start()                                   # follows registry revisions
    async with cache.use(tenant_id, "support-bot", request_id=rid) as (resolution, adapter):
        ...  # adapter.value is what ``load`` returned; resolution.version_id is the version used

* resolve: ``name`` / ``name@alias`` / ``name@v3`` -> immutable version id. Resolutions are cached
  until the registry reports a change of that adapter (``watch``), or for ``resolve_ttl_s`` while
  no watch stream is up (the poll fallback). Bare names are routed locally with the registry's
  routing table, so canary splits stay deterministic per request id without a call per request.
* load: a version is downloaded, every file hash is verified, then ``loader(version_id, path)``
  runs once, however many requests ask for it at the same time.
* memory: loaded adapters form an LRU bounded by ``memory_budget_bytes``; adapters in use (inside
  ``acquire``/``use``) are never evicted; ``unloader(version_id, value)`` runs on eviction.

Pure Python and asyncio: no Ray, no gRPC (``RegistryClient`` implementations live in
:mod:`lorag.adapters.clients`). Loaders/unloaders may be sync (run in a thread) or async.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import shutil
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lorag.adapters.routing import Resolution, check_request_id, parse_ref
from lorag.adapters.validation import manifest_sha256
from lorag.common import metrics
from lorag.common.errors import DataLoss, LoragError, NotFound, OutOfRange, ResourceExhausted

log = logging.getLogger("lorag.adapters.cache")


@dataclass(frozen=True)
class VersionFiles:
    """A downloaded version: file name -> SHA-256 as the registry states them."""

    version_id: str
    sha256: str
    files: dict[str, str]
    size_bytes: int


@dataclass(frozen=True)
class RevisionEvent:
    """A registry change; ``adapter_name`` empty for the marker that opens a watch stream.

    ``revision`` is the watch stream's cursor; ``tenant_revision`` the tenant's own revision after
    the change, the one resolutions carry (0: the same as ``revision``, for a one-tenant stream).
    """

    revision: int
    tenant_id: str = ""
    adapter_name: str = ""
    tenant_revision: int = 0


class RegistryClient(Protocol):
    """What the cache needs from the registry (in-process or over gRPC)."""

    async def resolve(self, tenant_id: str, ref: str, *, request_id: str = "") -> Resolution: ...

    async def download(self, tenant_id: str, version_id: str, dest: Path) -> VersionFiles: ...

    def watch(self, from_revision: int) -> AsyncIterator[RevisionEvent]: ...


@dataclass
class LoadedAdapter:
    version_id: str
    tenant_id: str
    value: Any
    size_bytes: int
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    refs: int = 0


@dataclass
class CacheStats:
    hits: int = 0
    loads: int = 0
    shared_loads: int = 0
    evictions: int = 0
    resolve_calls: int = 0
    resolve_hits: int = 0


async def _call(fn: Callable, *args: Any) -> Any:
    """Await an async callable; run a sync one in a thread."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):
        return await result
    return result


def verify_files(path: Path, expected: VersionFiles) -> None:
    """Check the files on disk against the registry's hashes; DataLoss on any mismatch."""
    got: dict[str, str] = {}
    for name, digest in expected.files.items():
        h = hashlib.sha256()
        try:
            with open(path / name, "rb") as fh:
                while chunk := fh.read(1024 * 1024):
                    h.update(chunk)
        except FileNotFoundError:
            raise DataLoss(f"{name} of adapter version {expected.version_id} is missing") from None
        got[name] = h.hexdigest()
        if got[name] != digest:
            raise DataLoss(f"{name} of adapter version {expected.version_id} failed its SHA-256 check")
    if expected.sha256 and manifest_sha256(got) != expected.sha256:
        raise DataLoss(f"adapter version {expected.version_id} failed its manifest SHA-256 check")


class AdapterCache:
    def __init__(
        self,
        client: RegistryClient,
        *,
        loader: Callable[[str, Path], Any],
        unloader: Callable[[str, Any], Any] | None = None,
        memory_budget_bytes: int,
        download_dir: Path,
        size_of: Callable[[Any, VersionFiles], int] | None = None,
        resolve_ttl_s: float = 2.0,
        max_staleness_s: float = 300.0,
        keep_files: bool = False,
        watch: bool = True,
        service: str = "",
    ) -> None:
        if memory_budget_bytes <= 0:
            raise ValueError("memory_budget_bytes must be positive")
        self.client = client
        self.loader = loader
        self.unloader = unloader
        self.budget = memory_budget_bytes
        self.download_dir = Path(download_dir)
        self.size_of = size_of
        self.resolve_ttl_s = resolve_ttl_s
        self.max_staleness_s = max_staleness_s
        self.keep_files = keep_files
        self.watch_enabled = watch
        self.service = service or "unknown"  # the `service` label of the lorag_adapter_cache_* metrics
        self.stats = CacheStats()
        self._entries: OrderedDict[str, LoadedAdapter] = OrderedDict()
        self._loading: dict[str, asyncio.Task] = {}
        self._resolved: dict[tuple[str, str], tuple[float, Resolution]] = {}
        self._changed_at: dict[tuple[str, str], int] = {}  # (tenant, adapter) -> revision
        self._revision = 0
        self._watch_task: asyncio.Task | None = None
        self.watching = False

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start following registry revisions (no-op when ``watch`` is False)."""
        if self.watch_enabled and self._watch_task is None:
            self._watch_task = asyncio.create_task(self._watch_loop(), name="adapter-cache-watch")

    async def close(self) -> None:
        """Stop watching and unload everything."""
        if self._watch_task is not None:
            self._watch_task.cancel()
            await asyncio.gather(self._watch_task, return_exceptions=True)
            self._watch_task = None
        for task in list(self._loading.values()):
            task.cancel()
        await asyncio.gather(*self._loading.values(), return_exceptions=True)
        entries, self._entries = list(self._entries.values()), OrderedDict()
        for entry in entries:
            await self._unload(entry)
        self._record_size()

    # -- resolution ---------------------------------------------------------------------------
    async def resolve(self, tenant_id: str, ref: str, *, request_id: str = "") -> Resolution:
        """The version ``ref`` means for this request (cached; bare names routed per request id)."""
        parsed = parse_ref(ref)
        key = (tenant_id, ref)
        now = time.monotonic()
        hit = self._resolved.get(key)
        if hit is not None and hit[0] > now:
            self.stats.resolve_hits += 1
            return hit[1].rerouted(check_request_id(request_id)) if parsed.bare else hit[1]
        self.stats.resolve_calls += 1
        resolution = await self.client.resolve(tenant_id, ref, request_id=request_id)
        changed = self._changed_at.get((tenant_id, parsed.name), 0)
        if resolution.revision >= changed:  # never cache an answer older than a known change
            ttl = self.max_staleness_s if self.watching else self.resolve_ttl_s
            self._resolved[key] = (time.monotonic() + ttl, resolution)
        return resolution

    def invalidate(self, tenant_id: str, adapter_name: str, revision: int = 0) -> None:
        """Forget resolutions of one adapter (called for each registry event); ``revision`` is the
        tenant's own revision after the change."""
        self._changed_at[(tenant_id, adapter_name)] = max(
            revision, self._changed_at.get((tenant_id, adapter_name), 0)
        )
        metrics.ADAPTER_CACHE_INVALIDATIONS.labels(self.service).inc()
        for key in [k for k in self._resolved if k[0] == tenant_id and parse_ref(k[1]).name == adapter_name]:
            del self._resolved[key]

    def invalidate_all(self) -> None:
        self._resolved.clear()

    # -- loading ------------------------------------------------------------------------------
    @asynccontextmanager
    async def acquire(self, tenant_id: str, version_id: str) -> AsyncIterator[LoadedAdapter]:
        """The loaded version, held (never evicted) until the block ends."""
        entry = await self._get(tenant_id, version_id)
        entry.refs += 1
        entry.last_used = time.time()
        try:
            yield entry
        finally:
            entry.refs -= 1
            await self._evict()

    @asynccontextmanager
    async def use(
        self, tenant_id: str, ref: str, *, request_id: str = ""
    ) -> AsyncIterator[tuple[Resolution, LoadedAdapter]]:
        """Resolve ``ref`` for this request and hold the loaded version."""
        resolution = await self.resolve(tenant_id, ref, request_id=request_id)
        async with self.acquire(tenant_id, resolution.version_id) as entry:
            yield resolution, entry

    def loaded(self) -> list[LoadedAdapter]:
        """Loaded versions, most recently used first."""
        return list(reversed(self._entries.values()))

    @property
    def used_bytes(self) -> int:
        return sum(e.size_bytes for e in self._entries.values())

    async def _get(self, tenant_id: str, version_id: str) -> LoadedAdapter:
        entry = self._entries.get(version_id)
        if entry is not None:
            if entry.tenant_id != tenant_id:
                raise NotFound(f"adapter version {version_id!r} not found")
            self._entries.move_to_end(version_id)
            self.stats.hits += 1
            metrics.ADAPTER_CACHE_LOOKUPS.labels(self.service, "hit").inc()
            return entry
        metrics.ADAPTER_CACHE_LOOKUPS.labels(self.service, "miss").inc()
        task = self._loading.get(version_id)
        if task is None:
            task = asyncio.create_task(self._load(tenant_id, version_id))
            self._loading[version_id] = task
            task.add_done_callback(lambda _t, vid=version_id: self._loading.pop(vid, None))
        else:
            self.stats.shared_loads += 1
        entry = await asyncio.shield(task)  # a cancelled waiter does not cancel the shared load
        if entry.tenant_id != tenant_id:
            raise NotFound(f"adapter version {version_id!r} not found")
        return entry

    async def _load(self, tenant_id: str, version_id: str) -> LoadedAdapter:
        started = time.perf_counter()
        try:
            entry = await self._download_and_load(tenant_id, version_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = exc.code.lower() if isinstance(exc, LoragError) else type(exc).__name__
            metrics.ADAPTER_CACHE_LOAD_FAILURES.labels(self.service, reason).inc()
            # not remembered: the next request tries again (e.g. after the blob was repaired)
            log.warning(
                "%s could not load adapter version %s of tenant %s (%s): %s",
                self.service,
                version_id,
                tenant_id,
                reason,
                exc,
                exc_info=not isinstance(exc, LoragError),
            )
            raise
        metrics.ADAPTER_CACHE_LOAD_LATENCY.labels(self.service).observe(time.perf_counter() - started)
        return entry

    def _record_size(self) -> None:
        metrics.ADAPTER_CACHE_LOADED.labels(self.service).set(len(self._entries))
        metrics.ADAPTER_CACHE_BYTES.labels(self.service).set(self.used_bytes)

    async def _download_and_load(self, tenant_id: str, version_id: str) -> LoadedAdapter:
        dest = self.download_dir / version_id
        partial = self.download_dir / f".{version_id}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            files = await self.client.download(tenant_id, version_id, partial)
            await asyncio.to_thread(verify_files, partial, files)
            shutil.rmtree(dest, ignore_errors=True)
            partial.rename(dest)
            value = await _call(self.loader, version_id, dest)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
            if not self.keep_files:
                shutil.rmtree(dest, ignore_errors=True)
        size = self.size_of(value, files) if self.size_of else files.size_bytes
        entry = LoadedAdapter(version_id=version_id, tenant_id=tenant_id, value=value, size_bytes=size)
        if size > self.budget:
            await self._unload(entry)
            raise ResourceExhausted(
                f"adapter version {version_id} needs {size} bytes; the cache budget is {self.budget} bytes"
            )
        self.stats.loads += 1
        self._entries[version_id] = entry
        await self._evict(keep=version_id)
        self._record_size()
        return entry

    async def _evict(self, keep: str = "") -> None:
        """Unload least recently used, unheld versions until the budget holds."""
        victims = []
        used = self.used_bytes
        for vid, entry in list(self._entries.items()):
            if used <= self.budget:
                break
            if entry.refs > 0 or vid == keep:
                continue
            del self._entries[vid]
            used -= entry.size_bytes
            victims.append(entry)
        for entry in victims:
            self.stats.evictions += 1
            metrics.ADAPTER_CACHE_EVICTIONS.labels(self.service).inc()
            await self._unload(entry)
        if victims:
            self._record_size()

    async def _unload(self, entry: LoadedAdapter) -> None:
        if self.unloader is None:
            return
        try:
            await _call(self.unloader, entry.version_id, entry.value)
        except Exception:  # noqa: BLE001 - an unload failure must not break serving
            log.warning("unloading adapter version %s failed", entry.version_id, exc_info=True)

    # -- following revisions ------------------------------------------------------------------
    async def _watch_loop(self) -> None:
        backoff = 0.2
        while True:
            try:
                async for event in self.client.watch(self._revision):
                    if not self.watching:
                        self.watching = True
                        self.invalidate_all()  # anything cached before the stream may be stale
                    backoff = 0.2
                    self._revision = max(self._revision, event.revision)
                    if event.adapter_name:
                        self.invalidate(
                            event.tenant_id, event.adapter_name, event.tenant_revision or event.revision
                        )
            except asyncio.CancelledError:
                self.watching = False
                raise
            except OutOfRange:
                self._revision = 0
            except Exception:  # noqa: BLE001 - fall back to polling and reconnect
                log.warning("registry watch failed; polling until it reconnects", exc_info=True)
            self.watching = False
            self.invalidate_all()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

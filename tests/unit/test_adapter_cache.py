"""AdapterCache without any server: resolution caching, shared loads, hash checks, LRU budget, watch."""

import asyncio
import hashlib
from pathlib import Path

import pytest

from lorag.adapters.cache import AdapterCache, RevisionEvent, VersionFiles
from lorag.adapters.routing import Resolution, Routing
from lorag.adapters.validation import manifest_sha256
from lorag.common.errors import DataLoss, NotFound, ResourceExhausted


class FakeRegistry:
    """In-memory registry: versions of tenant 'acme', a movable production alias, an event queue."""

    def __init__(self) -> None:
        self.files = {f"av_{i}": {"adapter_config.json": f'{{"r": {i}}}'.encode()} for i in range(1, 6)}
        self.owner = dict.fromkeys(self.files, "acme")
        self.production = "av_1"
        self.canary = ("", 0)
        self.revision = 1
        self.resolve_calls = 0
        self.downloads: list[str] = []
        self.corrupt: set[str] = set()
        self.events: asyncio.Queue = asyncio.Queue()
        self.download_gate: asyncio.Event | None = None

    async def resolve(self, tenant_id, ref, *, request_id=""):
        self.resolve_calls += 1
        name, _, suffix = ref.partition("@")
        if tenant_id != "acme" or name != "bot":
            raise NotFound(f"adapter {ref!r} not found")
        routing = None
        if suffix.startswith("v"):
            vid, alias = f"av_{suffix[1:]}", ""
        else:
            vid, alias = self.production, "production"
            if not suffix:
                routing = Routing(self.production, int(self.production[3:]), "production", *self._canary())
                vid, _, alias = routing.choose("bot", request_id or "x")
        return Resolution(
            vid, "bot", int(vid[3:]), "generation", "base", alias, self.revision, "", request_id, routing
        )

    def _canary(self):
        vid, weight = self.canary
        return (vid, int(vid[3:]) if vid else 0, weight)

    async def download(self, tenant_id, version_id, dest: Path):
        if self.owner.get(version_id) != tenant_id:
            raise NotFound(f"adapter version {version_id!r} not found")
        self.downloads.append(version_id)
        if self.download_gate is not None:
            await self.download_gate.wait()
        hashes = {}
        for name, data in self.files[version_id].items():
            hashes[name] = hashlib.sha256(data).hexdigest()
            (dest / name).write_bytes(data + (b"!" if version_id in self.corrupt else b""))
        return VersionFiles(version_id, manifest_sha256(hashes), hashes, 1000 * int(version_id[3:]))

    async def watch(self, from_revision):
        yield RevisionEvent(revision=self.revision)
        while True:
            yield await self.events.get()

    def move_production(self, vid):
        self.production = vid
        self.revision += 1
        self.events.put_nowait(RevisionEvent(self.revision, "acme", "bot"))


def make_cache(reg, tmp_path, budget=10_000, **kw):
    loaded, unloaded = [], []

    async def loader(version_id, path):
        loaded.append(version_id)
        return (path / "adapter_config.json").read_text()

    def unloader(version_id, value):
        unloaded.append(version_id)

    cache = AdapterCache(
        reg,
        loader=loader,
        unloader=unloader,
        memory_budget_bytes=budget,
        download_dir=tmp_path / "dl",
        **kw,
    )
    return cache, loaded, unloaded


async def test_concurrent_requests_for_one_version_share_one_load(tmp_path):
    reg = FakeRegistry()
    reg.download_gate = asyncio.Event()
    cache, loaded, _ = make_cache(reg, tmp_path, watch=False)

    async def use():
        async with cache.acquire("acme", "av_2") as entry:
            return entry.value

    tasks = [asyncio.create_task(use()) for _ in range(10)]
    await asyncio.sleep(0.05)
    reg.download_gate.set()
    assert await asyncio.gather(*tasks) == ['{"r": 2}'] * 10
    assert loaded == ["av_2"] and reg.downloads == ["av_2"]
    assert cache.stats.loads == 1 and cache.stats.shared_loads == 9
    assert not (tmp_path / "dl" / "av_2").exists()  # files are gone once loaded


async def test_lru_eviction_respects_the_budget_and_held_adapters(tmp_path):
    reg = FakeRegistry()
    cache, _, unloaded = make_cache(reg, tmp_path, budget=6000, watch=False)  # sizes: 1000 * n
    async with cache.acquire("acme", "av_1"):
        pass
    async with cache.acquire("acme", "av_2"):
        pass
    async with cache.acquire("acme", "av_1"):  # av_1 is now the most recent
        pass
    async with cache.acquire("acme", "av_3") as held:  # 1+2+3 = 6000 fits
        assert unloaded == []
        async with cache.acquire("acme", "av_4"):  # needs 4000: evict av_2 then av_1, not held av_3
            assert unloaded == ["av_2", "av_1"] and held.refs == 1
    # av_3 + av_4 = 7000 was over budget only while both were held; released av_4 went first
    assert [e.version_id for e in cache.loaded()] == ["av_3"] and unloaded == ["av_2", "av_1", "av_4"]
    assert cache.used_bytes <= 6000
    small, _, small_unloaded = make_cache(reg, tmp_path / "small", budget=4000, watch=False)
    with pytest.raises(ResourceExhausted, match="budget"):
        async with small.acquire("acme", "av_5"):  # 5000 bytes can never fit
            pass
    assert small.loaded() == [] and small_unloaded == ["av_5"]


async def test_a_corrupted_download_is_never_loaded(tmp_path):
    reg = FakeRegistry()
    reg.corrupt.add("av_3")
    cache, loaded, _ = make_cache(reg, tmp_path, watch=False)
    with pytest.raises(DataLoss, match="SHA-256"):
        async with cache.acquire("acme", "av_3"):
            pass
    assert loaded == [] and cache.loaded() == []
    assert list((tmp_path / "dl").iterdir()) == []


async def test_other_tenants_cannot_use_a_loaded_version(tmp_path):
    reg = FakeRegistry()
    cache, _, _ = make_cache(reg, tmp_path, watch=False)
    async with cache.acquire("acme", "av_1"):
        pass
    with pytest.raises(NotFound):
        async with cache.acquire("intruder", "av_1"):
            pass
    with pytest.raises(NotFound):
        await cache.resolve("intruder", "bot")


async def test_resolutions_are_cached_and_polled_without_a_watch(tmp_path):
    reg = FakeRegistry()
    cache, _, _ = make_cache(reg, tmp_path, watch=False, resolve_ttl_s=0.2)
    assert (await cache.resolve("acme", "bot@production")).version_id == "av_1"
    reg.production = "av_2"
    assert (await cache.resolve("acme", "bot@production")).version_id == "av_1"  # cached
    assert reg.resolve_calls == 1
    await asyncio.sleep(0.25)
    assert (await cache.resolve("acme", "bot@production")).version_id == "av_2"  # the poll fallback


async def test_watch_events_swap_versions_without_waiting_for_a_ttl(tmp_path):
    reg = FakeRegistry()
    cache, loaded, _ = make_cache(reg, tmp_path, resolve_ttl_s=3600)
    await cache.start()
    try:
        for _ in range(100):
            if cache.watching:
                break
            await asyncio.sleep(0.01)
        async with cache.use("acme", "bot", request_id="r1") as (res, entry):
            assert (res.version_id, entry.value) == ("av_1", '{"r": 1}')
        reg.move_production("av_2")
        for _ in range(100):
            res = await cache.resolve("acme", "bot", request_id="r1")
            if res.version_id == "av_2":
                break
            await asyncio.sleep(0.01)
        assert res.version_id == "av_2"
        async with cache.use("acme", "bot", request_id="r1") as (res, entry):
            assert entry.value == '{"r": 2}'
        assert loaded == ["av_1", "av_2"]
    finally:
        await cache.close()
    assert cache.loaded() == []


async def test_bare_names_are_routed_locally_and_deterministically(tmp_path):
    reg = FakeRegistry()
    reg.canary = ("av_2", 40)
    cache, _, _ = make_cache(reg, tmp_path, watch=False, resolve_ttl_s=60)
    first = {f"r{i}": (await cache.resolve("acme", "bot", request_id=f"r{i}")).version_id for i in range(200)}
    assert reg.resolve_calls == 1  # one registry call, then local routing
    share = sum(v == "av_2" for v in first.values()) / 200
    assert 0.3 < share < 0.5
    again = {rid: (await cache.resolve("acme", "bot", request_id=rid)).version_id for rid in first}
    assert again == first

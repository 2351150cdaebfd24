"""The adapter registry over real gRPC, on SQLite + a local blob store and on Postgres + S3 (moto).

upload -> validate -> register -> alias -> resolve -> rollback -> audit, bad input, tenancy,
canary routing, revisions, hot swap through the AdapterCache, and the `lorag adapters` CLI.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import time
from pathlib import Path

import grpc
import pytest

from lorag.adapters.cache import AdapterCache
from lorag.adapters.clients import GrpcRegistryClient
from lorag.adapters.servicer import registry_for
from lorag.adapters.transfer import awrite_download, upload_requests
from lorag.adapters.v1 import adapters_pb2 as pb
from lorag.apps import APPS_BY_NAME
from lorag.client import AsyncClient
from lorag.common.hosts import start_inprocess
from lorag.common.rpc import Runtime
from lorag.common.settings import LoragSettings
from lorag.common.tenancy import Role
from lorag.common.v1 import common_pb2
from tests.support.adapters import build_bert_adapter, build_llama_adapter, edit_config
from tests.support.postgres import start_postgres
from tests.support.s3 import start_s3

from .conftest import expect_status

MAX_RANK = 16
MAX_BYTES = 2 * 1024 * 1024
CHUNK = 64 * 1024  # below the test host's 256 KiB message limit
_ids = itertools.count()


# -- environment ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def adapter_dirs(tmp_path_factory):
    """Real peft adapters, built once per session."""
    root = tmp_path_factory.mktemp("peft-adapters")
    dirs = {
        "v1": build_llama_adapter(root / "v1", seed=1),
        "v2": build_llama_adapter(root / "v2", seed=2),
        "v3": build_llama_adapter(root / "v3", seed=3, targets=("q_proj", "k_proj", "v_proj", "o_proj")),
        "rank32": build_llama_adapter(root / "rank32", rank=32),
        "bert": build_bert_adapter(root / "bert"),
    }
    dirs["wrong_base"] = edit_config(
        dirs["v1"], root / "wrong_base", base_model_name_or_path="meta-llama/Llama-2-7b"
    )
    dirs["bad_target"] = edit_config(dirs["v1"], root / "bad_target", target_modules=["q_proj", "attn_c"])
    dirs["bad_shapes"] = edit_config(dirs["v1"], root / "bad_shapes", r=4)
    pickled = root / "pickled"
    shutil.copytree(dirs["v1"], pickled)
    import torch

    torch.save({"w": torch.zeros(2)}, pickled / "adapter_model.safetensors")  # a pickle in disguise
    dirs["pickled"] = pickled
    return dirs


@pytest.fixture(scope="session")
def postgres():
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3():
    server = start_s3()
    server.create_bucket("lorag-blobs")
    yield server
    server.stop()


class Env:
    def __init__(self, name, runtime, host, operator_key, blob_root):
        self.name = name
        self.runtime = runtime
        self.host = host
        self.operator_key = operator_key
        self.blob_root = blob_root
        self.registry = registry_for(runtime)

    def client(self, key) -> AsyncClient:
        return AsyncClient(self.host.target, key, timeout=20)

    def new_tenant(self, role: Role = Role.ADMIN) -> tuple[str, str]:
        tid = f"t{next(_ids)}-{int(time.time() * 1000) % 1_000_000}"
        self.runtime.tenants.create_tenant(tenant_id=tid, actor="test")
        _, key = self.runtime.tenants.create_key(tenant_id=tid, role=role, actor="test")
        return tid, key

    def key_for(self, tid: str, role: Role) -> str:
        return self.runtime.tenants.create_key(tenant_id=tid, role=role, actor="test")[1]

    def blobs_of(self, tid: str) -> list[str]:
        fs = self.registry.blobs.fs
        fs.invalidate_cache()
        root = self.registry.blobs.tenant_prefix(tid)
        return sorted(fs.find(root)) if fs.exists(root) else []

    def staged(self) -> list[Path]:
        return list(self.registry.staging_root.iterdir())


@pytest.fixture(scope="module", params=["sqlite-local", "postgres-s3"])
async def env(request, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp(request.param)
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAG_ADAPTERS_MAX_RANK", str(MAX_RANK))
    mp.setenv("LORAG_ADAPTERS_MAX_ADAPTER_BYTES", str(MAX_BYTES))
    mp.setenv("LORAG_ADAPTERS_WATCH_POLL_INTERVAL_S", "0.1")
    registry_url = None
    if request.param == "postgres-s3":
        pg, s3 = request.getfixturevalue("postgres"), request.getfixturevalue("s3")
        registry_url = pg.url
        blob_root = f"s3://lorag-blobs/{data_dir.name}"
        mp.setenv("LORAG_ADAPTERS_BLOB_URL", blob_root)
        mp.setenv("LORAG_ADAPTERS_BLOB_OPTIONS", json.dumps(s3.storage_options()))
    else:
        blob_root = str(data_dir / "adapters")
    settings = LoragSettings(data_dir=data_dir, registry_url=registry_url, max_message_bytes=256 * 1024)
    runtime = Runtime.build(settings)
    operator_key = runtime.tenants.bootstrap()
    host = await start_inprocess(runtime, apps=(APPS_BY_NAME["adapters"],))
    try:
        yield Env(request.param, runtime, host, operator_key, blob_root)
    finally:
        await host.stop(0)
        runtime.close()
        mp.undo()


async def upload(c: AsyncClient, directory: Path, name: str, **kw) -> pb.AdapterVersion:
    resp = await c.adapters.UploadAdapterVersion(
        upload_requests(directory, adapter_name=name, chunk_bytes=CHUNK, **kw)
    )
    return resp.version


def ref(value: str) -> common_pb2.AdapterRef:
    return common_pb2.AdapterRef(ref=value)


# -- the lifecycle --------------------------------------------------------------------------------


async def test_upload_alias_resolve_rollback_audit(env, adapter_dirs, tmp_path):
    tid, key = env.new_tenant()
    async with env.client(key) as c:
        v1 = await upload(c, adapter_dirs["v1"], "support-bot", description="first")
        assert (v1.version, v1.state, v1.rank, list(v1.target_modules)) == (
            1,
            pb.ADAPTER_VERSION_STATE_READY,
            8,
            ["q_proj", "v_proj"],
        )
        assert v1.base_model == "smollm2-135m-instruct" and v1.kind == pb.ADAPTER_KIND_GENERATION
        assert [f.name for f in v1.files] == ["adapter_config.json", "adapter_model.safetensors"]
        v2 = await upload(c, adapter_dirs["v2"], "support-bot", parent_version_id=v1.version_id)
        assert v2.version == 2 and v2.parent_version_id == v1.version_id and v2.sha256 != v1.sha256

        # identical content: the existing version comes back, no second blob
        blobs_before = env.blobs_of(tid)
        again = await upload(c, adapter_dirs["v1"], "support-bot")
        assert again.version_id == v1.version_id and env.blobs_of(tid) == blobs_before
        assert len(blobs_before) == 4

        # no production alias yet: a bare name means the newest version
        r = await c.adapters.Resolve(pb.ResolveRequest(ref=ref("support-bot")))
        assert (r.version_id, r.alias) == (v2.version_id, "")

        s1 = await c.adapters.SetAlias(
            pb.SetAliasRequest(adapter_name="support-bot", alias="production", version=1)
        )
        s2 = await c.adapters.SetAlias(
            pb.SetAliasRequest(adapter_name="support-bot", alias="production", version=2)
        )
        assert s2.revision > s1.revision and s2.alias.previous_version_id == v1.version_id
        r = await c.adapters.Resolve(pb.ResolveRequest(ref=ref("support-bot"), request_id="req-1"))
        assert (r.version_id, r.alias, r.version) == (v2.version_id, "production", 2)

        rb = await c.adapters.Rollback(pb.RollbackRequest(adapter_name="support-bot", alias="production"))
        assert rb.alias.version_id == v1.version_id and rb.revision > s2.revision
        for text, expected in [
            ("support-bot", v1),
            ("support-bot@production", v1),
            ("support-bot@v2", v2),
            ("support-bot@v1", v1),
        ]:
            got = await c.adapters.Resolve(pb.ResolveRequest(ref=ref(text)))
            assert got.version_id == expected.version_id, text
        rb2 = await c.adapters.Rollback(pb.RollbackRequest(adapter_name="support-bot", alias="production"))
        assert rb2.alias.version_id == v2.version_id  # twice returns to where it started

        got = await c.adapters.GetAdapterVersion(pb.GetAdapterVersionRequest(ref=ref("support-bot@v1")))
        assert got.version.description == "first" and got.version.sha256 == v1.sha256
        versions = await c.adapters.ListAdapterVersions(
            pb.ListAdapterVersionsRequest(adapter_name="support-bot")
        )
        assert [v.version for v in versions.versions] == [2, 1]
        adapter = (await c.adapters.GetAdapter(pb.GetAdapterRequest(name="support-bot"))).adapter
        assert adapter.latest_version == 2
        assert [(a.name, a.version) for a in adapter.aliases] == [("production", 2)]

        # Download: what a replica gets is byte-identical and hash-checked
        version = await awrite_download(
            c.adapters.Download(pb.DownloadRequest(version_id=v1.version_id)), tmp_path
        )
        assert version.version_id == v1.version_id
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            assert (tmp_path / name).read_bytes() == (adapter_dirs["v1"] / name).read_bytes()

        audit = await c.adapters.ListAuditEvents(
            pb.ListAuditEventsRequest(resource_prefix="adapters/support-bot")
        )
        actions = [e.action for e in reversed(audit.events)]
        assert actions == [
            "adapter.create",
            "adapter_version.upload",
            "adapter_version.upload",
            "alias.set",
            "alias.set",
            "alias.rollback",
            "alias.rollback",
        ]
        assert all(e.trace_id and e.actor for e in audit.events)
        last = audit.events[0]
        assert last.resource == "adapters/support-bot/aliases/production"
        assert last.details["to_version_id"] == v2.version_id
        aliases_only = await c.adapters.ListAuditEvents(pb.ListAuditEventsRequest(action_prefix="alias."))
        assert len(aliases_only.events) == 4


async def test_reranking_adapter_with_saved_classifier_validates(env, adapter_dirs):
    _, key = env.new_tenant()
    async with env.client(key) as c:
        v = await upload(c, adapter_dirs["bert"], "ranker", kind=pb.ADAPTER_KIND_RERANKING)
        assert v.base_model == "ms-marco-minilm-l6" and v.kind == pb.ADAPTER_KIND_RERANKING
        assert list(v.target_modules) == ["dense", "key", "query", "value"]
        # the same files cannot become a generation adapter
        details = await expect_status(
            upload(c, adapter_dirs["bert"], "ranker", kind=pb.ADAPTER_KIND_GENERATION),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert "reranking adapter" in details


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "code", "needle"),
    [
        ("pickled", grpc.StatusCode.INVALID_ARGUMENT, "pickle"),
        ("rank32", grpc.StatusCode.INVALID_ARGUMENT, f"rank r=32 is above the limit of {MAX_RANK}"),
        ("wrong_base", grpc.StatusCode.FAILED_PRECONDITION, "meta-llama/Llama-2-7b"),
        ("bad_target", grpc.StatusCode.INVALID_ARGUMENT, "target module 'attn_c' does not exist"),
        ("bad_shapes", grpc.StatusCode.INVALID_ARGUMENT, "lora_A must be [r=4, 576]"),
    ],
)
async def test_invalid_adapters_are_rejected_and_leave_nothing(env, adapter_dirs, case, code, needle):
    tid, key = env.new_tenant()
    async with env.client(key) as c:
        details = await expect_status(upload(c, adapter_dirs[case], "bad"), code)
        assert needle in details
        await expect_status(
            c.adapters.GetAdapter(pb.GetAdapterRequest(name="bad")), grpc.StatusCode.NOT_FOUND
        )
    assert env.blobs_of(tid) == [] and env.staged() == []
    assert [e.action for e in env.runtime.tenants.audit_events(tid)] == ["tenant.create", "api_key.create"]


def _stream(metadata: pb.AdapterUploadMetadata, chunks: list[tuple[str, bytes]]):
    yield pb.UploadAdapterVersionRequest(metadata=metadata)
    for name, data in chunks:
        yield pb.UploadAdapterVersionRequest(chunk=pb.AdapterFileChunk(file_name=name, data=data))


@pytest.mark.parametrize(
    ("file_name", "needle"),
    [
        ("../adapter_config.json", "not a plain file name"),
        ("/etc/passwd", "not a plain file name"),
        ("adapter_model.bin", "pickle-based checkpoint"),
        ("train.py", "not an allowed file"),
    ],
)
async def test_unsafe_or_unknown_file_names_are_invalid(env, file_name, needle):
    tid, key = env.new_tenant()
    meta = pb.AdapterUploadMetadata(adapter_name="x", kind=pb.ADAPTER_KIND_GENERATION, total_size=10)
    async with env.client(key) as c:
        details = await expect_status(
            c.adapters.UploadAdapterVersion(_stream(meta, [(file_name, b"0123456789")])),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    assert details.startswith("chunk.file_name: ") and needle in details
    assert env.blobs_of(tid) == [] and env.staged() == []


async def test_truncated_oversized_and_interrupted_uploads_leave_nothing(env, adapter_dirs):
    tid, key = env.new_tenant()
    cfg = (adapter_dirs["v1"] / "adapter_config.json").read_bytes()
    weights = (adapter_dirs["v1"] / "adapter_model.safetensors").read_bytes()
    total = len(cfg) + len(weights)
    meta = pb.AdapterUploadMetadata(adapter_name="trunc", kind=pb.ADAPTER_KIND_GENERATION, total_size=total)
    async with env.client(key) as c:
        # the stream ends early
        half = [("adapter_config.json", cfg), ("adapter_model.safetensors", weights[: len(weights) // 2])]
        details = await expect_status(
            c.adapters.UploadAdapterVersion(_stream(meta, half)), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert f"truncated upload: received {len(cfg) + len(weights) // 2} of {total} bytes" in details
        # a declared size over the limit is refused before any byte is stored
        big = pb.AdapterUploadMetadata(
            adapter_name="big", kind=pb.ADAPTER_KIND_GENERATION, total_size=MAX_BYTES + 1
        )
        details = await expect_status(
            c.adapters.UploadAdapterVersion(_stream(big, [])), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert str(MAX_BYTES) in details
        # the first message must be the metadata
        await expect_status(
            c.adapters.UploadAdapterVersion(
                iter([pb.UploadAdapterVersionRequest(chunk=pb.AdapterFileChunk(file_name="a", data=b"x"))])
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )

        # the client goes away mid-stream
        sent = asyncio.Event()

        async def slow():
            yield pb.UploadAdapterVersionRequest(metadata=meta)
            yield pb.UploadAdapterVersionRequest(
                chunk=pb.AdapterFileChunk(file_name="adapter_config.json", data=cfg)
            )
            sent.set()
            await asyncio.sleep(30)

        call = c.adapters.UploadAdapterVersion(slow())
        await sent.wait()
        await asyncio.sleep(0.3)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    for _ in range(50):
        if not env.staged():
            break
        await asyncio.sleep(0.05)
    assert env.staged() == [] and env.blobs_of(tid) == []
    async with env.client(key) as c:
        listed = await c.adapters.ListAdapters(pb.ListAdaptersRequest())
    assert list(listed.adapters) == []


async def test_foreign_adapters_are_not_found_and_roles_are_enforced(env, adapter_dirs):
    tid_a, key_a = env.new_tenant()
    _, key_b = env.new_tenant()
    user_a = env.key_for(tid_a, Role.USER)
    async with env.client(key_a) as a, env.client(key_b) as b, env.client(user_a) as u:
        v = await upload(a, adapter_dirs["v1"], "secret-bot")
        await a.adapters.SetAlias(
            pb.SetAliasRequest(adapter_name="secret-bot", alias="production", version=1)
        )
        calls = [
            lambda c, n: c.adapters.GetAdapter(pb.GetAdapterRequest(name=n)),
            lambda c, n: c.adapters.Resolve(pb.ResolveRequest(ref=ref(f"{n}@production"))),
            lambda c, n: c.adapters.SetAlias(pb.SetAliasRequest(adapter_name=n, alias="canary", version=1)),
            lambda c, n: c.adapters.Rollback(pb.RollbackRequest(adapter_name=n, alias="production")),
            lambda c, n: c.adapters.DeleteAdapter(pb.DeleteAdapterRequest(name=n, force=True)),
            lambda c, n: c.adapters.ListAdapterVersions(pb.ListAdapterVersionsRequest(adapter_name=n)),
        ]
        for call in calls:
            foreign = await expect_status(call(b, "secret-bot"), grpc.StatusCode.NOT_FOUND)
            missing = await expect_status(call(b, "no-such-bot"), grpc.StatusCode.NOT_FOUND)
            assert foreign == missing.replace("no-such-bot", "secret-bot")  # existence never leaks
        await expect_status(
            b.adapters.GetAdapterVersion(pb.GetAdapterVersionRequest(version_id=v.version_id)),
            grpc.StatusCode.NOT_FOUND,
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in b.adapters.Download(pb.DownloadRequest(version_id=v.version_id)):
                pass
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        # a user key reads and downloads, but cannot change anything
        assert (await u.adapters.Resolve(pb.ResolveRequest(ref=ref("secret-bot")))).version_id == v.version_id
        await expect_status(
            u.adapters.SetAlias(pb.SetAliasRequest(adapter_name="secret-bot", alias="canary", version=1)),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        await expect_status(upload(u, adapter_dirs["v2"], "secret-bot"), grpc.StatusCode.PERMISSION_DENIED)
        listed = await b.adapters.ListAdapters(pb.ListAdaptersRequest())
        assert list(listed.adapters) == []


# -- aliases, canary, revisions -------------------------------------------------------------------


async def test_canary_routing_is_deterministic_per_request_id(env, adapter_dirs):
    _, key = env.new_tenant()
    async with env.client(key) as c:
        v1 = await upload(c, adapter_dirs["v1"], "ab")
        v2 = await upload(c, adapter_dirs["v2"], "ab")
        await c.adapters.SetAlias(pb.SetAliasRequest(adapter_name="ab", alias="production", version=1))
        await c.adapters.SetAlias(
            pb.SetAliasRequest(adapter_name="ab", alias="canary", version=2, traffic_weight=30)
        )
        picks = {}
        for i in range(300):
            r = await c.adapters.Resolve(pb.ResolveRequest(ref=ref("ab"), request_id=f"req-{i}"))
            assert (r.version_id, r.alias) in {(v1.version_id, "production"), (v2.version_id, "canary")}
            assert r.routing.canary_weight == 30 and r.request_id == f"req-{i}"
            picks[f"req-{i}"] = r.version_id
        share = sum(v == v2.version_id for v in picks.values()) / len(picks)
        assert 0.22 < share < 0.38
        for rid in list(picks)[:20]:  # the same request id always lands on the same version
            r = await c.adapters.Resolve(pb.ResolveRequest(ref=ref("ab"), request_id=rid))
            assert r.version_id == picks[rid]
        # explicit aliases bypass the split
        assert (
            await c.adapters.Resolve(pb.ResolveRequest(ref=ref("ab@production")))
        ).version_id == v1.version_id
        await c.adapters.SetAlias(
            pb.SetAliasRequest(adapter_name="ab", alias="canary", version=2, traffic_weight=0)
        )
        r = await c.adapters.Resolve(pb.ResolveRequest(ref=ref("ab"), request_id="req-0"))
        assert r.version_id == v1.version_id
        bad = await expect_status(
            c.adapters.SetAlias(
                pb.SetAliasRequest(adapter_name="ab", alias="canary", version=2, traffic_weight=101)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert bad.startswith("traffic_weight:")
        await expect_status(
            c.adapters.SetAlias(pb.SetAliasRequest(adapter_name="ab", alias="v2", version=2)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        await expect_status(
            c.adapters.SetAlias(pb.SetAliasRequest(adapter_name="ab", alias="production", version=9)),
            grpc.StatusCode.NOT_FOUND,
        )


async def test_concurrent_alias_changes_serialise_with_strictly_increasing_revisions(env, adapter_dirs):
    _, key = env.new_tenant()
    async with env.client(key) as c, env.client(key) as watcher:
        versions = [await upload(c, adapter_dirs[n], "busy") for n in ("v1", "v2", "v3")]
        watch = watcher.adapters.WatchRevisions(pb.WatchRevisionsRequest(), timeout=60)
        first = await watch.read()
        assert not first.HasField("event") and first.revision > 0

        # every call changes something (its own weight), so every call is a real change
        results = await asyncio.gather(
            *[
                c.adapters.SetAlias(
                    pb.SetAliasRequest(
                        adapter_name="busy", alias="canary", version=1 + i % 3, traffic_weight=i + 1
                    )
                )
                for i in range(18)
            ]
        )
        revisions = [r.revision for r in results]
        # the tenant's own revisions: one per change, no gaps, whatever other tenants do meanwhile
        assert sorted(revisions) == list(range(first.revision + 1, first.revision + 19))

        events = []
        while len(events) < len(revisions):
            msg = await asyncio.wait_for(watch.read(), 10)
            events.append(msg.event)
        watch.cancel()
        assert [e.revision for e in events] == sorted(revisions)  # in commit order, none missed
        assert all(e.type == pb.ADAPTER_EVENT_TYPE_ALIAS_SET and e.adapter_name == "busy" for e in events)
        by_revision = {r.revision: r.alias for r in results}
        assert all(by_revision[e.revision].traffic_weight == e.traffic_weight for e in events)
        # the alias ends as the last change left it, with a previous version consistent with history
        current, previous = "", ""
        for e in events:
            if current and e.version_id != current:
                previous = current
            current = e.version_id
        final = (await c.adapters.GetAdapter(pb.GetAdapterRequest(name="busy"))).adapter.aliases[0]
        assert (final.version_id, final.previous_version_id, final.traffic_weight) == (
            current,
            previous,
            events[-1].traffic_weight,
        )
        ids = {v.version_id for v in versions}
        assert {e.version_id for e in events} <= ids

        audit = await c.adapters.ListAuditEvents(pb.ListAuditEventsRequest(action_prefix="alias.set"))
        assert len(audit.events) == len(revisions)


async def test_watch_resumes_from_a_revision_and_rejects_future_ones(env, adapter_dirs):
    _, key = env.new_tenant()
    async with env.client(key) as c:
        await upload(c, adapter_dirs["v1"], "w")
        s = await c.adapters.SetAlias(pb.SetAliasRequest(adapter_name="w", alias="production", version=1))
        d = await c.adapters.DeleteAlias(pb.DeleteAliasRequest(adapter_name="w", alias="production"))
        call = c.adapters.WatchRevisions(pb.WatchRevisionsRequest(from_revision=s.revision - 1), timeout=30)
        head = await call.read()
        assert head.revision >= d.revision
        got = [await call.read(), await call.read()]
        call.cancel()
        assert [(m.event.type, m.event.alias) for m in got] == [
            (pb.ADAPTER_EVENT_TYPE_ALIAS_SET, "production"),
            (pb.ADAPTER_EVENT_TYPE_ALIAS_DELETED, "production"),
        ]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in c.adapters.WatchRevisions(pb.WatchRevisionsRequest(from_revision=10**12)):
                pass
        assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE


async def test_a_tenant_learns_nothing_of_another_tenants_registry_activity(env, adapter_dirs):
    """Revisions are per tenant: A's changes move neither B's revision nor B's watch stream."""
    _, key_a = env.new_tenant()
    _, key_b = env.new_tenant()
    async with env.client(key_a) as a, env.client(key_b) as b:
        await upload(b, adapter_dirs["v1"], "mine")
        set_b = await b.adapters.SetAlias(
            pb.SetAliasRequest(adapter_name="mine", alias="production", version=1)
        )
        watch = b.adapters.WatchRevisions(pb.WatchRevisionsRequest(from_revision=0), timeout=30)
        head = await watch.read()
        assert head.revision == set_b.revision == 2  # B's upload and alias, nothing of A's
        await upload(a, adapter_dirs["v1"], "theirs")
        for weight in (10, 20, 30):
            await a.adapters.SetAlias(
                pb.SetAliasRequest(adapter_name="theirs", alias="canary", version=1, traffic_weight=weight)
            )
        resolved = await b.adapters.Resolve(
            pb.ResolveRequest(ref=common_pb2.AdapterRef(ref="mine@production"))
        )
        assert resolved.revision == head.revision
        moved = await b.adapters.SetAlias(pb.SetAliasRequest(adapter_name="mine", alias="canary", version=1))
        assert moved.revision == head.revision + 1
        event = await asyncio.wait_for(watch.read(), 10)  # B's own change is the first thing it sees
        watch.cancel()
        assert (event.revision, event.event.adapter_name, event.event.alias) == (
            moved.revision,
            "mine",
            "canary",
        )


async def test_delete_adapter_needs_force_while_aliased_and_removes_blobs(env, adapter_dirs):
    tid, key = env.new_tenant()
    async with env.client(key) as c:
        await upload(c, adapter_dirs["v1"], "gone")
        await c.adapters.SetAlias(pb.SetAliasRequest(adapter_name="gone", alias="production", version=1))
        await expect_status(
            c.adapters.DeleteAdapter(pb.DeleteAdapterRequest(name="gone")),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert env.blobs_of(tid)
        resp = await c.adapters.DeleteAdapter(pb.DeleteAdapterRequest(name="gone", force=True))
        assert resp.deleted_version_count == 1 and resp.revision > 0
        assert env.blobs_of(tid) == []
        await expect_status(c.adapters.Resolve(pb.ResolveRequest(ref=ref("gone"))), grpc.StatusCode.NOT_FOUND)


async def test_register_from_uri_checks_the_location(env, adapter_dirs):
    tid, key = env.new_tenant()
    other, _ = env.new_tenant()
    blobs = env.registry.blobs
    incoming = blobs.path(tid, "_incoming", "job-1")
    blobs.put_files({p.name: p for p in adapter_dirs["v3"].iterdir()}, incoming)
    async with env.client(key) as c:
        resp = await c.adapters.RegisterFromUri(
            pb.RegisterFromUriRequest(
                adapter_name="trained",
                kind=pb.ADAPTER_KIND_GENERATION,
                uri=blobs.uri(incoming),
                metrics={"task_loss": 0.5},
            )
        )
        assert resp.version.version == 1 and dict(resp.version.metrics) == {"task_loss": 0.5}
        assert len(resp.version.target_modules) == 4
        for uri in (blobs.uri(blobs.path(other, "x")), "/etc", blobs.uri(incoming) + "/../../.."):
            details = await expect_status(
                c.adapters.RegisterFromUri(
                    pb.RegisterFromUriRequest(
                        adapter_name="trained", kind=pb.ADAPTER_KIND_GENERATION, uri=uri
                    )
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
            )
            assert details.startswith("uri: ")


# -- replicas: AdapterCache over gRPC, hot swap ---------------------------------------------------


async def test_adapter_cache_hot_swaps_on_alias_change(env, adapter_dirs, tmp_path):
    tid, key = env.new_tenant()
    loads: list[str] = []

    def loader(version_id: str, path: Path):
        loads.append(version_id)
        return json.loads((path / "adapter_config.json").read_text())["r"]

    async with env.client(key) as c, env.client(key) as cache_client:
        v1 = await upload(c, adapter_dirs["v1"], "hot")
        v2 = await upload(c, adapter_dirs["v3"], "hot")
        await c.adapters.SetAlias(pb.SetAliasRequest(adapter_name="hot", alias="production", version=1))
        cache = AdapterCache(
            GrpcRegistryClient(cache_client, tid),
            loader=loader,
            memory_budget_bytes=10 * 1024 * 1024,
            download_dir=tmp_path / "cache",
        )
        await cache.start()
        try:
            for _ in range(50):
                if cache.watching:
                    break
                await asyncio.sleep(0.05)
            assert cache.watching

            async def serve(rid):
                async with cache.use(tid, "hot", request_id=rid) as (resolution, adapter):
                    return resolution.version_id, adapter.value

            first = await asyncio.gather(*[serve(f"r{i}") for i in range(8)])
            assert set(first) == {(v1.version_id, 8)} and loads == [v1.version_id]  # one load, shared

            await c.adapters.SetAlias(pb.SetAliasRequest(adapter_name="hot", alias="production", version=2))
            deadline = time.monotonic() + 3
            while (await serve("r0"))[0] != v2.version_id:
                assert time.monotonic() < deadline, "the alias change did not reach the cache"
                await asyncio.sleep(0.05)
            assert loads == [v1.version_id, v2.version_id]
            assert {e.version_id for e in cache.loaded()} == {v1.version_id, v2.version_id}
        finally:
            await cache.close()


# -- the CLI --------------------------------------------------------------------------------------


async def test_cli_upload_list_promote_rollback(env, adapter_dirs, capsys):
    from lorag import cli

    _, key = env.new_tenant()
    base = ["--target", env.host.target, "--api-key", key]

    async def run(*args) -> str:
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, [*base, "adapters", *args])
        out = capsys.readouterr()
        assert code == 0, out.err
        return out.out

    out = await run("upload", str(adapter_dirs["v1"]), "--name", "cli-bot", "--chunk-kib", "64")
    assert "version 1" in out
    await run("upload", str(adapter_dirs["v2"]), "--name", "cli-bot", "--chunk-kib", "64", "--promote")
    listed = await run("list")
    assert "cli-bot" in listed and "production=v2" in listed
    await run("promote", "cli-bot", "1")
    out = await run("rollback", "cli-bot")
    assert "production -> v2" in out
    resolved = await run("resolve", "cli-bot")
    assert "v2" in resolved
    code = await asyncio.to_thread(cli.main, [*base, "adapters", "promote", "no-such", "1"])
    assert code == 1 and "NOT_FOUND" in capsys.readouterr().err

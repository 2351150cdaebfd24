"""Registry logic on SQLite and a local blob store: versions, aliases, revisions, quotas, integrity."""

import threading

import pytest
import sqlalchemy as sa

from lorag.adapters.core import AdapterRegistry, UploadMetadata
from lorag.adapters.models import AdapterEventRow
from lorag.adapters.routing import Routing, bucket, parse_ref
from lorag.adapters.settings import AdapterSettings
from lorag.common.db import Database
from lorag.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
)
from lorag.common.tenancy import Principal, Quota, Role, TenantStore
from tests.support.adapters import synthetic_llama_adapter
from tests.support.migrations import registry_at


@pytest.fixture
def registry(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    TenantStore(db).create_tenant(tenant_id="acme", actor="test")
    TenantStore(db).create_tenant(tenant_id="other", actor="test")
    reg = AdapterRegistry.build(db, data_dir=tmp_path, settings=AdapterSettings(max_rank=16))
    yield reg
    db.dispose()


ADMIN = Principal("acme", Role.ADMIN, "k-admin")
USER = Principal("acme", Role.USER, "k-user")
OTHER = Principal("other", Role.ADMIN, "k-other")


def upload(reg, principal, directory, name="bot"):
    files = {p.name: p for p in directory.iterdir()}
    total = sum(p.stat().st_size for p in files.values())
    session = reg.begin_upload(
        principal, UploadMetadata(adapter_name=name, kind="generation", total_size=total), trace_id="t" * 32
    )
    for fname, path in files.items():
        data = path.read_bytes()
        for i in range(0, len(data), 10_000):
            session.write(fname, data[i : i + 10_000])
    return session.finish()


def test_versions_are_numbered_deduplicated_and_immutable(registry, tmp_path):
    v1, created = upload(registry, ADMIN, synthetic_llama_adapter(tmp_path / "a", seed=1))
    assert created and v1.row.version == 1
    v2, _ = upload(registry, ADMIN, synthetic_llama_adapter(tmp_path / "b", seed=2))
    same, created = upload(registry, ADMIN, synthetic_llama_adapter(tmp_path / "c", seed=1))
    assert (v2.row.version, same.version_id, created) == (2, v1.version_id, False)
    with registry.db.engine.begin() as conn, pytest.raises(sa.exc.DatabaseError, match="immutable"):
        conn.execute(sa.text("UPDATE adapter_versions SET rank = 1"))
    with registry.db.engine.begin() as conn, pytest.raises(sa.exc.DatabaseError, match="immutable"):
        conn.execute(sa.text("DELETE FROM audit_events"))


def test_upload_rules_roles_and_staging_cleanup(registry, tmp_path):
    d = synthetic_llama_adapter(tmp_path / "a")
    with pytest.raises(PermissionDenied):
        upload(registry, USER, d)
    session = registry.begin_upload(
        ADMIN, UploadMetadata(adapter_name="bot", kind="generation", total_size=10)
    )
    session.write("adapter_config.json", b"{}")
    with pytest.raises(InvalidArgument, match="consecutive"):
        session.write("adapter_model.safetensors", b"x") or session.write("adapter_config.json", b"x")
    session.abort()
    assert list(registry.staging_root.iterdir()) == []
    with pytest.raises(InvalidArgument, match="metadata.kind"):
        registry.begin_upload(ADMIN, UploadMetadata(adapter_name="bot", kind="", total_size=10))
    with pytest.raises(InvalidArgument, match="adapter_name"):
        registry.begin_upload(
            ADMIN, UploadMetadata(adapter_name="Bad Name", kind="generation", total_size=10)
        )
    with pytest.raises(FailedPrecondition, match="unknown base model"):
        registry.begin_upload(
            ADMIN, UploadMetadata(adapter_name="bot", kind="generation", base_model="gpt-9", total_size=10)
        )
    with pytest.raises(FailedPrecondition, match="is a reranking model"):
        registry.create_adapter(ADMIN, name="x", kind="generation", base_model="ms-marco-minilm-l6")
    registry.create_adapter(ADMIN, name="x", kind="generation")
    with pytest.raises(AlreadyExists):
        registry.create_adapter(ADMIN, name="x", kind="generation")


def test_quotas_are_resource_exhausted(registry, tmp_path):
    registry_tenants = TenantStore(registry.db)
    registry_tenants.set_quota(
        tenant_id="acme", quota=Quota(max_adapters=1, max_storage_bytes=1000), actor_tenant="acme", actor="op"
    )
    registry.create_adapter(ADMIN, name="one", kind="generation")
    with pytest.raises(ResourceExhausted, match="adapter quota"):
        registry.create_adapter(ADMIN, name="two", kind="generation")
    with pytest.raises(ResourceExhausted, match="storage quota"):
        upload(registry, ADMIN, synthetic_llama_adapter(tmp_path / "a"), name="one")
    assert registry.blobs.fs.find(registry.blobs.tenant_prefix("acme")) == []


def test_aliases_rollback_and_revisions(registry, tmp_path):
    v1, _ = upload(registry, ADMIN, synthetic_llama_adapter(tmp_path / "a", seed=1))
    v2, _ = upload(registry, ADMIN, synthetic_llama_adapter(tmp_path / "b", seed=2))
    start = registry.current_revision("acme")
    _, r1 = registry.set_alias(ADMIN, adapter_name="bot", alias="production", version=1)
    same, r_same = registry.set_alias(ADMIN, adapter_name="bot", alias="production", version=1)
    assert r_same == r1 == start + 1  # no change, no new revision
    alias, r2 = registry.set_alias(ADMIN, adapter_name="bot", alias="production", version=2)
    assert (alias.version_id, alias.previous_version_id, r2) == (v2.version_id, v1.version_id, r1 + 1)
    back, r3 = registry.rollback(ADMIN, adapter_name="bot")
    assert (back.version_id, back.previous_version_id) == (v1.version_id, v2.version_id)
    assert [e.tenant_revision for e in registry.events_after("acme", start)][-3:] == [r1, r2, r3]
    assert registry.events_after("other", 0) == []
    registry.set_alias(ADMIN, adapter_name="bot", alias="staging", version=2)
    with pytest.raises(FailedPrecondition, match="no previous version"):
        registry.rollback(ADMIN, adapter_name="bot", alias="staging")
    with pytest.raises(NotFound):
        registry.rollback(OTHER, adapter_name="bot")
    with pytest.raises(OutOfRange):
        registry.check_watch_start(registry.current_revision("acme") + 1, "acme")


def test_concurrent_alias_writers_get_distinct_ordered_revisions(registry, tmp_path):
    for seed in (1, 2, 3):
        upload(registry, ADMIN, synthetic_llama_adapter(tmp_path / f"v{seed}", seed=seed))
    start = registry.current_revision("acme")
    results, errors = [], []

    def worker(i):
        try:
            results.append(
                registry.set_alias(
                    ADMIN, adapter_name="bot", alias="canary", version=1 + i % 3, traffic_weight=i + 1
                )
            )
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    revisions = sorted(r for _, r in results)
    assert revisions == list(range(start + 1, start + 17))
    events = registry.events_after("acme", start)
    assert [e.tenant_revision for e in events] == revisions
    final = registry.resolve("acme", "bot@canary")
    assert final.version_id == events[-1].version_id


def test_each_tenant_sees_only_its_own_revisions(registry, tmp_path):
    """Another tenant's changes move the registry-wide revision, never this tenant's."""
    upload(registry, ADMIN, synthetic_llama_adapter(tmp_path / "a", seed=1))
    upload(registry, OTHER, synthetic_llama_adapter(tmp_path / "o", seed=3), name="theirs")
    mine = registry.current_revision("acme")
    theirs = registry.current_revision("other")
    overall = registry.current_revision()
    assert (mine, theirs, overall) == (1, 1, 2)  # one version each
    for i in range(5):  # the other tenant is busy
        registry.set_alias(OTHER, adapter_name="theirs", alias="canary", version=1, traffic_weight=i + 1)
    assert registry.current_revision("acme") == mine
    _, r = registry.set_alias(ADMIN, adapter_name="bot", alias="production", version=1)
    assert r == mine + 1  # no gap for the other tenant's five changes
    assert registry.resolve("acme", "bot@production").revision == r
    assert registry.resolve("other", "theirs@canary").revision == theirs + 5
    assert registry.current_revision() == overall + 6
    assert [e.tenant_revision for e in registry.events_after("acme", 0)] == [1, 2]
    assert [e.tenant_revision for e in registry.events_after("other", 0)] == [1, 2, 3, 4, 5, 6]
    every = registry.events_after(None, overall)  # what replicas follow: all tenants, global order
    assert [e.revision for e in every] == list(range(overall + 1, overall + 7))
    assert [(e.tenant_id, e.tenant_revision) for e in every][-1] == ("acme", 2)
    assert registry.check_watch_start(1, "acme") == 1
    with pytest.raises(OutOfRange, match="outside 0..2"):
        registry.check_watch_start(3, "acme")  # the registry-wide revision means nothing here
    audit = registry.list_audit_events(ADMIN).items
    assert [e.details["revision"] for e in audit if e.action == "alias.set"] == [r]


def test_a_watch_from_a_pruned_tenant_revision_is_out_of_range(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        TenantStore(db).create_tenant(tenant_id="acme", actor="test")
        reg = AdapterRegistry.build(db, data_dir=tmp_path, settings=AdapterSettings())
        upload(reg, ADMIN, synthetic_llama_adapter(tmp_path / "a", seed=1))
        for i in range(8):
            reg.set_alias(ADMIN, adapter_name="bot", alias="canary", version=1, traffic_weight=i + 1)
        with db.session.begin() as s:  # what the periodic pruning does
            s.execute(sa.delete(AdapterEventRow).where(AdapterEventRow.revision <= 6))
        assert reg.check_watch_start(6, "acme") == 6  # events 7..9 are kept
        with pytest.raises(OutOfRange, match="older than the retained history"):
            reg.check_watch_start(5, "acme")
    finally:
        db.dispose()


def test_migrating_numbers_existing_events_per_tenant(tmp_path):
    """A registry at 0007 (one registry-wide revision) gets per-tenant revisions 1, 2, … in order."""
    insert = (
        "INSERT INTO adapter_events (revision, tenant_id, type, adapter_name, kind, alias, version_id, "
        "version, traffic_weight, created_at) VALUES "
        "(:r, :t, 'ALIAS_SET', 'bot', 'generation', 'production', 'av_x', 1, 0, CURRENT_TIMESTAMP)"
    )
    events = [(3, "acme"), (4, "other"), (5, "acme"), (6, "acme"), (7, "other")]
    url = registry_at(
        tmp_path / "registry.db",
        "0007",
        *[(insert, {"r": r, "t": t}) for r, t in events],
        ("UPDATE registry_revision SET revision = 7", {}),
    )
    db = Database(url)  # migrates to head
    try:
        reg = AdapterRegistry.build(db, data_dir=tmp_path, settings=AdapterSettings())
        assert [(e.revision, e.tenant_revision) for e in reg.events_after("acme", 0)] == [
            (3, 1),
            (5, 2),
            (6, 3),
        ]
        assert [(e.revision, e.tenant_revision) for e in reg.events_after("other", 0)] == [(4, 1), (7, 2)]
        assert (reg.current_revision("acme"), reg.current_revision("other"), reg.current_revision()) == (
            3,
            2,
            7,
        )
        assert reg.current_revision("new") == 0
    finally:
        db.dispose()


def test_bare_names_route_to_canary_by_request_id(registry, tmp_path):
    upload(registry, ADMIN, synthetic_llama_adapter(tmp_path / "a", seed=1))
    v2, _ = upload(registry, ADMIN, synthetic_llama_adapter(tmp_path / "b", seed=2))
    registry.set_alias(ADMIN, adapter_name="bot", alias="production", version=1)
    registry.set_alias(ADMIN, adapter_name="bot", alias="canary", version=2, traffic_weight=25)
    got = {rid: registry.resolve("acme", "bot", request_id=rid) for rid in (f"r{i}" for i in range(400))}
    canary = [rid for rid, r in got.items() if r.alias == "canary"]
    assert 0.18 < len(canary) / 400 < 0.32
    assert all(r.version_id == v2.version_id for rid, r in got.items() if rid in canary)
    assert all(bucket("bot", rid) < 25 for rid in canary)
    # a replica holding the routing table reaches the same decision without the registry
    one = got["r0"]
    assert all(one.rerouted(rid).version_id == r.version_id for rid, r in got.items())
    with pytest.raises(NotFound):
        registry.resolve("other", "bot")


def test_reference_syntax():
    assert parse_ref("bot") == parse_ref("bot")
    assert parse_ref("bot@v12").version == 12 and parse_ref("bot@canary").alias == "canary"
    for bad in ("", "Bot", "bot@", "bot@v0", "bot@V1", "../bot", "bot@prod@x"):
        with pytest.raises(InvalidArgument):
            parse_ref(bad)
    r = Routing("p", 1, "production", "c", 2, 0)
    assert {r.choose("bot", f"x{i}")[0] for i in range(100)} == {"p"}
    r = Routing("p", 1, "production", "c", 2, 100)
    assert {r.choose("bot", f"x{i}")[0] for i in range(100)} == {"c"}


def test_delete_removes_rows_and_blobs(registry, tmp_path):
    upload(registry, ADMIN, synthetic_llama_adapter(tmp_path / "a"))
    registry.set_alias(ADMIN, adapter_name="bot", alias="production", version=1)
    with pytest.raises(FailedPrecondition, match="alias"):
        registry.delete_adapter(ADMIN, name="bot")
    count, revision = registry.delete_adapter(ADMIN, name="bot", force=True)
    assert count == 1 and registry.events_after("acme", revision - 1)[0].type == "ADAPTER_DELETED"
    assert registry.blobs.fs.find(registry.blobs.tenant_prefix("acme")) == []
    with pytest.raises(NotFound):
        registry.get_adapter(ADMIN, name="bot")
    actions = [e.action for e in registry.list_audit_events(ADMIN).items]
    assert actions[:3] == ["adapter.delete", "alias.set", "adapter_version.upload"]


def test_adapters_and_datasets_share_the_storage_quota(registry):
    from lorag.adapters.core import check_storage_quota
    from lorag.common.db import utcnow
    from lorag.training.models import DatasetRow

    TenantStore(registry.db).set_quota(
        tenant_id="acme", quota=Quota(max_storage_bytes=1000), actor_tenant="acme", actor="op"
    )
    with registry.db.session.begin() as s:
        s.add(
            DatasetRow(
                dataset_id="ds_quota",
                tenant_id="acme",
                name="faq",
                version=1,
                kind="generation",
                format="jsonl",
                sha256="0" * 64,
                size_bytes=900,
                record_count=1,
                state="READY",
                report={},
                description="",
                source="upload",
                blob_path="x",
                created_by="k",
                created_at=utcnow(),
            )  # fmt: skip
        )
    with registry.db.session() as s:
        check_storage_quota(s, "acme", 100)
        with pytest.raises(ResourceExhausted, match="900 bytes used"):
            check_storage_quota(s, "acme", 101)


def _upload_bytes(reg, files: dict[str, bytes], name="bot"):
    session = reg.begin_upload(
        ADMIN,
        UploadMetadata(adapter_name=name, kind="generation", total_size=sum(map(len, files.values()))),
    )
    try:
        for fname, data in files.items():
            session.write(fname, data)
        return session.finish()
    finally:
        session.abort()


def test_an_archive_upload_stores_the_extracted_files(registry, tmp_path):
    import io
    import tarfile

    d = synthetic_llama_adapter(tmp_path / "a", seed=3)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for p in sorted(d.iterdir()):
            tf.add(p, arcname=f"bot/{p.name}")
    version, created = _upload_bytes(registry, {"bot.tar.gz": buf.getvalue()})
    assert created and sorted(f["name"] for f in version.files) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    same, created = upload(registry, ADMIN, d)  # the same files sent plainly: the same version
    assert (same.version_id, created) == (version.version_id, False)
    assert list(registry.staging_root.iterdir()) == []


def test_refused_archives_and_starts_leave_nothing_staged(registry, tmp_path):
    d = synthetic_llama_adapter(tmp_path / "a")
    files = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(InvalidArgument, match="only file of an upload"):
        _upload_bytes(registry, {**files, "bot.zip": b"PK\x05\x06" + b"\0" * 18})
    with pytest.raises(InvalidArgument, match="bot.tar: is not a readable tar archive"):
        _upload_bytes(registry, {"bot.tar": b"not a tar" * 100})
    # a start that is never continued (e.g. the client gave up) has nothing to clean up
    registry.begin_upload(ADMIN, UploadMetadata(adapter_name="bot", kind="generation", total_size=10))
    assert list(registry.staging_root.iterdir()) == []
    with registry.db.session() as s:
        assert s.scalar(sa.text("SELECT count(*) FROM adapter_versions")) == 0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_metrics_are_refused(registry, value):
    with pytest.raises(InvalidArgument, match="metrics: metric 'loss' is .*finite"):
        registry.register_from_uri(
            ADMIN, adapter_name="bot", kind="generation", uri="x", metrics={"loss": value}
        )

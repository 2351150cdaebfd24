"""API keys hashed with HMAC-SHA256 under the server secret: old rows keep verifying and are
upgraded, rotation keeps keys valid while the previous secret is configured, the embedded
default keeps one secret per data dir."""

import hashlib
import hmac
import os
import stat
import threading

import pytest
from sqlalchemy import text

from lorag.common.auth import SECRET_FILE, Authenticator, embedded_secret, load_key_hasher
from lorag.common.db import Database
from lorag.common.errors import FailedPrecondition, Unauthenticated
from lorag.common.settings import LoragSettings
from lorag.common.tenancy import (
    DEFAULT_TENANT,
    SCHEME_HMAC,
    SCHEME_SHA256,
    KeyHasher,
    Role,
    TenantStore,
    legacy_hash,
)
from tests.support.migrations import registry_at

SECRET_A = b"a" * 40
SECRET_B = b"b" * 40


def _stored(db: Database, key_id: str) -> tuple[str, str]:
    with db.engine.connect() as conn:
        row = conn.execute(
            text("SELECT key_hash, hash_scheme FROM api_keys WHERE key_id = :k"), {"k": key_id}
        ).one()
    return row[0], row[1]


def _make_legacy(db: Database, key_id: str, api_key: str) -> None:
    """Turn a row into what a registry written before the server secret holds."""
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE api_keys SET key_hash = :h, hash_scheme = 'sha256' WHERE key_id = :k"),
            {"h": legacy_hash(api_key), "k": key_id},
        )


@pytest.fixture
def db(settings):
    db = Database(settings.resolved_registry_url)
    yield db
    db.dispose()


def test_new_keys_are_stored_as_hmac_under_the_server_secret(db):
    store = TenantStore(db, KeyHasher(SECRET_A))
    store.bootstrap()
    row, key = store.create_key(tenant_id=DEFAULT_TENANT, role=Role.USER, actor="t")
    digest, scheme = _stored(db, row.key_id)
    assert scheme == SCHEME_HMAC
    assert digest == hmac.new(SECRET_A, key.encode(), hashlib.sha256).hexdigest()
    assert digest != hashlib.sha256(key.encode()).hexdigest()
    # Another secret does not verify it: the digest is useless without the server secret.
    with pytest.raises(Unauthenticated):
        TenantStore(db, KeyHasher(SECRET_B)).authenticate(key)


def test_a_sha256_row_still_verifies_and_is_upgraded_on_first_use(db):
    store = TenantStore(db, KeyHasher(SECRET_A))
    store.bootstrap()
    row, key = store.create_key(tenant_id=DEFAULT_TENANT, role=Role.ADMIN, actor="t")
    _make_legacy(db, row.key_id, key)
    assert _stored(db, row.key_id) == (legacy_hash(key), SCHEME_SHA256)

    principal = store.authenticate(key)
    assert (principal.key_id, principal.role) == (row.key_id, Role.ADMIN)
    assert _stored(db, row.key_id) == (KeyHasher(SECRET_A).digest(key), SCHEME_HMAC)
    assert store.authenticate(key).key_id == row.key_id  # and keeps working after the upgrade


def test_a_wrong_key_does_not_match_an_old_row_and_changes_nothing(db):
    store = TenantStore(db, KeyHasher(SECRET_A))
    store.bootstrap()
    row, key = store.create_key(tenant_id=DEFAULT_TENANT, role=Role.USER, actor="t")
    _make_legacy(db, row.key_id, key)
    with pytest.raises(Unauthenticated):
        store.authenticate(key + "x")
    assert _stored(db, row.key_id) == (legacy_hash(key), SCHEME_SHA256)


def test_a_digest_matches_only_under_the_scheme_its_row_names(db):
    store = TenantStore(db, KeyHasher(SECRET_A))
    store.bootstrap()
    row, key = store.create_key(tenant_id=DEFAULT_TENANT, role=Role.USER, actor="t")
    with db.engine.begin() as conn:  # a plain SHA-256 digest in a row that claims HMAC
        conn.execute(
            text("UPDATE api_keys SET key_hash = :h WHERE key_id = :k"),
            {"h": legacy_hash(key), "k": row.key_id},
        )
    with pytest.raises(Unauthenticated):
        store.authenticate(key)


def test_a_revoked_old_row_is_rejected_and_not_upgraded(db):
    store = TenantStore(db, KeyHasher(SECRET_A))
    store.bootstrap()
    row, key = store.create_key(tenant_id=DEFAULT_TENANT, role=Role.USER, actor="t")
    _make_legacy(db, row.key_id, key)
    store.revoke_key(tenant_id=DEFAULT_TENANT, key_id=row.key_id, actor="t")
    with pytest.raises(Unauthenticated):
        store.authenticate(key)
    assert _stored(db, row.key_id)[1] == SCHEME_SHA256


def test_rotation_keeps_keys_valid_through_the_previous_secret_and_rehashes_them(db):
    old = TenantStore(db, KeyHasher(SECRET_A))
    old.bootstrap()
    row, key = old.create_key(tenant_id=DEFAULT_TENANT, role=Role.USER, actor="t")

    without_previous = TenantStore(db, KeyHasher(SECRET_B))
    with pytest.raises(Unauthenticated):
        without_previous.authenticate(key)

    rotated = TenantStore(db, KeyHasher(SECRET_B, previous=(SECRET_A,)))
    assert rotated.authenticate(key).key_id == row.key_id
    assert _stored(db, row.key_id) == (KeyHasher(SECRET_B).digest(key), SCHEME_HMAC)
    # Once rehashed, the new secret alone verifies it; the old one no longer does.
    assert without_previous.authenticate(key).key_id == row.key_id
    with pytest.raises(Unauthenticated):
        old.authenticate(key)


def test_the_authenticator_cache_is_keyed_by_the_hmac_digest(db):
    store = TenantStore(db, KeyHasher(SECRET_A))
    store.bootstrap()
    _, key = store.create_key(tenant_id=DEFAULT_TENANT, role=Role.USER, actor="t")
    auth = Authenticator(store, ttl_s=0.5)
    import asyncio

    asyncio.run(auth.authenticate([("authorization", f"Bearer {key}")]))
    assert list(auth._cache) == [KeyHasher(SECRET_A).digest(key)]
    assert key not in repr(auth._cache)


def test_short_secrets_are_refused_without_echoing_them(tmp_path):
    short = "too-short-secret-value"
    with pytest.raises(FailedPrecondition) as info:
        load_key_hasher(LoragSettings(data_dir=tmp_path, auth_secret=short))
    assert "LORAG_AUTH_SECRET" in str(info.value) and short not in str(info.value)


def test_the_configured_secret_wins_over_the_data_dir_file(tmp_path):
    configured = "c" * 40
    hasher = load_key_hasher(LoragSettings(data_dir=tmp_path, auth_secret=configured))
    assert hasher.digest("k") == hmac.new(configured.encode(), b"k", hashlib.sha256).hexdigest()
    assert not (tmp_path / SECRET_FILE).exists()


def test_the_embedded_secret_is_created_once_with_mode_0600_and_reused(tmp_path):
    data_dir = tmp_path / "data"
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(embedded_secret(data_dir))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    path = data_dir / SECRET_FILE
    assert len(set(results)) == 1 and len(results[0]) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in data_dir.iterdir()] == [SECRET_FILE]  # no temporary files left
    # A restart reads the same secret, so keys created before it keep verifying.
    settings = LoragSettings(data_dir=data_dir)
    assert load_key_hasher(settings).digest("k") == load_key_hasher(settings).digest("k")
    assert embedded_secret(data_dir) == results[0]


def test_a_secret_file_readable_by_others_is_tightened(tmp_path):
    path = tmp_path / SECRET_FILE
    path.write_text("s" * 48 + "\n")
    os.chmod(path, 0o644)
    assert embedded_secret(tmp_path) == b"s" * 48
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_keys_of_a_registry_from_before_the_secret_verify_after_migrating(tmp_path):
    """A registry at revision 0006 (plain SHA-256 keys) upgrades to the hash-scheme column."""
    key = "lrg_0123456789abcdef_" + "x" * 43
    url = registry_at(
        tmp_path / "registry.db",
        "0006",
        (
            "INSERT INTO tenants (tenant_id, display_name, max_documents, max_adapters, "
            "max_requests_per_minute, max_storage_bytes, created_at) VALUES "
            "('acme', '', 0, 0, 0, 0, CURRENT_TIMESTAMP)",
            {},
        ),
        (
            "INSERT INTO api_keys (key_id, tenant_id, key_hash, role, description, created_by, "
            "created_at) VALUES ('0123456789abcdef', 'acme', :h, 'ADMIN', '', 't', CURRENT_TIMESTAMP)",
            {"h": legacy_hash(key)},
        ),
    )
    db = Database(url)  # migrates to head
    try:
        assert _stored(db, "0123456789abcdef") == (legacy_hash(key), SCHEME_SHA256)
        store = TenantStore(db, KeyHasher(SECRET_A))
        principal = store.authenticate(key)
        assert (principal.tenant_id, principal.role) == ("acme", Role.ADMIN)
        assert _stored(db, "0123456789abcdef") == (KeyHasher(SECRET_A).digest(key), SCHEME_HMAC)
    finally:
        db.dispose()

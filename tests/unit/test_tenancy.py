import pytest
from sqlalchemy import text

from lorag.common.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from lorag.common.tenancy import DEFAULT_TENANT, Quota, Role


def test_bootstrap_creates_default_tenant_and_one_operator_key_once(store):
    key = store.bootstrap()
    assert key and key.startswith("lrg_")
    principal = store.authenticate(key)
    assert principal.tenant_id == DEFAULT_TENANT and principal.role is Role.OPERATOR
    assert store.bootstrap() is None  # second run: nothing new, nothing printed


def test_bootstrap_imports_a_given_key_idempotently(store):
    given = "my-operator-key-0123456789"
    assert store.bootstrap(given) is None
    assert store.bootstrap(given) is None
    assert store.authenticate(given).role is Role.OPERATOR
    assert len(store.list_keys(tenant_id=DEFAULT_TENANT, include_revoked=True, after="", limit=10)) == 1


def test_keys_are_stored_hashed(store):
    key = store.bootstrap()
    with store.db.engine.connect() as conn:
        dump = "\n".join(str(row) for row in conn.execute(text("SELECT * FROM api_keys")))
    assert key not in dump and key.split("_")[-1] not in dump


def test_revoked_key_is_rejected(store):
    store.bootstrap()
    row, key = store.create_key(tenant_id=DEFAULT_TENANT, role=Role.USER, actor="t")
    assert store.authenticate(key).key_id == row.key_id
    store.revoke_key(tenant_id=DEFAULT_TENANT, key_id=row.key_id, actor="t")
    with pytest.raises(Unauthenticated):
        store.authenticate(key)


def test_revoking_a_foreign_key_is_not_found_and_changes_nothing(store):
    store.bootstrap()
    store.create_tenant(tenant_id="acme", actor="t")
    row, key = store.create_key(tenant_id="acme", role=Role.ADMIN, actor="t")
    with pytest.raises(NotFound):
        store.revoke_key(tenant_id=DEFAULT_TENANT, key_id=row.key_id, actor="t")
    assert store.authenticate(key).tenant_id == "acme"


@pytest.mark.parametrize("bad", ["", "A", "Acme", "-acme", "a" * 64, "ac me", "acme;drop", "é-tenant"])
def test_malformed_tenant_ids_are_rejected_and_nothing_is_written(store, bad):
    store.bootstrap()
    with pytest.raises(InvalidArgument) as info:
        store.create_tenant(tenant_id=bad, actor="t")
    assert info.value.field == "tenant_id"
    assert [t.tenant_id for t in store.list_tenants(after="", limit=100)] == [DEFAULT_TENANT]


def test_duplicate_tenant_is_already_exists(store):
    store.create_tenant(tenant_id="acme", actor="t")
    with pytest.raises(AlreadyExists):
        store.create_tenant(tenant_id="acme", actor="t")


def test_negative_quota_is_rejected(store):
    with pytest.raises(InvalidArgument) as info:
        store.create_tenant(tenant_id="acme", quota=Quota(max_documents=-1), actor="t")
    assert info.value.field == "quota.max_documents"
    with pytest.raises(NotFound):
        store.get_tenant("acme")


def test_audit_log_records_who_did_what(store):
    store.bootstrap()
    row, _ = store.create_key(tenant_id=DEFAULT_TENANT, role=Role.USER, actor="k1")
    store.revoke_key(tenant_id=DEFAULT_TENANT, key_id=row.key_id, actor="k1")
    actions = [(e.action, e.actor_key_id) for e in store.audit_events(DEFAULT_TENANT)]
    assert ("api_key.create", "k1") in actions and ("api_key.revoke", "k1") in actions

import pytest

from lorag.admin.core import AdminCore
from lorag.common.errors import InvalidArgument, NotFound, PermissionDenied
from lorag.common.tenancy import Role


@pytest.fixture
def admin(store):
    return AdminCore(store)


@pytest.fixture
def operator(store):
    return store.authenticate(store.bootstrap())


def _principal(store, tenant, role):
    _, key = store.create_key(tenant_id=tenant, role=role, actor="test")
    return store.authenticate(key)


def test_operator_creates_tenant_with_first_admin_key(admin, store, operator):
    tenant, key, secret = admin.create_tenant(
        operator, tenant_id="acme", display_name="Acme", quota=None, create_admin_key=True
    )
    assert tenant.tenant_id == "acme" and key.role == "ADMIN"
    who = store.authenticate(secret)
    assert who.tenant_id == "acme" and who.role is Role.ADMIN


def test_tenant_admin_cannot_manage_tenants(admin, store, operator):
    admin.create_tenant(operator, tenant_id="acme", display_name="", quota=None, create_admin_key=False)
    acme_admin = _principal(store, "acme", Role.ADMIN)
    with pytest.raises(PermissionDenied):
        admin.create_tenant(acme_admin, tenant_id="evil", display_name="", quota=None, create_admin_key=False)
    with pytest.raises(PermissionDenied):
        admin.list_tenants(acme_admin, size=0, token="")
    with pytest.raises(NotFound):
        store.get_tenant("evil")


def test_other_tenants_are_invisible_to_non_operators(admin, store, operator):
    for t in ("acme", "globex"):
        admin.create_tenant(operator, tenant_id=t, display_name="", quota=None, create_admin_key=False)
    acme_user = _principal(store, "acme", Role.USER)
    assert admin.get_tenant(acme_user, tenant_id="").tenant_id == "acme"
    with pytest.raises(NotFound) as info:
        admin.get_tenant(acme_user, tenant_id="globex")
    # same answer as for a tenant that does not exist: existence is not leaked
    with pytest.raises(NotFound) as info2:
        admin.get_tenant(acme_user, tenant_id="nope")
    assert str(info.value).replace("globex", "X") == str(info2.value).replace("nope", "X")


def test_keys_are_scoped_to_the_callers_tenant(admin, store, operator):
    for t in ("acme", "globex"):
        admin.create_tenant(operator, tenant_id=t, display_name="", quota=None, create_admin_key=False)
    acme = _principal(store, "acme", Role.ADMIN)
    globex = _principal(store, "globex", Role.ADMIN)
    key, _ = admin.create_key(acme, role=Role.USER, description="ci")
    listed = admin.list_keys(globex, include_revoked=True, size=0, token="").items
    assert key.key_id not in {k.key_id for k in listed}
    with pytest.raises(NotFound):
        admin.revoke_key(globex, key_id=key.key_id)
    assert key.key_id in {
        k.key_id for k in admin.list_keys(acme, include_revoked=False, size=0, token="").items
    }


def test_roles_cannot_be_escalated(admin, store, operator):
    admin.create_tenant(operator, tenant_id="acme", display_name="", quota=None, create_admin_key=False)
    acme_admin = _principal(store, "acme", Role.ADMIN)
    with pytest.raises(InvalidArgument) as info:
        admin.create_key(acme_admin, role=Role.OPERATOR, description="")
    assert info.value.field == "role"
    with pytest.raises(InvalidArgument):
        admin.create_key(acme_admin, role=None, description="")
    user = _principal(store, "acme", Role.USER)
    with pytest.raises(PermissionDenied):
        admin.create_key(user, role=Role.USER, description="")


def test_list_tenants_paginates(admin, operator):
    for i in range(5):
        admin.create_tenant(operator, tenant_id=f"t{i}", display_name="", quota=None, create_admin_key=False)
    seen, token = [], ""
    while True:
        page = admin.list_tenants(operator, size=2, token=token)
        seen += [t.tenant_id for t in page.items]
        token = page.next_token
        if not token:
            break
    assert seen == ["default", "t0", "t1", "t2", "t3", "t4"]


@pytest.mark.parametrize("token", ["garbage!", "eyJ4IjogMX0=", "bnVsbA=="])
def test_malformed_page_token_is_invalid_argument(admin, operator, token):
    with pytest.raises(InvalidArgument) as info:
        admin.list_tenants(operator, size=0, token=token)
    assert info.value.field == "page.page_token"


@pytest.mark.parametrize("size", [-1, 1001])
def test_page_size_limits(admin, operator, size):
    with pytest.raises(InvalidArgument) as info:
        admin.list_tenants(operator, size=size, token="")
    assert info.value.field == "page.page_size"

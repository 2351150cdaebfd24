import asyncio

import pytest

from lorag.common.auth import Authenticator, bearer_token
from lorag.common.errors import Unauthenticated
from lorag.common.tenancy import DEFAULT_TENANT, Role


@pytest.mark.parametrize(
    "metadata",
    [[], [("authorization", "Basic abc")], [("authorization", "Bearer ")], [("other", "Bearer x")]],
)
def test_missing_or_malformed_authorization_is_unauthenticated(metadata):
    with pytest.raises(Unauthenticated):
        bearer_token(metadata)


def test_bearer_token_accepts_bytes_and_any_case():
    assert bearer_token([("Authorization", b"bearer  abc ")]) == "abc"


def test_revocation_is_seen_after_the_cache_ttl(store):
    store.bootstrap()
    row, key = store.create_key(tenant_id=DEFAULT_TENANT, role=Role.USER, actor="t")
    auth = Authenticator(store, ttl_s=0.2)
    md = [("authorization", f"Bearer {key}")]

    async def scenario():
        assert (await auth.authenticate(md)).key_id == row.key_id
        store.revoke_key(tenant_id=DEFAULT_TENANT, key_id=row.key_id, actor="t")
        await asyncio.sleep(0.25)
        with pytest.raises(Unauthenticated):
            await auth.authenticate(md)

    asyncio.run(scenario())


def test_settings_keep_the_cache_below_one_second():
    from pydantic import ValidationError

    from lorag.common.settings import LoragSettings

    with pytest.raises(ValidationError):
        LoragSettings(auth_cache_ttl_s=1.5)

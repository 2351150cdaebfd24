"""Integration tier: every servicer in a real grpc.aio server on 127.0.0.1, SQLite registry."""

import grpc
import pytest

from lorag.client import AsyncClient
from lorag.common.hosts import start_inprocess
from lorag.common.rpc import Runtime
from lorag.common.settings import LoragSettings


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("lorag-data")


@pytest.fixture(scope="session")
def runtime(data_dir):
    settings = LoragSettings(data_dir=data_dir, max_message_bytes=256 * 1024, auth_cache_ttl_s=0.5)
    rt = Runtime.build(settings)
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def operator_key(runtime):
    return runtime.tenants.bootstrap()


@pytest.fixture(scope="session")
async def host(runtime, operator_key):
    h = await start_inprocess(runtime)
    yield h
    await h.stop(0)


@pytest.fixture(scope="session")
async def operator(host, operator_key):
    async with AsyncClient(host.target, operator_key, timeout=60) as c:
        yield c


@pytest.fixture
async def client_for(host):
    clients = []

    def make(key):
        c = AsyncClient(host.target, key, timeout=10)
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


async def expect_status(awaitable, code: grpc.StatusCode) -> str:
    """Await a call that must fail with ``code``; returns the details."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await awaitable
    assert info.value.code() == code, info.value.details()
    return info.value.details()

"""Retrieval integration fixtures: the servicer over real gRPC on each Milvus back end.

Back ends: ``lite`` (Milvus Lite opened in this process) and ``server`` (one ``milvus-lite
server`` subprocess on 127.0.0.1 for the whole session, stopped by pid at the end). Tenants
``ret-alpha`` and ``ret-beta`` get user keys in the session registry.
"""

from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from lorag.client import AsyncClient
from lorag.common.rpc import Runtime
from lorag.common.tenancy import Role
from lorag.retrieval.embedders import LocalEmbedder
from lorag.retrieval.lite_server import LiteServer
from lorag.retrieval.servicer import RetrievalServicer
from lorag.retrieval.settings import RetrievalSettings
from lorag.retrieval.v1 import retrieval_pb2_grpc
from tests.retrieval_helpers import embedding_core

VEC_MODEL, VEC_DIM = "vec-8", 8
BACKENDS = ["lite", "server"]


@pytest.fixture(scope="session")
def tenant_keys(runtime: Runtime) -> dict[str, str]:
    keys = {}
    for tenant in ("ret-alpha", "ret-beta"):
        runtime.tenants.create_tenant(tenant_id=tenant, actor="test")
        _, keys[tenant] = runtime.tenants.create_key(tenant_id=tenant, role=Role.USER, actor="test")
    return keys


@pytest.fixture(scope="session")
def embedder():
    return LocalEmbedder(embedding_core())


@pytest.fixture(scope="session")
def lite_server(tmp_path_factory):
    server = LiteServer(tmp_path_factory.mktemp("milvus-server") / "data").start()
    yield server
    pid = server.pid
    server.stop()
    assert (
        not Path(f"/proc/{pid}").exists() or b"milvus_lite" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    )


@dataclass
class Backend:
    name: str
    settings: RetrievalSettings
    servicer: RetrievalServicer
    server: grpc.aio.Server
    target: str
    lite_server: LiteServer | None

    def new_servicer(self, runtime, embedder) -> RetrievalServicer:
        return RetrievalServicer(runtime, settings=self.settings, embedder=embedder)


def backend_settings(name: str, data_dir: Path, uri: str, **kw) -> RetrievalSettings:
    return RetrievalSettings(
        data_dir=data_dir,
        milvus_uri=uri,
        model_dimensions={VEC_MODEL: VEC_DIM},
        index_type="HNSW",
        **kw,
    )


@pytest.fixture(scope="module", params=BACKENDS)
async def backend(request, runtime, tmp_path_factory, embedder, tenant_keys):
    name = request.param
    data_dir = tmp_path_factory.mktemp(f"retrieval-{name}")
    if name == "server":
        server_proc = request.getfixturevalue("lite_server")
        uri = server_proc.uri
    else:
        server_proc = None
        uri = str(data_dir / "milvus" / "lorag.db")
    settings = backend_settings(
        name, data_dir, uri, collection_prefix=getattr(request.module, "COLLECTION_PREFIX", "lorag")
    )
    servicer = RetrievalServicer(runtime, settings=settings, embedder=embedder)
    server = grpc.aio.server()
    retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield Backend(name, settings, servicer, server, f"127.0.0.1:{port}", server_proc)
    await server.stop(0)
    servicer.close()


@pytest.fixture
async def clients(backend, tenant_keys):
    made = {t: AsyncClient(backend.target, key, timeout=60) for t, key in tenant_keys.items()}
    yield {t: c.retrieval for t, c in made.items()}
    for c in made.values():
        await c.close()

"""Back-end behaviour: one managed `milvus-lite server` shared by several processes, and the
schema-version guard that refuses incompatible existing collections."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lorag.common.errors import FailedPrecondition
from lorag.retrieval.core import SCHEMA_VERSION, MilvusStore, collection_name
from lorag.retrieval.lite_server import port_open
from lorag.retrieval.servicer import RetrievalServicer
from lorag.retrieval.settings import RetrievalSettings
from lorag.retrieval.v1 import retrieval_pb2 as pb
from tests.retrieval_helpers import unit

from .conftest import VEC_DIM, VEC_MODEL

ROOT = Path(__file__).resolve().parents[3]

WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from lorag.retrieval.core import MilvusStore, StoredChunk
    from lorag.retrieval.lite_server import SharedLiteServer
    from lorag.retrieval.settings import RetrievalSettings

    data_dir, expected_uri = sys.argv[1], sys.argv[2]
    settings = RetrievalSettings(data_dir=data_dir)
    shared = SharedLiteServer(settings.lite_path())
    uri = shared.acquire()
    assert uri == expected_uri, (uri, expected_uri)
    store = MilvusStore(uri=uri, settings=settings)
    info = store.ensure_collection("vec-8", 8)
    vec = np.ones(8, dtype=np.float32) / np.sqrt(8)
    store.write_document("ret-alpha", info, doc_id="from-replica-2", title="", doc_metadata={},
                         content_sha256="", chunks=[StoredChunk("written by another process", vec, {})])
    store.close()
    shared.release()
    print("ok")
    """
)


def _alive(pid: int) -> bool:
    try:
        return b"milvus_lite" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


async def test_replicas_share_one_managed_server_and_the_last_one_stops_it(runtime, tmp_path):
    settings = RetrievalSettings(
        data_dir=tmp_path,
        lite_mode="server",
        model_dimensions={VEC_MODEL: VEC_DIM},
        default_embedding_model=VEC_MODEL,
    )
    replica1 = RetrievalServicer(runtime, settings=settings, embedder=None)
    await replica1.core()  # opens Milvus: starts the managed server
    state = replica1._lite._state()
    uri = replica1._lite.acquire()
    assert uri.startswith("http://127.0.0.1:") and _alive(state["pid"])

    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'services'}:{ROOT}"}
    out = subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_path), uri],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert _alive(state["pid"])  # the other process left; this one still uses the server

    r = await replica1.search_internal(
        "ret-alpha", pb.SearchRequest(query_vector=unit(np.ones(VEC_DIM)), top_k=3)
    )
    assert [(h.chunk.doc_id, h.text) for h in r.hits] == [("from-replica-2", "written by another process")]

    replica1.close()  # the last user stops the server
    assert not _alive(state["pid"]) and not port_open(state["port"])


def _create_foreign(uri: str, name: str, *, properties: dict | None, full: bool = False) -> None:
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=uri)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("chunk_id", DataType.VARCHAR, max_length=64, is_primary=True)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=VEC_DIM)
    if full:
        schema.add_field("tenant_id", DataType.VARCHAR, max_length=64)  # not a partition key
    index = client.prepare_index_params()
    index.add_index("dense", index_type="FLAT", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index, properties=properties or {})
    client.close()


@pytest.mark.parametrize(
    ("prefix", "properties", "message"),
    [
        ("foreign", None, "exists but was not created by lorag"),
        ("oldver", {"lorag.schema_version": "0", "lorag.embedding_model": VEC_MODEL}, "has schema version 0"),
        (
            "broken",
            {
                "lorag.schema_version": str(SCHEMA_VERSION),
                "lorag.embedding_model": VEC_MODEL,
                "lorag.dimension": "8",
            },
            "field doc_id is missing",
        ),
    ],
)
async def test_an_incompatible_existing_collection_is_failed_precondition(
    lite_server, runtime, tmp_path, prefix, properties, message
):
    _create_foreign(lite_server.uri, collection_name(prefix, VEC_MODEL, VEC_DIM), properties=properties)
    settings = RetrievalSettings(
        data_dir=tmp_path,
        milvus_uri=lite_server.uri,
        collection_prefix=prefix,
        model_dimensions={VEC_MODEL: VEC_DIM},
    )
    servicer = RetrievalServicer(runtime, settings=settings, embedder=None)
    try:
        request = pb.UpsertRequest(
            embedding_model=VEC_MODEL,
            documents=[
                pb.DocumentInput(
                    doc_id="d", chunks=pb.ChunkList(chunks=[pb.Chunk(text="t", dense=[1.0] * 8)])
                )
            ],
        )
        with pytest.raises(FailedPrecondition, match=message):
            await servicer.upsert_internal("ret-alpha", request)
    finally:
        servicer.close()
    # nothing was written into the foreign collection
    from pymilvus import MilvusClient

    client = MilvusClient(uri=lite_server.uri)
    try:
        assert client.get_collection_stats(collection_name(prefix, VEC_MODEL, VEC_DIM))["row_count"] == 0
    finally:
        client.close()


async def test_new_collections_record_their_schema_version(lite_server, tmp_path):
    settings = RetrievalSettings(data_dir=tmp_path, milvus_uri=lite_server.uri, collection_prefix="versioned")
    store = MilvusStore(uri=lite_server.uri, settings=settings)
    try:
        info = store.ensure_collection("some/model-x", 16)
        assert info.name == "versioned_some_model_x_16"
        props = store.client.describe_collection(info.name)["properties"]
        assert props == {
            "lorag.schema_version": "1",
            "lorag.embedding_model": "some/model-x",
            "lorag.dimension": "16",
        }
        with pytest.raises(FailedPrecondition, match="has dimension 16, the model now has 32"):
            store.ensure_collection("some/model-x", 32)
    finally:
        store.close()

"""Faults in the adapter blob store: a version's bytes change after upload (bit rot, a bad copy, a
hand edit), so its files no longer match the SHA-256 the registry recorded.

On both blob stores (local directory; S3 through moto), generation refuses to load that version:
the request gets DATA_LOSS naming the file and version, the failure is counted in
``lorag_adapter_cache_load_failures_total{reason="data_loss"}`` and logged; the version that was
serving keeps serving (it stays loaded; a rollback of the alias brings every request back to
it); and once the blob is repaired the same version loads on the next request (a failed load is
not remembered).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import grpc
import pytest
from prometheus_client import REGISTRY

from lorag.adapters.servicer import registry_for
from lorag.adapters.transfer import upload_requests
from lorag.adapters.v1 import adapters_pb2 as apb
from lorag.admin.v1 import admin_pb2
from lorag.apps import APPS_BY_NAME
from lorag.client import AsyncClient
from lorag.common.hosts import start_inprocess
from lorag.common.rpc import Runtime
from lorag.common.settings import LoragSettings
from lorag.common.v1 import common_pb2
from lorag.generation.v1 import generation_pb2 as pb
from tests.support.models import smollm2_adapter
from tests.support.postgres import start_postgres
from tests.support.s3 import start_s3

SAMPLING = pb.SamplingParams(temperature=0.0, max_new_tokens=4)
PROMPT = "The best thing about the weekend is"
WEIGHTS = "adapter_model.safetensors"
ALIAS_MOVE_S = 5.0  # promotions reach replicas within ~2 s (README, Adapters); loose bound


@pytest.fixture(scope="module", params=["sqlite-local", "postgres-s3"])
async def env(request, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp(f"faults-{request.param}")
    mp = pytest.MonkeyPatch()
    stops = []
    registry_url = None
    if request.param == "postgres-s3":
        pg, s3 = start_postgres("lorag_adapter_faults"), start_s3()
        stops += [pg.stop, s3.stop]
        s3.create_bucket("fault-blobs")
        registry_url = pg.url
        mp.setenv("LORAG_ADAPTERS_BLOB_URL", f"s3://fault-blobs/{data_dir.name}")
        mp.setenv("LORAG_ADAPTERS_BLOB_OPTIONS", json.dumps(s3.storage_options()))
    settings = LoragSettings(data_dir=data_dir, registry_url=registry_url, max_message_bytes=256 * 1024)
    runtime = Runtime.build(settings)
    operator_key = runtime.tenants.bootstrap()
    host = await start_inprocess(runtime, apps=(APPS_BY_NAME["adapters"], APPS_BY_NAME["generation"]))
    try:
        async with AsyncClient(host.target, operator_key, timeout=60) as op:
            key = (
                await op.admin.CreateTenant(
                    admin_pb2.CreateTenantRequest(tenant_id="blob-faults", create_admin_key=True)
                )
            ).admin_api_key
        root = tmp_path_factory.mktemp("fault-adapters")
        async with AsyncClient(host.target, key, timeout=120) as c:
            versions = []
            for seed in (1, 2):
                resp = await c.adapters.UploadAdapterVersion(
                    upload_requests(
                        smollm2_adapter(root / f"s{seed}", seed=seed),
                        adapter_name="bot",
                        chunk_bytes=128 * 1024,
                    )
                )
                versions.append(resp.version)
            await c.adapters.SetAlias(apb.SetAliasRequest(adapter_name="bot", alias="production", version=1))
            yield request.param, runtime, c, versions
    finally:
        await host.stop(0)
        runtime.usage.close()
        runtime.close()
        mp.undo()
        for stop in stops:
            stop()


async def generate(c: AsyncClient, ref: str) -> pb.GenerateResponse:
    req = pb.GenerateRequest(prompt=PROMPT, sampling=SAMPLING, adapter=common_pb2.AdapterRef(ref=ref))
    return await c.generation.Generate(req)


def load_failures(reason: str) -> float:
    labels = {"service": "generation", "reason": reason}
    return REGISTRY.get_sample_value("lorag_adapter_cache_load_failures_total", labels) or 0.0


def weights_path(runtime, version: apb.AdapterVersion) -> tuple[object, str]:
    blobs = registry_for(runtime).blobs
    prefix = blobs.version_prefix("blob-faults", "bot", version.version_id)
    return blobs.fs, f"{prefix}/{WEIGHTS}"


def flip_byte(runtime, version: apb.AdapterVersion) -> bytes:
    """Change one byte in the middle of the version's weights in the blob store; the original."""
    fs, path = weights_path(runtime, version)
    original = fs.cat_file(path)
    middle = len(original) // 2
    fs.pipe_file(path, original[:middle] + bytes([original[middle] ^ 0x01]) + original[middle + 1 :])
    fs.invalidate_cache()
    return original


async def test_a_corrupted_blob_is_refused_and_the_good_version_keeps_serving(env, caplog):
    name, runtime, c, (v1, v2) = env
    good = await generate(c, "bot")  # production = v1, loaded now
    assert good.summary.adapter_version_id == v1.version_id

    original = flip_byte(runtime, v2)
    before = load_failures("data_loss")
    with caplog.at_level(logging.INFO, logger="lorag"):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await generate(c, "bot@v2")
    assert info.value.code() == grpc.StatusCode.DATA_LOSS, (name, info.value.details())
    assert WEIGHTS in info.value.details() and v2.version_id in info.value.details()
    assert "SHA-256" in info.value.details()
    assert load_failures("data_loss") == before + 1
    logged = [
        r for r in caplog.records if r.name == "lorag.adapters.cache" and v2.version_id in r.getMessage()
    ]
    assert logged and logged[0].levelno == logging.WARNING and "data_loss" in logged[0].getMessage()

    # the good version was not disturbed: still loaded, still answering, byte-identical output
    loaded = await c.generation.GetLoadedAdapters(pb.GetLoadedAdaptersRequest())
    ids = {a.adapter_version_id for a in loaded.adapters}
    assert v1.version_id in ids and v2.version_id not in ids
    again = await generate(c, "bot")
    assert (again.summary.adapter_version_id, again.text) == (v1.version_id, good.text)

    # promoted by mistake: requests through the alias fail clearly; a rollback restores serving
    # (an alias move reaches the replica's resolution cache within its watch interval: poll)
    await c.adapters.SetAlias(apb.SetAliasRequest(adapter_name="bot", alias="production", version=2))
    codes = set()
    deadline = time.monotonic() + ALIAS_MOVE_S
    while grpc.StatusCode.DATA_LOSS not in codes:
        assert time.monotonic() < deadline, f"the promotion did not reach generation: {codes}"
        try:
            r = await generate(c, "bot")
            assert r.summary.adapter_version_id == v1.version_id  # not yet moved
            codes.add(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as exc:
            codes.add(exc.code())
    assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.DATA_LOSS}, codes
    await c.adapters.Rollback(apb.RollbackRequest(adapter_name="bot", alias="production"))
    deadline = time.monotonic() + ALIAS_MOVE_S
    while True:
        try:
            back = await generate(c, "bot")
            break
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.DATA_LOSS and time.monotonic() < deadline
            await asyncio.sleep(0.1)
    assert (back.summary.adapter_version_id, back.text) == (v1.version_id, good.text)

    # repaired: the same version loads on the next request (the failure was not cached)
    fs, path = weights_path(runtime, v2)
    fs.pipe_file(path, original)
    fs.invalidate_cache()
    fixed = await generate(c, "bot@v2")
    assert fixed.summary.adapter_version_id == v2.version_id and fixed.text != good.text

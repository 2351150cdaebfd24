"""Generation with tenant adapters from the registry: per-request versions, hot swap, isolation."""

import asyncio
import time

import grpc
import pytest

from lorag.adapters.transfer import upload_requests
from lorag.adapters.v1 import adapters_pb2 as apb
from lorag.admin.v1 import admin_pb2
from lorag.client import AsyncClient
from lorag.common.v1 import common_pb2
from lorag.generation.v1 import generation_pb2 as pb
from tests.support.adapters import build_bert_adapter
from tests.support.models import smollm2_adapter

from .conftest import expect_status

SAMPLING = pb.SamplingParams(temperature=0.0, max_new_tokens=8)
PROMPT = "The best thing about the weekend is"


@pytest.fixture(scope="module")
async def tenants(operator, host, tmp_path_factory):
    out = {}
    for name in ("gen-a", "gen-b"):
        resp = await operator.admin.CreateTenant(
            admin_pb2.CreateTenantRequest(tenant_id=name, create_admin_key=True)
        )
        out[name] = AsyncClient(host.target, resp.admin_api_key, timeout=60)
    root = tmp_path_factory.mktemp("gen-adapters")
    a = out["gen-a"]
    versions = []
    for seed in (1, 2):
        resp = await a.adapters.UploadAdapterVersion(
            upload_requests(
                smollm2_adapter(root / f"s{seed}", seed=seed), adapter_name="bot", chunk_bytes=128 * 1024
            )
        )
        versions.append(resp.version)
    await a.adapters.SetAlias(apb.SetAliasRequest(adapter_name="bot", alias="production", version=1))
    rer = build_bert_adapter(root / "rer")
    await a.adapters.UploadAdapterVersion(
        upload_requests(rer, adapter_name="ranker", kind=apb.ADAPTER_KIND_RERANKING, chunk_bytes=128 * 1024)
    )
    yield out, versions
    for c in out.values():
        await c.close()


async def generate(client, ref="", **kw):
    req = pb.GenerateRequest(prompt=PROMPT, sampling=SAMPLING, adapter=common_pb2.AdapterRef(ref=ref), **kw)
    return await client.generation.Generate(req)


async def test_each_request_uses_and_reports_the_adapter_version(tenants):
    clients, (v1, v2) = tenants
    a = clients["gen-a"]
    base = await generate(a)
    r1 = await generate(a, "bot")
    r2 = await generate(a, "bot@v2")
    assert base.summary.adapter_version_id == ""
    assert r1.summary.adapter_version_id == v1.version_id
    assert r2.summary.adapter_version_id == v2.version_id
    assert len({base.text, r1.text, r2.text}) == 3  # the adapters change the output
    assert (await generate(a, "bot@production")).text == r1.text  # same version, same greedy text


async def test_mixed_concurrent_requests_match_sequential_ones(tenants):
    clients, _ = tenants
    a = clients["gen-a"]
    refs = ["", "bot@v1", "bot@v2", "bot@v1", ""]
    sequential = [(await generate(a, r)).text for r in refs]
    concurrent = await asyncio.gather(*(generate(a, r) for r in refs))
    assert [c.text for c in concurrent] == sequential


async def test_alias_moves_take_effect_quickly_without_failures(tenants):
    """Requests that start 2 s or more after an alias move use the new version; none fails."""
    clients, (v1, v2) = tenants
    a = clients["gen-a"]
    assert (await generate(a, "bot")).summary.adapter_version_id == v1.version_id
    seen: list[tuple[float, str]] = []  # (request start, version that answered)
    stop = asyncio.Event()

    async def load():  # concurrent traffic on the moving alias; any failure fails the test
        while not stop.is_set():
            started = time.monotonic()
            resp = await generate(a, "bot")
            seen.append((started, resp.summary.adapter_version_id))

    async def move_and_check(request, expected: str) -> None:
        await request
        moved = time.monotonic()
        deadline = moved + 120
        while not any(t >= moved + 2.0 for t, _ in seen):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        late = [v for t, v in seen if t >= moved + 2.0]
        assert late and set(late) == {expected}

    workers = [asyncio.create_task(load()) for _ in range(3)]
    try:
        await move_and_check(
            a.adapters.SetAlias(apb.SetAliasRequest(adapter_name="bot", alias="production", version=2)),
            v2.version_id,
        )
        seen.clear()
        await move_and_check(
            a.adapters.Rollback(apb.RollbackRequest(adapter_name="bot", alias="production")), v1.version_id
        )
    finally:
        stop.set()
        await asyncio.gather(*workers)  # re-raises any failed request


async def test_unknown_foreign_and_wrong_kind_adapters(tenants):
    clients, _ = tenants
    a, b = clients["gen-a"], clients["gen-b"]
    missing = await expect_status(generate(a, "nope"), grpc.StatusCode.NOT_FOUND)
    foreign = await expect_status(generate(b, "bot"), grpc.StatusCode.NOT_FOUND)
    assert missing.replace("nope", "X") == foreign.replace("bot", "X")  # existence is not leaked
    details = await expect_status(generate(a, "ranker"), grpc.StatusCode.FAILED_PRECONDITION)
    assert "reranking" in details
    await expect_status(generate(a, "bad name!"), grpc.StatusCode.INVALID_ARGUMENT)


async def test_loaded_adapters_are_listed_for_their_tenant_only(tenants):
    clients, (v1, _) = tenants
    await generate(clients["gen-a"], "bot@v1")
    mine = await clients["gen-a"].generation.GetLoadedAdapters(pb.GetLoadedAdaptersRequest())
    theirs = await clients["gen-b"].generation.GetLoadedAdapters(pb.GetLoadedAdaptersRequest())
    assert v1.version_id in [x.adapter_version_id for x in mine.adapters]
    assert list(theirs.adapters) == []

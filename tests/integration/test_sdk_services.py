"""The SDK's high-level methods against the real servicers (in-process host on 127.0.0.1)."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lorag.apps import APPS_BY_NAME
from lorag.client import AsyncClient, Client, errors
from lorag.client.types import Generation
from lorag.common.hosts import start_inprocess
from tests.support.adapters import build_llama_adapter
from tests.support.reranking import QUICK_ENV, quick_reranker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def tenant(operator):
    """A fresh tenant and its admin key, created through the SDK."""
    created = await operator.admin.create_tenant("sdk-acme", display_name="Acme", admin_key=True)
    assert created.tenant.tenant_id == "sdk-acme" and created.admin_key.role == "admin"
    return created


@pytest.fixture
async def acme(host, tenant):
    async with AsyncClient(host.target, tenant.admin_api_key, timeout=60) as c:
        yield c


async def test_admin_tenants_and_keys(operator, acme, host, tenant):
    who = await acme.admin.whoami()
    assert (who.tenant_id, who.role) == ("sdk-acme", "admin")
    assert "sdk-acme" in {t.tenant_id for t in await operator.admin.list_tenants()}
    t = await operator.admin.set_quota("sdk-acme", max_documents=1000)
    assert t.quota.max_documents == 1000 and t.create_time is not None
    new = await acme.admin.create_key(role="user", description="web app")
    assert new.api_key and new.key.role == "user" and not new.key.revoked
    assert new.key.key_id in {k.key_id for k in await acme.admin.list_keys()}
    async with AsyncClient(host.target, new.api_key, timeout=10) as user:
        assert (await user.admin.whoami()).role == "user"
        with pytest.raises(errors.PermissionDeniedError):
            await user.admin.create_key(role="admin")
    revoked = await acme.admin.revoke_key(new.key.key_id)
    assert revoked.revoked
    assert new.key.key_id not in {k.key_id for k in await acme.admin.list_keys()}
    assert new.key.key_id in {k.key_id for k in await acme.admin.list_keys(include_revoked=True)}
    with pytest.raises(errors.NotFoundError):
        await operator.admin.get_tenant("no-such-tenant")
    with pytest.raises(errors.AlreadyExistsError):
        await operator.admin.create_tenant("sdk-acme")
    async with AsyncClient(host.target, "lrg_not_a_real_key_0000000000", timeout=10) as bad:
        with pytest.raises(errors.UnauthenticatedError):
            await bad.admin.whoami()


async def test_adapters_upload_aliases_resolve_download(acme, tmp_path):
    v1_dir = build_llama_adapter(tmp_path / "v1", seed=1)
    v2_dir = build_llama_adapter(tmp_path / "v2", seed=2)
    chunk = 64 * 1024  # the session host accepts messages of 256 KiB
    v1 = await acme.adapters.upload(v1_dir, name="sdk-bot", chunk_bytes=chunk)
    v2 = await acme.adapters.upload(v2_dir, name="sdk-bot", chunk_bytes=chunk, description="second")
    assert (v1.version, v2.version, v2.kind, v2.description) == (1, 2, "generation", "second")
    assert v2.files and v2.sha256 and v2.rank == 8

    assert (await acme.adapters.promote("sdk-bot", 1)).alias.version == 1
    change = await acme.adapters.canary("sdk-bot", 2, weight=25)
    assert (change.alias.name, change.alias.traffic_weight) == ("canary", 25)
    adapter = await acme.adapters.get("sdk-bot")
    assert adapter.latest_version == 2 and adapter.alias("canary").version == 2
    assert [a.name for a in await acme.adapters.list()] == ["sdk-bot"]
    assert [v.version for v in await acme.adapters.versions("sdk-bot")] == [2, 1]
    assert (await acme.adapters.resolve("sdk-bot@v2")).version_id == v2.version_id
    await acme.adapters.promote("sdk-bot", 2)
    back = await acme.adapters.rollback("sdk-bot")
    assert back.alias.version == 1 and back.revision > change.revision
    assert (await acme.adapters.resolve("sdk-bot@production")).version == 1
    assert (await acme.adapters.get_version("sdk-bot@v1")).version_id == v1.version_id

    copy = await acme.adapters.download("sdk-bot@v2", tmp_path / "copy")
    assert copy.version_id == v2.version_id
    assert {p.name for p in (tmp_path / "copy").iterdir()} == {f.name for f in v2.files}
    events = await acme.adapters.audit(resource_prefix="adapters/sdk-bot", limit=3)
    assert len(events) == 3 and events[0].event_time >= events[-1].event_time

    with pytest.raises(errors.NotFoundError):
        await acme.adapters.get("no-such-adapter")
    with pytest.raises(errors.FailedPreconditionError):
        await acme.adapters.delete("sdk-bot")  # aliases point at it
    deleted = await acme.adapters.delete("sdk-bot", force=True)
    assert deleted.deleted_version_count == 2


async def test_embedding(acme):
    e = await acme.embedding.embed(["How do I reset my password?", "volcano"], input_type="query")
    assert (len(e), e.dimension, e.model) == (2, 384, "all-minilm-l6-v2")
    assert e.usage.prompt_tokens > 0 and e.token_counts[0] > 3
    assert e.raw.embeddings[0].values[0] == e.vectors[0][0]
    (model,) = await acme.embedding.models()
    assert model.is_default and model.details["dimension"] == 384
    with pytest.raises(errors.InvalidArgumentError):
        await acme.embedding.embed([])


async def test_retrieval_upsert_search_filter_delete(acme):
    docs = [
        {"doc_id": "pw", "text": "To reset your password open Settings and choose Reset password.",
         "metadata": {"lang": "en", "year": 2024}},
        {"doc_id": "pw-old", "text": "Password resets were done by email to support in the old days.",
         "metadata": {"lang": "en", "year": 2015}},
        {"doc_id": "volcano", "text": "The volcano erupted and covered the town in ash.",
         "metadata": {"lang": "en", "year": 2024}},
    ]  # fmt: skip
    progress = [p async for p in acme.retrieval.upsert(docs)]
    assert [p.status for p in progress] == ["indexed"] * 3 and progress[-1].documents_done == 3
    hits = await acme.retrieval.search("how do I reset my password", top_k=3)
    assert hits[0].doc_id in ("pw", "pw-old") and hits.mode
    recent = await acme.retrieval.search("reset password", top_k=3, filter={"year": {"gte": 2020}})
    assert {h.doc_id for h in recent} <= {"pw", "volcano"} and recent[0].doc_id == "pw"
    assert recent[0].metadata["year"] == 2024
    sparse = await acme.retrieval.search("volcano ash", mode="sparse", top_k=1)
    assert sparse[0].doc_id == "volcano"
    assert (await acme.retrieval.get_document("pw")).chunk_count >= 1
    assert {d.doc_id for d in await acme.retrieval.documents()} == {"pw", "pw-old", "volcano"}
    assert (await acme.retrieval.stats()).document_count == 3
    with pytest.raises(errors.InvalidArgumentError):
        await acme.retrieval.search("x", filter={"tenant_id": "other"})  # reserved field: server says no
    deleted = await acme.retrieval.delete(["pw-old", "never-there"])
    assert deleted.documents == 1 and deleted.chunks >= 1
    with pytest.raises(errors.NotFoundError):
        await acme.retrieval.get_document("pw-old")


@pytest.fixture(scope="module")
async def reranking(runtime, operator_key):
    quick_reranker()
    saved = {k: os.environ.get(k) for k in QUICK_ENV}
    os.environ.update(QUICK_ENV)  # read when the servicer starts
    try:
        host = await start_inprocess(runtime, apps=(APPS_BY_NAME["reranking"],))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v
    async with AsyncClient(host.target, operator_key, timeout=60) as c:
        yield c
    await host.stop(0)


async def test_reranking(reranking):
    passages = [
        "The volcano erupted and covered the town in ash.",
        ("faq-1", "To reset your password, open Settings and choose Reset password."),
        {"id": "x", "text": "Bananas are rich in potassium."},
    ]
    r = await reranking.reranking.rerank("How do I reset my password?", passages, top_n=2)
    assert len(r.results) == 2
    best = r.results[0]
    assert (best.index, best.id) == (1, "faq-1") and best.text.startswith("To reset")
    assert best.score >= r.results[1].score and r.model
    assert any(m.is_default for m in await reranking.reranking.models())


async def test_generation_unary_and_stream(operator):
    g = await operator.generation.generate("The capital of France is", max_new_tokens=8, temperature=0.0)
    assert isinstance(g, Generation) and "Paris" in g.text and g.finish_reason in ("length", "stop")
    assert g.usage.completion_tokens <= 8 and g.model == "smollm2-135m-instruct"
    pieces = [
        p
        async for p in operator.generation.generate_stream(
            "The capital of France is", max_new_tokens=8, temperature=0.0
        )
    ]
    assert all(isinstance(p, str) for p in pieces[:-1]) and isinstance(pieces[-1], Generation)
    assert "".join(pieces[:-1]) == pieces[-1].text == g.text
    chat = await operator.generation.generate(
        messages=[
            ("system", "Answer with one word."),
            {"role": "user", "content": "What is the capital of France?"},
        ],
        max_new_tokens=6,
        temperature=0.0,
    )
    assert "Paris" in chat.text
    with pytest.raises(errors.NotFoundError):
        await operator.generation.generate("hi", adapter="no-such-adapter", max_new_tokens=2)


async def test_training_lists_through_the_sdk(acme):
    assert await acme.training.list() == []
    with pytest.raises(errors.NotFoundError):
        await acme.training.get("tj_unknown")


async def test_sync_client_and_raw_stubs_work_side_by_side(host, tenant):
    from lorag.admin.v1 import admin_pb2

    def work():
        with Client(host.target, tenant.admin_api_key, timeout=10) as c:
            typed = c.admin.whoami()
            raw = c.admin.WhoAmI(admin_pb2.WhoAmIRequest())  # the raw stub, as before
            raw2 = c.service("admin").WhoAmI(admin_pb2.WhoAmIRequest())
            return typed, raw, raw2

    typed, raw, raw2 = await asyncio.to_thread(work)
    assert typed.tenant_id == raw.tenant_id == raw2.tenant_id == "sdk-acme"


async def test_cli_help_and_health_as_a_real_process(host):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "services"), "LORAG_ENDPOINT": host.target}
    env.pop("LORAG_API_KEY", None)
    run = dict(capture_output=True, text=True, timeout=120, env=env)
    helped = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "lorag.cli", "--help"], **run)
    assert helped.returncode == 0 and "ingest" in helped.stdout and "ask" in helped.stdout
    health = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "lorag.cli", "health"], **run)
    assert health.returncode == 0, health.stdout + health.stderr
    assert health.stdout.count("SERVING") == 6
    down = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "lorag.cli", "--endpoint", "127.0.0.1:1", "--timeout", "2", "health"],
        **run,
    )
    assert down.returncode == 1 and "ERROR UNAVAILABLE" in down.stdout and "lorag serve" in down.stderr

"""RerankingService over real gRPC (in-process host): the built cross-encoder, stand-in, limits."""

import asyncio
import os
import time
from contextlib import contextmanager

import grpc
import pytest

from lorag.adapters.transfer import upload_requests
from lorag.adapters.v1 import adapters_pb2 as apb
from lorag.admin.v1 import admin_pb2
from lorag.apps import APPS_BY_NAME
from lorag.client import AsyncClient
from lorag.common.hosts import start_inprocess
from lorag.common.v1 import common_pb2
from lorag.reranking.prepare import Recipe
from lorag.reranking.v1 import reranking_pb2 as pb
from tests.integration.conftest import expect_status
from tests.support.adapters import synthetic_llama_adapter
from tests.support.reranking import (
    QUICK,
    QUICK_ENV,
    quick_reranker,
    quick_reranker_adapter,
    quick_settings,
    real_pairs,
)


@contextmanager
def environment(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
async def built(runtime, operator_key):
    """A reranking host whose default model is the (quick) locally built cross-encoder."""
    quick_reranker()
    with environment(QUICK_ENV):  # settings are read when the servicer starts
        host = await start_inprocess(runtime, apps=(APPS_BY_NAME["reranking"],))
    async with AsyncClient(host.target, operator_key, timeout=60) as client:
        yield client
    await host.stop(0)


def request(query, texts, **kwargs):
    return pb.RerankRequest(
        query=query, passages=[pb.Passage(id=f"p{i}", text=t) for i, t in enumerate(texts)], **kwargs
    )


async def test_the_built_cross_encoder_is_listed_with_its_evaluation(built):
    (model,) = (await built.reranking.ListRerankerModels(pb.ListRerankerModelsRequest())).models
    recipe = Recipe.from_settings(quick_settings())
    assert (model.name, model.is_default) == ("minilm-l6-squad", True)
    assert model.max_seq_length == recipe.eval_max_length  # the length it was evaluated at
    assert model.scoring_method == pb.SCORING_METHOD_CROSS_ENCODER
    assert len(model.version) == 16 and len(model.weights_sha256) == 64
    assert {
        "ndcg_at_10_reranker",
        "ndcg_at_10_cross_encoder",
        "ndcg_at_10_bi_encoder",
        "ndcg_at_10_bm25",
        "validation_ndcg_at_10_reranker",
    } <= set(model.metrics)
    # The score adds the model's lexical-match feature, with the weight fitted on validation.
    assert model.metrics["lexical_weight"] > 0
    assert f"{model.metrics['lexical_weight']:g} x BM25" in model.note


async def test_a_relevant_passage_reranks_above_unrelated_ones(built):
    for question, gold, others in real_pairs():
        texts = [*others[:2], gold, others[2]]
        resp = await built.reranking.Rerank(request(question, texts))
        assert resp.scoring_method == pb.SCORING_METHOD_CROSS_ENCODER
        assert resp.results[0].id == "p2", (question, [(r.id, r.score) for r in resp.results])
        scores = [r.score for r in resp.results]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
        assert sorted(r.index for r in resp.results) == [0, 1, 2, 3]
        assert resp.usage.prompt_tokens > 0 and resp.model == "minilm-l6-squad"


async def test_top_n_and_concurrent_requests_give_the_same_scores(built):
    question, gold, others = real_pairs(1)[0]
    texts = [gold, *others]
    alone = await built.reranking.Rerank(request(question, texts))
    concurrent = await asyncio.gather(*(built.reranking.Rerank(request(question, texts)) for _ in range(6)))
    for resp in concurrent:
        assert [(r.id, pytest.approx(r.score, abs=1e-5)) for r in resp.results] == [
            (r.id, r.score) for r in alone.results
        ]
    top = await built.reranking.Rerank(request(question, texts, top_n=2))
    assert [r.id for r in top.results] == [r.id for r in alone.results[:2]]


@pytest.fixture(scope="module")
async def adapter_tenants(built, operator, host, tmp_path_factory):
    """Tenants rr-a (two reranking adapter versions, production -> v1) and rr-b (none): each
    with a client on the adapter host (uploads) and one on the reranking host."""
    root = tmp_path_factory.mktemp("rerank-adapters")
    out = {}
    for name in ("rr-a", "rr-b"):
        resp = await operator.admin.CreateTenant(
            admin_pb2.CreateTenantRequest(tenant_id=name, create_admin_key=True)
        )
        out[name] = (
            AsyncClient(host.target, resp.admin_api_key, timeout=60),
            AsyncClient(built.target, resp.admin_api_key, timeout=60),
        )
    registry = out["rr-a"][0].adapters
    versions = []
    for seed in (1, 2):
        files = quick_reranker_adapter(root / f"s{seed}", seed=seed)
        resp = await registry.UploadAdapterVersion(
            upload_requests(
                files, adapter_name="ranker", kind=apb.ADAPTER_KIND_RERANKING, chunk_bytes=128 << 10
            )
        )
        versions.append(resp.version.version_id)
    await registry.SetAlias(apb.SetAliasRequest(adapter_name="ranker", alias="production", version=1))
    gen = synthetic_llama_adapter(root / "gen")
    await registry.UploadAdapterVersion(upload_requests(gen, adapter_name="writer", chunk_bytes=128 << 10))
    yield out, versions
    for clients in out.values():
        for c in clients:
            await c.close()


def scores(resp):
    return {r.id: r.score for r in resp.results}


async def test_each_request_is_scored_with_its_adapter_version(adapter_tenants):
    clients, (v1, v2) = adapter_tenants
    rerank = clients["rr-a"][1].reranking
    question, gold, others = real_pairs(1)[0]
    texts = [gold, *others]
    base = await rerank.Rerank(request(question, texts))
    assert base.adapter_version_id == ""
    by_ref = {}
    for ref in ("ranker", "ranker@production", "ranker@v1", "ranker@v2"):
        resp = await rerank.Rerank(request(question, texts, adapter=common_pb2.AdapterRef(ref=ref)))
        by_ref[ref] = resp
        assert resp.scoring_method == pb.SCORING_METHOD_CROSS_ENCODER
    assert [by_ref[r].adapter_version_id for r in by_ref] == [v1, v1, v1, v2]
    s_base, s1, s2 = scores(base), scores(by_ref["ranker@v1"]), scores(by_ref["ranker@v2"])
    assert max(abs(s1[k] - s_base[k]) for k in s_base) > 1e-3  # the adapter changes the scores
    assert max(abs(s1[k] - s2[k]) for k in s_base) > 1e-3
    assert scores(await rerank.Rerank(request(question, texts))) == pytest.approx(s_base, abs=1e-6)


async def test_mixed_concurrent_requests_match_sequential_ones(adapter_tenants):
    clients, _ = adapter_tenants
    rerank = clients["rr-a"][1].reranking
    refs = ["", "ranker@v1", "ranker@v2", "", "ranker@v2", "ranker@v1"]
    reqs = [
        request(q, [g, *o], adapter=common_pb2.AdapterRef(ref=ref))
        for ref, (q, g, o) in zip(refs, real_pairs(len(refs)), strict=True)
    ]
    sequential = [await rerank.Rerank(r) for r in reqs]
    concurrent = await asyncio.gather(*(rerank.Rerank(r) for r in reqs))
    for one, many in zip(sequential, concurrent, strict=True):
        assert many.adapter_version_id == one.adapter_version_id
        assert scores(many) == pytest.approx(scores(one), abs=1e-5)


async def test_an_alias_move_reaches_the_reranker(adapter_tenants):
    clients, (v1, v2) = adapter_tenants
    registry, rerank = clients["rr-a"][0].adapters, clients["rr-a"][1].reranking
    req = request("who", ["a passage"], adapter=common_pb2.AdapterRef(ref="ranker@production"))
    assert (await rerank.Rerank(req)).adapter_version_id == v1
    await registry.SetAlias(apb.SetAliasRequest(adapter_name="ranker", alias="production", version=2))
    try:
        deadline = time.monotonic() + 2.0
        while (await rerank.Rerank(req)).adapter_version_id != v2:
            assert time.monotonic() < deadline, "the alias move did not reach the reranker within 2 s"
            await asyncio.sleep(0.05)
    finally:
        await registry.SetAlias(apb.SetAliasRequest(adapter_name="ranker", alias="production", version=1))


async def test_foreign_unknown_and_wrong_kind_adapters_are_refused(adapter_tenants):
    clients, _ = adapter_tenants
    a, b = clients["rr-a"][1].reranking, clients["rr-b"][1].reranking

    def ask(client, ref):
        return client.Rerank(request("q", ["p"], adapter=common_pb2.AdapterRef(ref=ref)))

    missing = await expect_status(ask(a, "nope"), grpc.StatusCode.NOT_FOUND)
    foreign = await expect_status(ask(b, "ranker"), grpc.StatusCode.NOT_FOUND)
    assert missing.replace("nope", "X") == foreign.replace("ranker", "X")  # existence is not leaked
    await expect_status(ask(b, "ranker@v1"), grpc.StatusCode.NOT_FOUND)
    details = await expect_status(ask(a, "writer"), grpc.StatusCode.FAILED_PRECONDITION)
    assert "generation adapter, not a reranking adapter" in details
    await expect_status(ask(a, "bad name!"), grpc.StatusCode.INVALID_ARGUMENT)


@pytest.mark.parametrize(
    ("req", "code", "prefix"),
    [
        (request("", ["p"]), "INVALID_ARGUMENT", "query: must not be empty"),
        (request("q", []), "INVALID_ARGUMENT", "passages: must contain 1-1000 passages"),
        (request("q", ["p"] * 1001), "INVALID_ARGUMENT", "passages: at most 1000 passages"),
        (request("q", ["p", " "]), "INVALID_ARGUMENT", "passages[1].text: must not be empty"),
        (request("q", ["p", "x" * 16_385]), "INVALID_ARGUMENT", "passages[1].text: at most 16384 characters"),
        (request("q" * 4097, ["p"]), "INVALID_ARGUMENT", "query: at most 4096 characters"),
        (request("q", ["p"], top_n=-1), "INVALID_ARGUMENT", "top_n: must be >= 0"),
        (request("q", ["p"], model="nope"), "NOT_FOUND", "model: unknown reranker model 'nope'"),
    ],
    ids=[
        "empty-query",
        "no-passages",
        "too-many",
        "empty-passage",
        "long-passage",
        "long-query",
        "top-n",
        "model",
    ],
)
async def test_bad_input_names_the_problem(built, req, code, prefix):
    details = await expect_status(built.reranking.Rerank(req), grpc.StatusCode[code])
    assert details.startswith(prefix), details


async def test_before_the_build_the_bi_encoder_stands_in_and_says_so(client_for, operator_key):
    # The shared host's data dir has no built reranker.
    client = client_for(operator_key)
    (model,) = (await client.reranking.ListRerankerModels(pb.ListRerankerModelsRequest())).models
    assert model.scoring_method == pb.SCORING_METHOD_BI_ENCODER_COSINE
    assert "not built yet" in model.note and not model.metrics
    question, gold, others = real_pairs(1)[0]
    resp = await client.reranking.Rerank(request(question, [others[0], gold]))
    assert resp.scoring_method == pb.SCORING_METHOD_BI_ENCODER_COSINE
    assert resp.results[0].id == "p1"


async def test_a_key_is_required(client_for):
    await expect_status(
        client_for(None).reranking.Rerank(request("q", ["p"])), grpc.StatusCode.UNAUTHENTICATED
    )


async def test_the_build_is_an_idempotent_versioned_artifact(built):
    import json
    import time

    started = time.monotonic()
    path = quick_reranker()  # already built: found, not rebuilt
    assert time.monotonic() - started < 5
    manifest = json.loads((path / "lorag-model.json").read_text())
    assert manifest["version"] == path.name and manifest["recipe"]["steps"] == QUICK["steps"]
    assert manifest["dataset"]["license"] == "CC BY-SA 4.0" and (path / "model.safetensors").exists()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".build-")]  # no leftovers


def test_a_stand_in_switches_to_the_cross_encoder_once_it_is_built(tmp_path, monkeypatch):
    import shutil

    from lorag.reranking import core as rerank_core

    built = quick_reranker()
    core = rerank_core.RerankingCore(quick_settings(artifacts_dir=tmp_path), data_dir=tmp_path)
    assert core.info().method == rerank_core.BI_ENCODER_COSINE
    shutil.copytree(built, tmp_path / built.relative_to(built.parents[2]))  # `lorag prepare-models`
    monkeypatch.setattr(rerank_core, "STAND_IN_RECHECK_S", 0.0)
    info = core.info()
    assert (info.method, info.version) == (rerank_core.CROSS_ENCODER, built.name)

"""RerankingService over real gRPC (in-process host): the built cross-encoder, stand-in, limits."""

import asyncio
import os
from contextlib import contextmanager

import grpc
import pytest

from lorag.apps import APPS_BY_NAME
from lorag.client import AsyncClient
from lorag.common.hosts import start_inprocess
from lorag.common.v1 import common_pb2
from lorag.reranking.v1 import reranking_pb2 as pb
from tests.integration.conftest import expect_status
from tests.support.reranking import QUICK, QUICK_ENV, quick_reranker, quick_settings, real_pairs


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
    assert (model.name, model.is_default, model.max_seq_length) == ("minilm-l6-squad", True, 256)
    assert model.scoring_method == pb.SCORING_METHOD_CROSS_ENCODER and not model.note
    assert len(model.version) == 16 and len(model.weights_sha256) == 64
    assert {"ndcg_at_10_cross_encoder", "ndcg_at_10_bi_encoder", "ndcg_at_10_bm25"} <= set(model.metrics)


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


async def test_an_adapter_reference_answers_unimplemented_naming_the_capability(built):
    details = await expect_status(
        built.reranking.Rerank(request("q", ["p"], adapter=common_pb2.AdapterRef(ref="support@production"))),
        grpc.StatusCode.UNIMPLEMENTED,
    )
    assert details.startswith("RerankingService.Rerank with an adapter is not available: ")


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

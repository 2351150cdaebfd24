"""Every service of the contract is hosted: health, reflection, UNIMPLEMENTED placeholders."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lorag.apps import APPS, import_object
from lorag.common.rpc import all_services

from .conftest import expect_status

ALL_SERVICES = sorted(svc.full_name for spec in APPS for svc in all_services(import_object(spec.servicer)))


def test_contract_covers_every_service():
    assert ALL_SERVICES == sorted(
        [
            "lorag.adapters.v1.AdapterService",
            "lorag.adapters.v1.TrainingService",
            "lorag.admin.v1.AdminService",
            "lorag.embedding.v1.EmbeddingService",
            "lorag.generation.v1.GenerationService",
            "lorag.rag.v1.RagService",
            "lorag.reranking.v1.RerankingService",
            "lorag.retrieval.v1.RetrievalService",
        ]
    )


@pytest.mark.parametrize("service", ["", *ALL_SERVICES])
async def test_health_is_serving_for_every_service(host, service):
    async with grpc.aio.insecure_channel(host.target) as ch:
        resp = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_every_service(host):
    async with grpc.aio.insecure_channel(host.target) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = [s.name async for r in responses for s in r.list_services_response.service]
    assert set(ALL_SERVICES) <= set(names)
    assert "grpc.health.v1.Health" in names


def _pending_rpcs():
    """(service, method) of every RPC still answered by a placeholder."""
    out = []
    for spec in APPS:
        cls = import_object(spec.servicer)
        for svc in all_services(cls):
            for m in svc.methods:
                if getattr(cls, m.name).__qualname__ == m.name:  # generated placeholder
                    out.append((svc, m))
    return out


PENDING = _pending_rpcs()


def test_only_later_capabilities_are_placeholders():
    assert PENDING, "placeholders disappear as services land; update this test then"
    assert not [m.name for svc, m in PENDING if svc.full_name == "lorag.admin.v1.AdminService"]


@pytest.mark.parametrize(("svc", "method"), PENDING, ids=[f"{s.name}.{m.name}" for s, m in PENDING])
async def test_pending_rpcs_answer_unimplemented_naming_the_capability(host, operator_key, svc, method):
    from google.protobuf import message_factory

    req_cls = message_factory.GetMessageClass(method.input_type)
    resp_cls = message_factory.GetMessageClass(method.output_type)
    path = f"/{svc.full_name}/{method.name}"
    md = (("authorization", f"Bearer {operator_key}"),)
    async with grpc.aio.insecure_channel(host.target) as ch:
        kwargs = dict(request_serializer=req_cls.SerializeToString, response_deserializer=resp_cls.FromString)
        if method.client_streaming and method.server_streaming:
            call = ch.stream_stream(path, **kwargs)(iter([req_cls()]), metadata=md, timeout=5)
            awaitable = call.read()
        elif method.client_streaming:
            awaitable = ch.stream_unary(path, **kwargs)(iter([req_cls()]), metadata=md, timeout=5)
        elif method.server_streaming:
            awaitable = ch.unary_stream(path, **kwargs)(req_cls(), metadata=md, timeout=5).read()
        else:
            awaitable = ch.unary_unary(path, **kwargs)(req_cls(), metadata=md, timeout=5)
        details = await expect_status(awaitable, grpc.StatusCode.UNIMPLEMENTED)
        assert details.startswith(f"{svc.name}.{method.name} is not available: ")
        # authentication still comes first
        no_key = (
            ch.unary_unary(path, **kwargs)
            if not (method.client_streaming or method.server_streaming)
            else None
        )
        if no_key is not None:
            await expect_status(no_key(req_cls(), timeout=5), grpc.StatusCode.UNAUTHENTICATED)

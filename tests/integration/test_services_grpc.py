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


def test_every_rpc_of_the_contract_has_a_handler():
    assert not [f"{svc.name}.{m.name}" for svc, m in PENDING]


@pytest.fixture(scope="module")
async def placeholder_host(runtime):
    """A servicer that implements none of TrainingService's RPCs (every RPC kind occurs in it)."""
    from lorag.adapters.v1 import training_pb2, training_pb2_grpc
    from lorag.common.rpc import ServicerBase

    class Pending(ServicerBase):
        SERVICES = (training_pb2.DESCRIPTOR.services_by_name["TrainingService"],)
        PENDING = "the capability under test is not deployed"

    server = grpc.aio.server()
    training_pb2_grpc.add_TrainingServiceServicer_to_server(Pending(runtime), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", training_pb2.DESCRIPTOR.services_by_name["TrainingService"]
    await server.stop(0)


async def test_rpcs_without_a_handler_answer_unimplemented_naming_the_capability(
    placeholder_host, operator_key
):
    from google.protobuf import message_factory

    target, svc = placeholder_host
    md = (("authorization", f"Bearer {operator_key}"),)
    async with grpc.aio.insecure_channel(target) as ch:
        for method in svc.methods:
            req_cls = message_factory.GetMessageClass(method.input_type)
            resp_cls = message_factory.GetMessageClass(method.output_type)
            path = f"/{svc.full_name}/{method.name}"
            kwargs = dict(
                request_serializer=req_cls.SerializeToString, response_deserializer=resp_cls.FromString
            )
            if method.client_streaming and method.server_streaming:
                awaitable = ch.stream_stream(path, **kwargs)(iter([req_cls()]), metadata=md, timeout=5).read()
            elif method.client_streaming:
                awaitable = ch.stream_unary(path, **kwargs)(iter([req_cls()]), metadata=md, timeout=5)
            elif method.server_streaming:
                awaitable = ch.unary_stream(path, **kwargs)(req_cls(), metadata=md, timeout=5).read()
            else:
                awaitable = ch.unary_unary(path, **kwargs)(req_cls(), metadata=md, timeout=5)
            details = await expect_status(awaitable, grpc.StatusCode.UNIMPLEMENTED)
            assert (
                details
                == f"{svc.name}.{method.name} is not available: the capability under test is not deployed"
            )
            if not (method.client_streaming or method.server_streaming):  # authentication still comes first
                await expect_status(
                    ch.unary_unary(path, **kwargs)(req_cls(), timeout=5), grpc.StatusCode.UNAUTHENTICATED
                )

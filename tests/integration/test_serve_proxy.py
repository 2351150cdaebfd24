"""lorag.proxy on Ray Serve's own gRPC proxy server class, without a Ray cluster.

What the proxy hands to a replica for bytes that are not a valid request message, and how it
answers a call whose replica died. The same functions under a running Serve (``lorag serve`` and
a KubeRay-style ``ray start`` + ``serve deploy``) are tested in tests/e2e.
"""

from __future__ import annotations

import pickle
from unittest.mock import Mock

import grpc
import pytest
from ray.exceptions import ActorDiedError
from ray.serve._private import proxy as ray_proxy
from ray.serve._private.grpc_util import gRPCGenericServer
from ray.serve._private.proxy_request_response import gRPCStreamingType

from lorag import proxy
from lorag.admin.v1 import admin_pb2
from lorag.apps import grpc_servicer_functions, import_object
from lorag.common.parsing import MalformedRequest

NOT_PROTOBUF = b"\xff\xff\xff\xff\x0f"
RAW = {"request_serializer": None, "response_deserializer": None}  # bytes in, bytes out


@pytest.fixture
def restore_ray_proxy(monkeypatch):
    """The functions patch Ray's proxy module of this process: put it back afterwards."""
    monkeypatch.setattr(ray_proxy, "get_grpc_response_status", ray_proxy.get_grpc_response_status)


@pytest.fixture
async def proxy_server(restore_ray_proxy):
    """Serve's gRPC proxy server with every lorag.proxy function; handlers record what they get."""
    received: list = []

    def factory(service_method: str, streaming_type: gRPCStreamingType):
        async def unary(request, context):
            received.append((service_method, request))
            return b""

        async def streaming(request, context):
            received.append((service_method, request))
            if False:
                yield b""

        if streaming_type == gRPCStreamingType.UNARY_UNARY:
            return unary
        return streaming

    server = gRPCGenericServer(factory)
    port = server.add_insecure_port("127.0.0.1:0")
    for path in grpc_servicer_functions():
        import_object(path)(Mock(), server)
    await server.start()
    yield f"127.0.0.1:{port}", received
    await server.stop(0)


async def test_bad_bytes_reach_the_replica_as_a_marked_request(proxy_server):
    target, received = proxy_server
    method = "/lorag.admin.v1.AdminService/GetTenant"
    async with grpc.aio.insecure_channel(target) as ch:
        call = ch.unary_unary(method, **RAW)
        await call(NOT_PROTOBUF, timeout=10)
        await call(admin_pb2.GetTenantRequest(tenant_id="t1").SerializeToString(), timeout=10)
    (path1, bad), (path2, good) = received
    assert path1 == path2 == method
    assert isinstance(bad, MalformedRequest)
    assert good == admin_pb2.GetTenantRequest(tenant_id="t1")
    # the proxy pickles the request for the replica; there it becomes the INVALID_ARGUMENT
    error = pickle.loads(pickle.dumps(bad)).error()
    assert error.code == "INVALID_ARGUMENT"
    assert error.message.startswith("request: is not a valid lorag.admin.v1.GetTenantRequest message (")


async def test_health_bytes_are_marked_too_and_each_function_wraps_its_generated_one(proxy_server):
    target, received = proxy_server
    from grpc_health.v1 import health_pb2

    async with grpc.aio.insecure_channel(target) as ch:
        call = ch.unary_unary(
            "/grpc.health.v1.Health/Check", request_serializer=None, response_deserializer=None
        )
        await call(NOT_PROTOBUF, timeout=10)
    ((_, bad),) = received
    assert bad.type_name == health_pb2.HealthCheckRequest.DESCRIPTOR.full_name
    for generated, path in zip(proxy.FOR_PROXY, grpc_servicer_functions(), strict=True):
        assert path == f"lorag.proxy.{generated.rsplit('.', 1)[1]}"
        assert import_object(path) is proxy.FOR_PROXY[generated]


def test_a_dead_replica_is_unavailable_with_a_plain_message(restore_ray_proxy):
    internal = ray_proxy.get_grpc_response_status(ActorDiedError(), 30, "r1")
    assert internal.code == grpc.StatusCode.INTERNAL  # Ray's own answer
    import_object(grpc_servicer_functions()[0])(Mock(), Mock())  # what the proxy calls on start
    status = ray_proxy.get_grpc_response_status(ActorDiedError(), 30, "r1")
    assert (status.code, status.message) == (grpc.StatusCode.UNAVAILABLE, proxy.REPLICA_GONE)
    other = ray_proxy.get_grpc_response_status(RuntimeError("boom"), 30, "r1")
    assert other.code == grpc.StatusCode.INTERNAL  # only dead replicas change
    timeout = ray_proxy.get_grpc_response_status(TimeoutError(), 30, "r1")
    assert timeout.code == grpc.StatusCode.DEADLINE_EXCEEDED
    proxy.answer_replica_failures_as_unavailable()  # again: no second wrapper
    assert ray_proxy.get_grpc_response_status(ActorDiedError(), 30, "r1").message == proxy.REPLICA_GONE

"""SDK behaviour against real servers: metadata, deadlines, retry on UNAVAILABLE."""

import grpc
import pytest

from lorag.admin.v1 import admin_pb2 as pb
from lorag.client import AsyncClient, Client


class _Flaky(grpc.GenericRpcHandler):
    """Answers WhoAmI with UNAVAILABLE twice, then OK; records the metadata it saw."""

    def __init__(self):
        self.calls = 0
        self.metadata = []

    def service(self, handler_call_details):
        if handler_call_details.method != "/lorag.admin.v1.AdminService/WhoAmI":
            return None

        def who(request, context):
            self.calls += 1
            self.metadata.append(dict(context.invocation_metadata()))
            if self.calls <= 2:
                context.abort(grpc.StatusCode.UNAVAILABLE, "replica restarting")
            return pb.WhoAmIResponse(tenant_id="t")

        return grpc.unary_unary_rpc_method_handler(
            who,
            request_deserializer=pb.WhoAmIRequest.FromString,
            response_serializer=pb.WhoAmIResponse.SerializeToString,
        )


@pytest.fixture
def flaky_server():
    from concurrent import futures

    handler = _Flaky()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield handler, f"127.0.0.1:{port}"
    server.stop(0)


def test_sync_client_retries_unavailable_and_sends_metadata(flaky_server):
    handler, target = flaky_server
    with Client(target, api_key="k-123", timeout=5) as c:
        assert c.admin.WhoAmI(pb.WhoAmIRequest()).tenant_id == "t"
    assert handler.calls == 3
    assert handler.metadata[-1]["authorization"] == "Bearer k-123"
    assert handler.metadata[-1]["application"] == "adapters"


async def test_async_client_retries_unavailable(flaky_server):
    handler, target = flaky_server
    async with AsyncClient(target, api_key="k-123", timeout=5) as c:
        assert (await c.admin.WhoAmI(pb.WhoAmIRequest())).tenant_id == "t"
    assert handler.calls == 3


async def test_client_health_and_unknown_service(host):
    async with AsyncClient(host.target, timeout=5) as c:
        assert await c.health("adapters") == 1
        with pytest.raises(AttributeError):
            c.nonexistent  # noqa: B018

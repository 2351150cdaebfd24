"""The whole platform through Ray Serve's gRPC proxy, as `make run` starts it."""

import time

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lorag.admin.v1 import admin_pb2 as pb
from lorag.client import Client
from lorag.common.settings import APPLICATIONS

SERVICES = {
    "lorag.adapters.v1.AdapterService",
    "lorag.adapters.v1.TrainingService",
    "lorag.admin.v1.AdminService",
    "lorag.embedding.v1.EmbeddingService",
    "lorag.generation.v1.GenerationService",
    "lorag.rag.v1.RagService",
    "lorag.reranking.v1.RerankingService",
    "lorag.retrieval.v1.RetrievalService",
}


@pytest.fixture(scope="module")
def operator(platform):
    with Client(platform.target, platform.operator_key, timeout=30) as c:
        yield c


def test_bootstrap_key_was_printed_once(platform):
    assert platform.log().count(platform.operator_key) == 1


def test_grpc_proxy_listens_on_loopback_only(platform):
    listening = [
        c.laddr.ip
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == platform.grpc_port
    ]
    assert listening and all(ip in ("127.0.0.1", "::ffff:127.0.0.1") for ip in listening), listening


@pytest.mark.parametrize("app", APPLICATIONS)
def test_every_application_is_serving(platform, app):
    with grpc.insecure_channel(platform.target) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(), metadata=(("application", app),), timeout=10
        )
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_health_of_a_service_the_application_does_not_host_is_not_found(platform):
    with grpc.insecure_channel(platform.target) as ch, pytest.raises(grpc.RpcError) as info:
        health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="lorag.rag.v1.RagService"),
            metadata=(("application", "embedding"),),
            timeout=10,
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_every_service(platform):
    with grpc.insecure_channel(platform.target) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        req = reflection_pb2.ServerReflectionRequest(list_services="")
        names = {
            s.name
            for r in stub.ServerReflectionInfo(iter([req]), timeout=10)
            for s in r.list_services_response.service
        }
    assert names >= SERVICES | {"grpc.health.v1.Health"}


def test_admin_slice_end_to_end(platform, operator):
    who = operator.admin.WhoAmI(pb.WhoAmIRequest())
    assert (who.tenant_id, who.role) == ("default", pb.ROLE_OPERATOR)
    created = operator.admin.CreateTenant(
        pb.CreateTenantRequest(tenant_id="e2e-acme", display_name="Acme", create_admin_key=True)
    )
    assert "e2e-acme" in [t.tenant_id for t in operator.admin.ListTenants(pb.ListTenantsRequest()).tenants]

    with Client(platform.target, created.admin_api_key, timeout=30) as admin:
        user_key = admin.admin.CreateApiKey(pb.CreateApiKeyRequest(role=pb.ROLE_USER, description="app"))
        with Client(platform.target, user_key.api_key, timeout=30) as user:
            assert user.admin.WhoAmI(pb.WhoAmIRequest()).tenant_id == "e2e-acme"
            with pytest.raises(grpc.RpcError) as info:
                user.admin.ListApiKeys(pb.ListApiKeysRequest())
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED

            admin.admin.RevokeApiKey(pb.RevokeApiKeyRequest(key_id=user_key.key.key_id))
            revoked = time.monotonic()
            while True:
                try:
                    user.admin.WhoAmI(pb.WhoAmIRequest())
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
                    break
                time.sleep(0.05)
            assert time.monotonic() - revoked < 1.0


@pytest.mark.parametrize(
    ("call", "code", "needle"),
    [
        (
            lambda c: c.admin.CreateTenant(pb.CreateTenantRequest(tenant_id="NO WAY")),
            "INVALID_ARGUMENT",
            "tenant_id",
        ),
        (lambda c: c.admin.CreateApiKey(pb.CreateApiKeyRequest(role=42)), "INVALID_ARGUMENT", "role"),
        (
            lambda c: c.admin.RevokeApiKey(pb.RevokeApiKeyRequest(key_id="feedfacefeedface")),
            "NOT_FOUND",
            "key",
        ),
        (
            lambda c: c.admin.CreateTenant(
                pb.CreateTenantRequest(tenant_id="big", display_name="x" * 300_000)
            ),
            "RESOURCE_EXHAUSTED",
            "262144",
        ),
    ],
)
def test_bad_input_gets_a_clear_status_through_the_proxy(operator, call, code, needle):
    with pytest.raises(grpc.RpcError) as info:
        call(operator)
    assert info.value.code().name == code
    assert needle in info.value.details()
    assert "Traceback" not in info.value.details() and "ray::" not in info.value.details()


def test_unauthenticated_through_the_proxy(platform):
    with (
        Client(platform.target, "not-a-real-key-000000", timeout=30) as c,
        pytest.raises(grpc.RpcError) as info,
    ):
        c.admin.WhoAmI(pb.WhoAmIRequest())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


NOT_PROTOBUF = b"\xff\xff\xff\xff\x0f"  # a varint that never ends
RAW = {"request_serializer": None, "response_deserializer": None}  # bytes in, bytes out


def _raw_call(target: str, method: str, kind: str, metadata: tuple) -> None:
    """Send NOT_PROTOBUF (the only message of a client stream) and read the whole answer."""
    with grpc.insecure_channel(target) as ch:
        call = getattr(ch, kind)(f"/{method}", **RAW)
        result = call(
            iter([NOT_PROTOBUF]) if kind.startswith("stream") else NOT_PROTOBUF, metadata=metadata, timeout=60
        )
        if kind.endswith("_stream"):
            list(result)


@pytest.mark.parametrize(
    ("app", "method", "kind", "request_type"),
    [
        (
            "adapters",
            "lorag.admin.v1.AdminService/GetTenant",
            "unary_unary",
            "lorag.admin.v1.GetTenantRequest",
        ),
        (
            "generation",
            "lorag.generation.v1.GenerationService/GenerateStream",
            "unary_stream",
            "lorag.generation.v1.GenerateStreamRequest",
        ),
        (
            "adapters",
            "lorag.adapters.v1.TrainingService/UploadDataset",
            "stream_unary",
            "lorag.adapters.v1.UploadDatasetRequest",
        ),
        ("rag", "lorag.rag.v1.RagService/Ingest", "stream_stream", "lorag.rag.v1.IngestRequest"),
    ],
    ids=["unary", "server-stream", "client-stream", "bidi-stream"],
)
def test_bytes_that_are_not_the_request_message_are_invalid_argument(
    platform, app, method, kind, request_type
):
    """Ray's proxy parses the request; lorag.proxy's parsers let the replica answer (after
    authentication) instead of the proxy's UNKNOWN naming Python's DecodeError."""
    md = (("application", app), ("authorization", f"Bearer {platform.operator_key}"))
    with pytest.raises(grpc.RpcError) as info:
        _raw_call(platform.target, method, kind, md)
    error = info.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert error.details().startswith(f"request: is not a valid {request_type} message ("), error.details()
    with pytest.raises(grpc.RpcError) as info:  # no key: refused before the request is looked at
        _raw_call(platform.target, method, kind, (("application", app),))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, (info.value.code(), info.value.details())


def _placeholder_per_rpc_kind():
    """(application, service, method) of one RPC still answered by a placeholder, per RPC kind."""
    from lorag.apps import APPS, import_object
    from lorag.common.rpc import all_services

    found = {}
    for spec in APPS:
        cls = import_object(spec.servicer)
        for svc in all_services(cls):
            for m in svc.methods:
                if getattr(cls, m.name).__qualname__ == m.name:  # generated placeholder
                    found.setdefault((m.client_streaming, m.server_streaming), (spec.name, svc, m))
    return found


def test_every_rpc_of_the_contract_has_a_handler():
    """No RPC is answered by a generated UNIMPLEMENTED placeholder any more (the placeholder
    mechanism itself is tested in tests/integration/test_services_grpc.py)."""
    assert _placeholder_per_rpc_kind() == {}

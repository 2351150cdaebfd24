"""Per-tenant limits behind Ray Serve's gRPC proxy: RESOURCE_EXHAUSTED with its retry hint."""

import grpc

from lorag.admin.v1 import admin_pb2 as pb
from lorag.client import Client


def test_a_tenant_over_its_quota_rate_gets_resource_exhausted_through_the_proxy(platform):
    with Client(platform.target, platform.operator_key, timeout=30) as operator:
        created = operator.admin.CreateTenant(
            pb.CreateTenantRequest(
                tenant_id="e2e-limited",
                create_admin_key=True,
                quota=pb.TenantQuota(max_requests_per_minute=1),
            )
        )
        codes = []
        with Client(platform.target, created.admin_api_key, timeout=30) as c:
            # Each replica of the `adapters` application holds its own bucket of one request per
            # minute: with R replicas, at most R of these calls pass.
            for _ in range(10):
                try:
                    c.admin.WhoAmI(pb.WhoAmIRequest())
                    codes.append("OK")
                except grpc.RpcError as exc:
                    codes.append(exc.code().name)
                    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        details, trailing = exc.details(), dict(exc.trailing_metadata() or ())
                        break
        assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"} and codes[-1] == "RESOURCE_EXHAUSTED", codes
        assert "the tenant's quota max_requests_per_minute=1" in details
        assert "Traceback" not in details and "ray::" not in details
        assert 0 < int(trailing["retry-after-ms"]) <= 60_000  # the hint survives the proxy
        assert trailing["grpc-retry-pushback-ms"] == "-1"  # longer than gRPC retries wait for
        assert operator.admin.WhoAmI(pb.WhoAmIRequest()).tenant_id == "default"  # others unaffected

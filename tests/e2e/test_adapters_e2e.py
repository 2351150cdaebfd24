"""Adapter upload (client stream), download (server stream) and watch through Ray Serve's gRPC proxy."""

import grpc
import pytest

from lorag.adapters.transfer import upload_requests, write_download
from lorag.adapters.v1 import adapters_pb2 as pb
from lorag.admin.v1 import admin_pb2
from lorag.client import Client
from lorag.common.v1 import common_pb2
from tests.support.adapters import synthetic_llama_adapter

CHUNK = 64 * 1024  # the e2e platform accepts messages up to 256 KiB


@pytest.fixture(scope="module")
def tenant_admin(platform):
    with Client(platform.target, platform.operator_key, timeout=60) as op:
        resp = op.admin.CreateTenant(
            admin_pb2.CreateTenantRequest(tenant_id="e2e-adapters", create_admin_key=True)
        )
    with Client(platform.target, resp.admin_api_key, timeout=60) as c:
        yield c


def test_upload_promote_resolve_download_through_the_proxy(tenant_admin, tmp_path):
    c = tenant_admin
    d1 = synthetic_llama_adapter(tmp_path / "v1", seed=1)
    d2 = synthetic_llama_adapter(tmp_path / "v2", seed=2)
    v1 = c.adapters.UploadAdapterVersion(
        upload_requests(d1, adapter_name="e2e-bot", chunk_bytes=CHUNK)
    ).version
    v2 = c.adapters.UploadAdapterVersion(
        upload_requests(d2, adapter_name="e2e-bot", chunk_bytes=CHUNK)
    ).version
    assert (v1.version, v2.version) == (1, 2)

    c.adapters.SetAlias(pb.SetAliasRequest(adapter_name="e2e-bot", alias="production", version=1))
    watch = c.adapters.WatchRevisions(pb.WatchRevisionsRequest(), timeout=60)
    head = next(watch)
    c.adapters.SetAlias(pb.SetAliasRequest(adapter_name="e2e-bot", alias="production", version=2))
    event = next(watch).event
    watch.cancel()
    assert (event.type, event.version_id) == (pb.ADAPTER_EVENT_TYPE_ALIAS_SET, v2.version_id)
    assert event.revision > head.revision

    rolled = c.adapters.Rollback(pb.RollbackRequest(adapter_name="e2e-bot", alias="production"))
    assert rolled.alias.version_id == v1.version_id
    resolved = c.adapters.Resolve(
        pb.ResolveRequest(ref=common_pb2.AdapterRef(ref="e2e-bot"), request_id="q1")
    )
    assert (resolved.version_id, resolved.alias) == (v1.version_id, "production")

    version = write_download(
        c.adapters.Download(pb.DownloadRequest(version_id=v1.version_id)), tmp_path / "dl"
    )
    assert version.sha256 == v1.sha256
    assert (tmp_path / "dl" / "adapter_model.safetensors").read_bytes() == (
        d1 / "adapter_model.safetensors"
    ).read_bytes()


def test_bad_uploads_get_clear_statuses_through_the_proxy(tenant_admin, tmp_path):
    d = synthetic_llama_adapter(tmp_path / "bad", rank=128)
    with pytest.raises(grpc.RpcError) as info:
        tenant_admin.adapters.UploadAdapterVersion(
            upload_requests(d, adapter_name="too-big", chunk_bytes=CHUNK)
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rank r=128 is above the limit" in info.value.details()
    assert "Traceback" not in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        list(tenant_admin.adapters.Download(pb.DownloadRequest(version_id="av_000000000000000000000000")))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

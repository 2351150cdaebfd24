"""Secrets never reach logs, gRPC error details or the repr of settings.

The host runs on a Postgres registry whose URL carries a password and an S3 blob store (moto)
with a secret key, with a configured server secret and bootstrap key. Every logger records at
DEBUG while valid, invalid, revoked and malformed API keys are sent; then no secret string may
appear in any record (message, arguments, traceback), any error detail, or any settings repr.
"""

from __future__ import annotations

import json
import logging
import secrets

import grpc
import pytest

from lorag.adapters.settings import AdapterSettings
from lorag.admin.v1 import admin_pb2 as admin_pb
from lorag.apps import APPS_BY_NAME
from lorag.client import AsyncClient, LoragClientError
from lorag.common.hosts import start_inprocess
from lorag.common.rpc import Runtime
from lorag.common.settings import LoragSettings
from lorag.retrieval.settings import RetrievalSettings
from tests.support.adapters import synthetic_llama_adapter
from tests.support.postgres import start_postgres
from tests.support.s3 import start_s3


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.texts: list[str] = []
        self._formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        try:
            text = self._formatter.format(record)  # message, args and any traceback
        except Exception as exc:  # noqa: BLE001 - a record that cannot format still gets checked
            text = f"{record.msg!r} {record.args!r} {exc!r}"
        self.texts.append(f"{text} {record.__dict__!r}")


@pytest.fixture
def debug_logs():
    """Every logger, existing or created later, records at DEBUG into one handler."""
    handler = _Everything()
    root = logging.getLogger()
    saved = {
        name: lg.level
        for name, lg in logging.root.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    saved_root = root.level
    saved_disabled = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    for name in saved:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)  # also loggers that do not propagate
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    root.setLevel(saved_root)
    for name, level in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.removeHandler(handler)
    for name, lg in logging.root.manager.loggerDict.items():
        if isinstance(lg, logging.Logger) and name not in saved:
            lg.removeHandler(handler)
    logging.disable(saved_disabled)


@pytest.fixture(scope="module")
def backends():
    pg = start_postgres("lorag_secrets")
    s3 = start_s3()
    s3.create_bucket("lorag-secrets")
    yield pg, s3
    s3.stop()
    pg.stop()


async def test_no_secret_in_logs_error_details_or_settings(backends, debug_logs, tmp_path, monkeypatch):
    pg, s3 = backends
    pg_password = "pgpw-" + secrets.token_hex(12)
    s3_secret = "s3sk-" + secrets.token_hex(16)
    auth_secret = "hmac-" + secrets.token_hex(24)
    bootstrap_key = "lrg_boot_" + secrets.token_urlsafe(24)
    registry_url = pg.url.replace("lorag@", f"lorag:{pg_password}@")  # trust auth accepts any password
    blob_options = {
        **s3.storage_options(),
        "key": "AKIATEST" + secrets.token_hex(4).upper(),
        "secret": s3_secret,
    }
    monkeypatch.setenv("LORAG_ADAPTERS_BLOB_URL", "s3://lorag-secrets/adapters")
    monkeypatch.setenv("LORAG_ADAPTERS_BLOB_OPTIONS", json.dumps(blob_options))
    monkeypatch.setenv("LORAG_RETRIEVAL_MILVUS_URI", f"http://milvus:{pg_password}@127.0.0.1:1")

    settings = LoragSettings(
        data_dir=tmp_path / "data",
        registry_url=registry_url,
        auth_secret=auth_secret,
        bootstrap_api_key=bootstrap_key,
        auth_cache_ttl_s=0,
    )
    runtime = Runtime.build(settings)
    host = None
    details: list[str] = []
    keys: list[str] = [bootstrap_key]
    try:
        runtime.tenants.bootstrap(bootstrap_key)
        host = await start_inprocess(runtime, apps=(APPS_BY_NAME["adapters"],), port=0)

        async def call(key: str | None, fn, *, expect_ok: bool):
            async with AsyncClient(host.target, key, timeout=20) as c:
                try:
                    result = await fn(c)
                except LoragClientError as exc:
                    details.append(f"{exc.code.name} {exc.message} {exc!r} {exc}")
                    assert not expect_ok, exc
                    return None
                assert expect_ok, f"expected a failure, got {result!r}"
                return result

        # valid keys: the bootstrap operator, a tenant admin, a user
        await call(bootstrap_key, lambda c: c.admin.whoami(), expect_ok=True)
        tenant = await call(
            bootstrap_key, lambda c: c.admin.create_tenant("sec-acme", admin_key=True), expect_ok=True
        )
        admin_key = tenant.admin_api_key
        keys.append(admin_key)
        user = await call(admin_key, lambda c: c.admin.create_key(role="user"), expect_ok=True)
        keys.append(user.api_key)
        adapter_dir = synthetic_llama_adapter(tmp_path / "adapter")
        await call(admin_key, lambda c: c.adapters.upload(adapter_dir, name="sec-bot"), expect_ok=True)
        await call(user.api_key, lambda c: c.adapters.list(), expect_ok=True)
        await call(user.api_key, lambda c: c.adapters.get("nope"), expect_ok=False)
        await call(user.api_key, lambda c: c.admin.create_key(role="admin"), expect_ok=False)

        # a revoked key
        revoked = await call(admin_key, lambda c: c.admin.create_key(role="user"), expect_ok=True)
        keys.append(revoked.api_key)
        await call(admin_key, lambda c: c.admin.revoke_key(revoked.key.key_id), expect_ok=True)
        await call(revoked.api_key, lambda c: c.admin.whoami(), expect_ok=False)

        # invalid and malformed keys
        bad = [
            "lrg_0123456789abcdef_" + secrets.token_urlsafe(32),  # well formed, unknown
            admin_key[:-4] + "AAAA",  # one character off a valid key
            "not-a-key-" + secrets.token_hex(8),
            "x" * 5000 + secrets.token_hex(8),  # very long
            "lrg_" + secrets.token_hex(8) + ' "quoted" <tag> %s {}',  # format characters
        ]
        keys.extend(bad)
        for key in bad:
            await call(key, lambda c: c.admin.whoami(), expect_ok=False)
        # malformed authorization metadata (wrong scheme, no scheme), sent raw
        raw_secrets = ["basic-" + secrets.token_hex(12), "schemeless-" + secrets.token_hex(12)]
        keys.extend(raw_secrets)
        async with grpc.aio.insecure_channel(host.target) as channel:
            from lorag.admin.v1 import admin_pb2_grpc

            stub = admin_pb2_grpc.AdminServiceStub(channel)
            for value in (f"Basic {raw_secrets[0]}", raw_secrets[1]):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.WhoAmI(
                        admin_pb.WhoAmIRequest(), metadata=[("authorization", value)], timeout=10
                    )
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
                details.append(f"{info.value.details()} {info.value.debug_error_string()} {info.value!r}")
    finally:
        if host is not None:
            await host.stop(0)
        runtime.usage.close()
        runtime.close()

    reprs = [
        repr(settings),
        str(settings),
        repr(runtime),
        repr(AdapterSettings()),
        str(AdapterSettings()),
        repr(RetrievalSettings()),
        repr(runtime.tenants.hasher),
    ]
    assert "lorag:***@" in repr(settings)  # redacted, but still says which registry
    secret_values = {
        "postgres password": pg_password,
        "S3 secret key": s3_secret,
        "server secret": auth_secret,
        **{f"API key {i}": k for i, k in enumerate(keys)},
    }
    assert len(debug_logs.records) > 50, "DEBUG logging was not captured"
    assert any(r.name.startswith("sqlalchemy") for r in debug_logs.records)  # statements logged too
    assert len(details) >= 10
    for what, value in secret_values.items():
        needle = value[-24:] if len(value) > 24 else value  # a long key: its tail is what identifies it
        for text in debug_logs.texts:
            assert needle not in text, f"{what} in a log record: {text[:500]}"
        for detail in details:
            assert needle not in detail, f"{what} in an error detail: {detail[:500]}"
        for text in reprs:
            assert needle not in text, f"{what} in a repr: {text[:500]}"

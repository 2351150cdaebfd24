"""TLS and mutual TLS on the in-process host, over real gRPC on 127.0.0.1, with CAs made here."""

import asyncio

import pytest
from click.testing import CliRunner

from lorag.apps import APPS_BY_NAME
from lorag.client import AsyncClient, TLSConfig, UnauthenticatedError, UnavailableError
from lorag.common.errors import FailedPrecondition
from lorag.common.hosts import start_inprocess
from lorag.common.rpc import Runtime
from lorag.common.settings import LoragSettings
from tests.support.tls import TestCA

APPS = (APPS_BY_NAME["adapters"],)  # admin, adapters, training: enough to prove the transport


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    ca, other = TestCA(root, "trusted"), TestCA(root, "other")
    return {
        "ca": ca,
        "other": other,
        "server": ca.issue("server", server=True),
        "client": ca.issue("client", server=False),
        "foreign_client": other.issue("client", server=False),
    }


async def _host(tmp_path, **tls):
    settings = LoragSettings(data_dir=tmp_path / "data", **tls)
    runtime = Runtime.build(settings)
    key = runtime.tenants.bootstrap()
    host = await start_inprocess(runtime, apps=APPS, port=0)
    return runtime, host, key


@pytest.fixture
async def tls_host(tmp_path, pki):
    runtime, host, key = await _host(
        tmp_path, tls_cert_file=pki["server"].cert, tls_key_file=pki["server"].key
    )
    yield host, key
    await host.stop(0)
    runtime.usage.close()
    runtime.close()


@pytest.fixture
async def mtls_host(tmp_path, pki):
    runtime, host, key = await _host(
        tmp_path,
        tls_cert_file=pki["server"].cert,
        tls_key_file=pki["server"].key,
        tls_client_ca_file=pki["ca"].cert_path,
    )
    yield host, key
    await host.stop(0)
    runtime.usage.close()
    runtime.close()


async def _whoami(target: str, key: str | None, tls: TLSConfig | None, *, timeout: float = 5):
    async with AsyncClient(target, key, timeout=timeout, tls=tls) as c:
        return await c.admin.whoami()


async def test_tls_works_with_the_ca_and_the_key_still_decides_the_tenant(tls_host, pki):
    host, key = tls_host
    assert host.tls and not host.mutual_tls
    who = await _whoami(host.target, key, TLSConfig(ca_file=pki["ca"].cert_path))
    assert who.tenant_id == "default"
    # by DNS name too (the certificate names localhost and 127.0.0.1)
    who = await _whoami(f"localhost:{host.port}", key, TLSConfig(ca_file=pki["ca"].cert_path))
    assert who.tenant_id == "default"
    with pytest.raises(UnauthenticatedError):  # TLS does not replace the API key
        await _whoami(host.target, None, TLSConfig(ca_file=pki["ca"].cert_path))


async def test_a_plaintext_client_cannot_talk_to_a_tls_port(tls_host):
    host, key = tls_host
    with pytest.raises(UnavailableError):
        await _whoami(host.target, key, None, timeout=3)


async def test_a_client_that_does_not_trust_the_server_ca_is_refused(tls_host, pki):
    host, key = tls_host
    with pytest.raises(UnavailableError):
        await _whoami(host.target, key, TLSConfig(ca_file=pki["other"].cert_path), timeout=3)
    with pytest.raises(UnavailableError):  # the certificate does not name this host
        await _whoami(
            host.target,
            key,
            TLSConfig(ca_file=pki["ca"].cert_path, server_name="lorag.example.com"),
            timeout=3,
        )


async def test_mtls_refuses_a_client_without_a_certificate(mtls_host, pki):
    host, key = mtls_host
    assert host.mutual_tls
    with pytest.raises(UnavailableError):
        await _whoami(host.target, key, TLSConfig(ca_file=pki["ca"].cert_path), timeout=3)


async def test_mtls_refuses_a_certificate_from_another_ca(mtls_host, pki):
    host, key = mtls_host
    foreign = pki["foreign_client"]
    tls = TLSConfig(ca_file=pki["ca"].cert_path, cert_file=foreign.cert, key_file=foreign.key)
    with pytest.raises(UnavailableError):
        await _whoami(host.target, key, tls, timeout=3)


async def test_mtls_accepts_a_certificate_of_the_client_ca(mtls_host, pki):
    host, key = mtls_host
    client = pki["client"]
    tls = TLSConfig(ca_file=pki["ca"].cert_path, cert_file=client.cert, key_file=client.key)
    who = await _whoami(host.target, key, tls)
    assert who.tenant_id == "default" and who.role == "operator"
    with pytest.raises(UnauthenticatedError):  # a valid certificate is not an API key
        await _whoami(host.target, None, tls)


async def test_the_cli_reaches_an_mtls_host_through_the_environment(mtls_host, pki, tmp_path):
    from lorag.cli import cli

    host, key = mtls_host
    client = pki["client"]
    env = {
        "LORAG_CONFIG": str(tmp_path / "none.toml"),
        "LORAG_ENDPOINT": host.target,
        "LORAG_API_KEY": key,
        "LORAG_TLS_CA": str(pki["ca"].cert_path),
        "LORAG_TLS_CERT": str(client.cert),
        "LORAG_TLS_KEY": str(client.key),
    }
    runner = CliRunner()
    ok = await asyncio.to_thread(runner.invoke, cli, ["admin", "whoami"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "default" in ok.output
    env.pop("LORAG_TLS_CERT"), env.pop("LORAG_TLS_KEY")
    refused = await asyncio.to_thread(runner.invoke, cli, ["--timeout", "3", "admin", "whoami"], env=env)
    assert refused.exit_code == 1 and "UNAVAILABLE" in refused.output


async def test_the_cli_reads_tls_settings_from_the_config_file(tls_host, pki, tmp_path):
    from lorag.cli import cli

    host, key = tls_host
    (tmp_path / "ca.pem").write_bytes(pki["ca"].cert_path.read_bytes())
    config = tmp_path / "config.toml"
    config.write_text(f'endpoint = "{host.target}"\napi_key = "{key}"\ntls_ca = "ca.pem"\n')
    env = {"LORAG_CONFIG": str(config)}
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, cli, ["admin", "whoami"], env=env)
    assert result.exit_code == 0, result.output
    shown = await asyncio.to_thread(runner.invoke, cli, ["config", "show"], env=env)
    assert str(tmp_path / "ca.pem") in shown.output and "tls          on" in shown.output
    plain = await asyncio.to_thread(
        runner.invoke, cli, ["--no-tls", "--timeout", "3", "admin", "whoami"], env=env
    )
    assert plain.exit_code == 1 and "UNAVAILABLE" in plain.output


async def test_unreadable_or_non_pem_tls_files_fail_at_start_with_the_setting_named(tmp_path, pki):
    (tmp_path / "junk.pem").write_text("not a certificate")
    for cert, what in ((tmp_path / "missing.pem", "cannot read"), (tmp_path / "junk.pem", "not PEM")):
        settings = LoragSettings(
            data_dir=tmp_path / "data", tls_cert_file=cert, tls_key_file=pki["server"].key
        )
        runtime = Runtime.build(settings)
        try:
            with pytest.raises(FailedPrecondition) as info:
                await start_inprocess(runtime, apps=APPS, port=0)
            assert what in str(info.value) and "LORAG_TLS_CERT_FILE" in str(info.value)
        finally:
            runtime.usage.close()
        runtime.close()


def test_tls_settings_must_come_in_pairs(tmp_path, pki):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="set together"):
        LoragSettings(data_dir=tmp_path, tls_cert_file=pki["server"].cert)
    with pytest.raises(ValidationError, match="mTLS"):
        LoragSettings(data_dir=tmp_path, tls_client_ca_file=pki["ca"].cert_path)

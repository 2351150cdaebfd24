"""charts/lorag security values: the server secret of API key hashes, TLS and mutual TLS at the
Ingress (Ray Serve's gRPC proxy has none of its own)."""

from __future__ import annotations

import base64

import pytest

from tests.support.helm import CHART, find, helm_template, ray_pod_specs, render, require_tools


@pytest.fixture(scope="module", autouse=True)
def _helm():
    require_tools()


def _lorag_containers(docs: list[dict]):
    """Every container that runs lorag code (Ray head/workers, their init containers, training)."""
    for spec in ray_pod_specs(docs):
        yield from spec.get("initContainers", [])
        yield from spec["containers"]


def _env(container: dict, name: str) -> dict | None:
    return next((e for e in container.get("env", []) if e["name"] == name), None)


def test_every_lorag_container_gets_one_generated_auth_secret_that_is_kept():
    docs = render("--set", "training.enabled=true")
    (secret,) = find(docs, "Secret", "lorag-auth")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    value = base64.b64decode(secret["data"]["secret"]).decode()
    assert len(value) >= 32 and value not in (CHART / "values.yaml").read_text()
    (again,) = find(render(), "Secret", "lorag-auth")
    assert again["data"]["secret"] != secret["data"]["secret"]  # random, not a default

    containers = list(_lorag_containers(docs))
    assert {c["name"] for c in containers} >= {"bootstrap", "ray-head", "ray-worker"}
    assert any(d["kind"] == "RayJob" for d in docs)
    for c in containers:
        env = _env(c, "LORAG_AUTH_SECRET")
        assert env == {
            "name": "LORAG_AUTH_SECRET",
            "valueFrom": {"secretKeyRef": {"name": "lorag-auth", "key": "secret"}},
        }, c["name"]
        assert _env(c, "LORAG_AUTH_PREVIOUS_SECRET") is None


def test_an_existing_auth_secret_and_a_rotation_key():
    docs = render(
        "--set", "auth.existingSecret=lorag-keys",
        "--set", "auth.secretKey=current",
        "--set", "auth.previousSecretKey=previous",
    )  # fmt: skip
    assert not find(docs, "Secret", "lorag-auth")
    for c in _lorag_containers(docs):
        assert _env(c, "LORAG_AUTH_SECRET")["valueFrom"]["secretKeyRef"] == {
            "name": "lorag-keys",
            "key": "current",
        }
        assert _env(c, "LORAG_AUTH_PREVIOUS_SECRET")["valueFrom"]["secretKeyRef"] == {
            "name": "lorag-keys",
            "key": "previous",
        }


def test_ingress_terminates_tls_and_can_require_client_certificates():
    base = ["--set", "ingress.enabled=true", "--set", "ingress.tlsSecretName=lorag-tls"]
    (ingress,) = find(render(*base), "Ingress")
    assert ingress["spec"]["tls"] == [{"hosts": ["lorag.example.com"], "secretName": "lorag-tls"}]
    assert ingress["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"}

    (ingress,) = find(render(*base, "--set", "ingress.clientCASecret=lorag/lorag-client-ca"), "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC"
    assert annotations["nginx.ingress.kubernetes.io/auth-tls-secret"] == "lorag/lorag-client-ca"
    assert annotations["nginx.ingress.kubernetes.io/auth-tls-verify-client"] == "on"
    assert annotations["nginx.ingress.kubernetes.io/auth-tls-verify-depth"] == "1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "ingress.enabled=true", "--set", "ingress.clientCASecret=lorag/ca"],
            "needs ingress.tlsSecretName",
        ),
        (["--set", "ingress.clientCASecret=no-namespace"], "clientCASecret"),
        (["--set", "auth.secretKey=has space"], "secretKey"),
        (["--set", "auth.secrte=x"], "secrte"),
    ],
)
def test_contradictory_or_misspelt_security_values_are_refused(args, message):
    proc = helm_template(*args)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_the_ci_value_set_with_an_external_milvus_rotates_and_requires_client_certificates():
    docs = render("-f", str(CHART / "ci" / "external-milvus-values.yaml"))
    assert not find(docs, "Secret", "lorag-auth")
    (ingress,) = find(docs, "Ingress")
    assert (
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-tls-secret"]
        == "lorag/lorag-client-ca"
    )
    for c in _lorag_containers(docs):
        assert _env(c, "LORAG_AUTH_PREVIOUS_SECRET")["valueFrom"]["secretKeyRef"]["name"] == "lorag-auth-keys"

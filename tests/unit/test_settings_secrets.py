"""Settings never print their secrets: SecretStr fields, passwords in URLs, blob credentials."""

import pytest
from pydantic import ValidationError

from lorag.adapters.settings import AdapterSettings
from lorag.common.settings import LoragSettings, redact_url
from lorag.retrieval.settings import RetrievalSettings


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://lorag:pw-123@db:5432/lorag", "postgresql+psycopg://lorag:***@db:5432/lorag"),
        ("postgresql://:only-pw@db/x", "postgresql://:***@db/x"),
        ("http://token-only@milvus:19530", "http://token-only:***@milvus:19530"),
        ("sqlite:////var/lib/lorag/registry.db", "sqlite:////var/lib/lorag/registry.db"),
        ("s3://bucket/adapters", "s3://bucket/adapters"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_reprs_hide_every_secret(tmp_path, monkeypatch):
    settings = LoragSettings(
        data_dir=tmp_path,
        registry_url="postgresql+psycopg://lorag:pg-secret-1@db/lorag",
        auth_secret="a" * 40,
        auth_previous_secret="b" * 40,
        bootstrap_api_key="lrg_bootstrap_secret_value",
    )
    monkeypatch.setenv("LORAG_ADAPTERS_BLOB_OPTIONS", '{"key": "AKIA1", "secret": "s3-secret-2"}')
    monkeypatch.setenv("LORAG_ADAPTERS_BLOB_URL", "s3://user:blob-secret-3@bucket/x")
    monkeypatch.setenv("LORAG_RETRIEVAL_MILVUS_URI", "http://root:milvus-secret-4@milvus:19530")
    monkeypatch.setenv("LORAG_RETRIEVAL_MILVUS_TOKEN", "root:milvus-token-5")
    texts = [
        repr(settings),
        str(settings),
        repr(AdapterSettings()),
        str(AdapterSettings()),
        repr(RetrievalSettings()),
    ]
    for secret in ("pg-secret-1", "a" * 40, "b" * 40, "lrg_bootstrap_secret_value", "s3-secret-2", "AKIA1"):
        assert all(secret not in t for t in texts), secret
    for secret in ("blob-secret-3", "milvus-secret-4", "milvus-token-5"):
        assert all(secret not in t for t in texts), secret
    assert "lorag:***@db/lorag" in repr(settings)  # still says which registry
    assert settings.resolved_registry_url.endswith("pg-secret-1@db/lorag")  # the real value is intact
    assert AdapterSettings().blob_options["secret"] == "s3-secret-2"


def test_a_malformed_blob_options_value_is_not_echoed_in_the_error(monkeypatch):
    monkeypatch.setenv("LORAG_ADAPTERS_BLOB_OPTIONS", '["s3-secret-6"]')
    with pytest.raises(ValidationError) as info:
        AdapterSettings()
    assert "blob_options" in str(info.value) and "s3-secret-6" not in str(info.value)

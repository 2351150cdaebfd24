"""Shared test setup: no traffic leaves the machine; tiers are marked by directory."""

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["LORAG_LOG_JSON"] = "false"
# Models built or converted locally are cached across runs (never downloaded).
os.environ.setdefault("LORAG_MODELS_DIR", os.path.expanduser("~/.cache/lorag/models"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        for tier in ("unit", "integration", "e2e"):
            if f"/tests/{tier}/" in str(item.fspath):
                item.add_marker(getattr(pytest.mark, tier))

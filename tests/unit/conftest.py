"""Unit tier: pure logic. Importing Ray, starting a gRPC server or opening a network socket fails.

The tier runs in its own pytest process (`make test-fast`), so these guards hold for the whole run.
"""

import importlib.abc
import socket
import sys

import grpc
import grpc.aio
import pytest


class _NoRay(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"unit tests must not import {name!r}; move the test to tests/e2e")
        return None


if any(m == "ray" or m.startswith("ray.") for m in sys.modules):
    raise RuntimeError("ray was imported before the unit tier started; run tests/unit on its own")
sys.meta_path.insert(0, _NoRay())


def _forbidden(what):
    def fail(*args, **kwargs):
        raise RuntimeError(f"unit tests must not {what}; move the test to tests/integration")

    return fail


@pytest.fixture(autouse=True)
def _no_servers_no_network(monkeypatch):
    monkeypatch.setattr(grpc, "server", _forbidden("start a gRPC server"))
    monkeypatch.setattr(grpc.aio, "server", _forbidden("start a gRPC server"))
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        raise RuntimeError("unit tests must not open network connections")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "bind", _forbidden("bind network sockets"))


@pytest.fixture
def settings(tmp_path, monkeypatch):
    from lorag.common.settings import LoragSettings

    monkeypatch.setenv("LORAG_DATA_DIR", str(tmp_path / "data"))
    return LoragSettings()


@pytest.fixture
def store(settings):
    from lorag.common.db import Database
    from lorag.common.tenancy import TenantStore

    db = Database(settings.resolved_registry_url)
    yield TenantStore(db)
    db.dispose()

"""E2E tier: the real `lorag serve` (Ray Serve, gRPC proxy, six applications) in a subprocess.

One Ray instance serves the whole session; tests talk to it over gRPC on 127.0.0.1 only. At the
end the fixture sends SIGINT (Ctrl-C) and checks that the platform shut down cleanly.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lorag.common.settings import APPLICATIONS

START_TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Platform:
    def __init__(self, proc, target, data_dir, log_path, operator_key, metrics_port):
        self.proc = proc
        self.metrics_port = metrics_port  # Ray's metrics export port: ray_serve_* and lorag's
        self.target = target
        self.data_dir = data_dir
        self.log_path = log_path
        self.operator_key = operator_key
        self.grpc_port = int(target.rsplit(":", 1)[1])

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")


def _wait_healthy(target: str, proc, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with grpc.insecure_channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"lorag serve exited early:\n{log_path.read_text()[-4000:]}")
            if "Press Ctrl-C to stop." in log_path.read_text(errors="replace"):
                try:
                    for app in APPLICATIONS:
                        stub.Check(
                            health_pb2.HealthCheckRequest(), metadata=(("application", app),), timeout=5
                        )
                    return
                except grpc.RpcError:
                    pass
            time.sleep(1)
    raise RuntimeError(f"lorag serve did not become healthy:\n{log_path.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def otlp_collector():
    """Receives the spans every Ray process exports (OTLP/HTTP on 127.0.0.1)."""
    from tests.support.otlp import OtlpCollector

    collector = OtlpCollector()
    yield collector
    collector.stop()


@pytest.fixture(scope="session")
def platform(tmp_path_factory, otlp_collector):
    data_dir = tmp_path_factory.mktemp("lorag-e2e")
    log_path = data_dir / "serve.log"
    port, http_port, metrics_port = _free_port(), _free_port(), _free_port()
    env = dict(os.environ)
    env.update(
        LORAG_DATA_DIR=str(data_dir),
        LORAG_GRPC_PORT=str(port),
        LORAG_MAX_MESSAGE_BYTES=str(256 * 1024),
        LORAG_METRICS_EXPORT_PORT=str(metrics_port),
        RAY_metrics_report_interval_ms="1000",  # replicas report to Ray's agent every second
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_collector.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="500",
        LORAG_BOOTSTRAP_API_KEY="",
        RAY_USAGE_STATS_ENABLED="0",
        # Training jobs run as Ray tasks, as in production (not in a thread of the replica).
        LORAG_TRAINING_RUNNER="ray",
        LORAG_TRAINING_GENERAL_EVAL_RECORDS="8",
    )
    env.pop("LORAG_BOOTSTRAP_API_KEY")
    env.pop("RAY_ADDRESS", None)
    # `lorag serve` builds the default reranker on first use (minutes): point it at the quick test
    # build instead, made (or found in the cache) before the server starts.
    from tests.support.reranking import QUICK_ENV, quick_reranker

    quick_reranker()
    env.update(QUICK_ENV)
    cmd = [sys.executable, "-m", "lorag.cli", "serve", "--http-port", str(http_port)]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    target = f"127.0.0.1:{port}"
    try:
        _wait_healthy(target, proc, log_path)
        key = (data_dir / "bootstrap-api-key").read_text().strip()
        yield Platform(proc, target, data_dir, log_path, key, metrics_port)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode == 0, log_path.read_text()[-4000:]
    assert "stopped" in log_path.read_text()


def pytest_collection_modifyitems(config, items):
    """Fault tests kill replicas of the session's one platform: they run after every other e2e
    test, which then sees a platform that never lost a replica."""
    items.sort(key=lambda item: "test_faults_e2e.py" in str(item.fspath))

"""The Serve config of the Helm chart on Ray started the way KubeRay starts it.

KubeRay runs ``ray start --head`` in the head pod and submits the RayService's serveConfigV2 to
the dashboard's Serve REST API; the Serve controller and its gRPC proxy are started there, not by
a driver with lorag's ``runtime_env``. This module does the same on 127.0.0.1 (``ray start --head
--block``, then ``serve deploy`` of deploy/serve.yaml with the `adapters` application and a replica
that never answers) and checks what the proxy answers: a call whose replica is killed gets
UNAVAILABLE without Ray's internals, and bytes that are not a valid request message get
INVALID_ARGUMENT naming the request type. Both come from the ``lorag.proxy`` servicer functions
the config names, and nothing else of lorag's is installed in the proxy: the one worker set-up
hook here binds the proxy to 127.0.0.1 (on Kubernetes it listens on the pod's addresses).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import psutil
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lorag.proxy import REPLICA_GONE
from tests.support.processes import serve_replicas

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 240
NOT_PROTOBUF = b"\xff\xff\xff\xff\x0f"  # a varint that never ends
RAW = {"request_serializer": None, "response_deserializer": None}  # bytes in, bytes out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_config(grpc_port: int, http_port: int) -> dict:
    cfg = yaml.safe_load((ROOT / "deploy" / "serve.yaml").read_text())
    cfg["http_options"] = {"host": "127.0.0.1", "port": http_port}
    cfg["grpc_options"]["port"] = grpc_port
    adapters = next(a for a in cfg["applications"] if a["name"] == "adapters")
    stall = {"name": "stall", "route_prefix": "/stall", "import_path": "tests.support.serve_apps:stall"}
    cfg["applications"] = [adapters, stall]
    return cfg


def _applications(dashboard: str, token: str) -> dict:
    req = urllib.request.Request(
        f"{dashboard}/api/serve/applications/", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp).get("applications") or {}


class Cluster:
    def __init__(self, proc, target, dashboard, log_path, operator_key):
        self.proc, self.target, self.dashboard = proc, target, dashboard
        self.log_path, self.operator_key = log_path, operator_key

    def replicas(self, app: str) -> list[psutil.Process]:
        return serve_replicas(self.proc.pid, app)


def _stop(proc: subprocess.Popen) -> None:
    """End the `ray start` we started and every process under it, by pid."""
    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    for p in [*tree, psutil.Process(proc.pid)] if proc.poll() is None else tree:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=20)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ray._private import ray_constants

    # The bind of the proxy to 127.0.0.1 travels in this variable (what `worker_process_setup_hook`
    # sets); if Ray renames it, the proxy would listen on every address: stop here instead.
    hook_var = ray_constants.WORKER_PROCESS_SETUP_HOOK_ENV_VAR
    assert hook_var == "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"

    from lorag.cli.serve import bootstrap
    from lorag.common.settings import LoragSettings

    data_dir = tmp_path_factory.mktemp("lorag-kuberay")
    temp_dir = tempfile.mkdtemp(prefix="lorag-ray-", dir="/tmp")  # Ray's socket paths must stay short
    log_path = data_dir / "ray-start.log"
    ports = {name: _free_port() for name in ("gcs", "dashboard", "client", "agent_http", "agent_grpc",
                                             "metrics", "runtime_env", "node_manager", "object_manager",
                                             "grpc", "http")}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "LORAG_", "OTEL_"))}
    token = secrets.token_hex(32)  # the cluster's own: not the one in ~/.ray
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,
        PYTHONPATH=os.pathsep.join([str(ROOT / "services"), str(ROOT)]),
        RAY_USAGE_STATS_ENABLED="0",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        LORAG_DATA_DIR=str(data_dir),
        LORAG_GRPC_HOST="127.0.0.1",
        **{hook_var: "lorag.serving.setup_worker"},
    )
    env.pop("LORAG_BOOTSTRAP_API_KEY", None)
    operator_key = bootstrap(LoragSettings(data_dir=data_dir))
    ray = str(Path(sys.executable).parent / "ray")
    cmd = [
        ray, "start", "--head", "--block", "--disable-usage-stats", "--num-cpus=2",
        "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}", f"--port={ports['gcs']}",
        "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={ports['dashboard']}",
        f"--ray-client-server-port={ports['client']}",
        f"--dashboard-agent-listen-port={ports['agent_http']}",
        f"--dashboard-agent-grpc-port={ports['agent_grpc']}",
        f"--metrics-export-port={ports['metrics']}", f"--runtime-env-agent-port={ports['runtime_env']}",
        f"--node-manager-port={ports['node_manager']}", f"--object-manager-port={ports['object_manager']}",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    dashboard = f"http://127.0.0.1:{ports['dashboard']}"
    try:
        config_path = data_dir / "serve.yaml"
        config_path.write_text(yaml.safe_dump(_serve_config(ports["grpc"], ports["http"])))
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # the dashboard answers once the head is up
            assert proc.poll() is None, log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, log_path.read_text()[-4000:]
            try:
                _applications(dashboard, token)
                break
            except urllib.error.HTTPError as exc:
                assert exc.code not in (401, 403), f"the dashboard refused the cluster's token: {exc}"
                time.sleep(1)
            except OSError:
                time.sleep(1)
        serve = str(Path(sys.executable).parent / "serve")
        deploy = subprocess.run(
            [serve, "deploy", str(config_path), "--address", dashboard],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        while True:
            apps = _applications(dashboard, token)
            if {n: a.get("status") for n, a in apps.items()} == {"adapters": "RUNNING", "stall": "RUNNING"}:
                break
            assert time.monotonic() < deadline, json.dumps(apps)[-4000:]
            time.sleep(2)
        yield Cluster(proc, f"127.0.0.1:{ports['grpc']}", dashboard, log_path, operator_key)
    finally:
        _stop(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_proxy_listens_on_loopback_only(cluster):
    port = int(cluster.target.rsplit(":", 1)[1])
    listening = [
        c.laddr.ip
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    ]
    assert listening and all(ip in ("127.0.0.1", "::ffff:127.0.0.1") for ip in listening), listening


@pytest.mark.timeout(300)
def test_a_call_whose_replica_is_killed_is_unavailable_without_internals(cluster):
    (replica,) = cluster.replicas("stall")
    outcome: dict = {}

    def call() -> None:
        with grpc.insecure_channel(cluster.target) as ch:
            try:
                health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), metadata=(("application", "stall"),), timeout=120
                )
            except grpc.RpcError as exc:
                outcome["error"] = exc
                outcome["at"] = time.monotonic()

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(3.0)  # the call is waiting on the replica now
    assert caller.is_alive() and not outcome
    killed_at = time.monotonic()
    os.kill(replica.pid, signal.SIGKILL)
    caller.join(60)
    assert not caller.is_alive(), "the call hung after its replica died"
    error = outcome["error"]
    details = error.details() or ""
    print(f"{error.code()} {outcome['at'] - killed_at:.2f}s after the kill: {details!r}")
    assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), details)
    assert details == REPLICA_GONE
    assert str(replica.pid) not in details and "127.0.0.1" not in details


@pytest.mark.parametrize(
    ("method", "request_type"),
    [
        ("/lorag.admin.v1.AdminService/GetTenant", "lorag.admin.v1.GetTenantRequest"),
        ("/lorag.adapters.v1.AdapterService/ListAdapters", "lorag.adapters.v1.ListAdaptersRequest"),
    ],
)
def test_bytes_that_are_not_the_request_message_are_invalid_argument(cluster, method, request_type):
    with grpc.insecure_channel(cluster.target) as ch:
        call = ch.unary_unary(method, **RAW)
        md = (("application", "adapters"), ("authorization", f"Bearer {cluster.operator_key}"))
        with pytest.raises(grpc.RpcError) as info:
            call(NOT_PROTOBUF, metadata=md, timeout=30)
        error = info.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
        assert f"is not a valid {request_type} message" in error.details()
        # the caller is authenticated first: without a key the request type is not revealed
        with pytest.raises(grpc.RpcError) as info:
            call(NOT_PROTOBUF, metadata=(("application", "adapters"),), timeout=30)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, (info.value.code(), info.value.details())


def test_health_check_with_bytes_that_are_not_the_request_message(cluster):
    with grpc.insecure_channel(cluster.target) as ch, pytest.raises(grpc.RpcError) as info:
        ch.unary_unary("/grpc.health.v1.Health/Check", **RAW)(
            NOT_PROTOBUF, metadata=(("application", "adapters"),), timeout=30
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (info.value.code(), info.value.details())
    assert "is not a valid grpc.health.v1.HealthCheckRequest message" in info.value.details()

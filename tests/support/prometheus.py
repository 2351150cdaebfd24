"""A throw-away Prometheus server on 127.0.0.1 for tests (Debian's `prometheus`, with `promtool`).

Installs the Debian package when the binaries are missing (``apt-get update`` once, then
``apt-get install prometheus``), writes a generated config into a temporary directory and starts
``prometheus`` on a free loopback port with its own storage there. :meth:`PrometheusServer.stop`
ends it by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

START_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_installed() -> tuple[str, str]:
    """Paths of ``prometheus`` and ``promtool``, installing Debian's prometheus if needed."""
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"],
            check=True,
            env=env,
            capture_output=True,
        )
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not (prometheus and promtool):
        raise RuntimeError("prometheus/promtool not found after installing the package")
    return prometheus, promtool


@dataclass
class PrometheusServer:
    proc: subprocess.Popen
    base: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """Instant query; the result vector."""
        return self.api("query", query=expr)["result"]

    def wait_for(self, expr: str, *, timeout: float = 90.0) -> list[dict]:
        """Poll ``expr`` until it returns samples (scrapes and Ray's export run on intervals)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(1.0)

    def log(self) -> str:
        return (self.base / "prometheus.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)


def start_prometheus(config: dict[str, Any], *, rule_files: list[Path] = ()) -> PrometheusServer:
    """Start Prometheus with ``config`` (``rule_files`` are copied next to it and loaded)."""
    prometheus, _ = ensure_installed()
    base = Path(tempfile.mkdtemp(prefix="lorag-prom-"))
    config = dict(config)
    if rule_files:
        names = []
        for f in rule_files:
            shutil.copy(f, base / f.name)
            names.append(f.name)
        config["rule_files"] = names
    (base / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    log = open(base / "prometheus.log", "wb")  # noqa: SIM115 - owned by the server's lifetime
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={base / 'prometheus.yml'}",
            f"--storage.tsdb.path={base / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=base,
    )
    log.close()
    server = PrometheusServer(proc, base, port)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            output = server.log()[-2000:]
            server.stop()
            raise RuntimeError(f"prometheus did not start:\n{output}")
        time.sleep(0.2)


def promtool(*args: str) -> subprocess.CompletedProcess:
    _, tool = ensure_installed()
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)

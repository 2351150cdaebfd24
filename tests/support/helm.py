"""helm for chart tests: the offline toolkit's pinned binary, installed into its cache on first use."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "lorag"
TOOLKIT = ROOT / "tools" / "k8s"
TOOLS_DIR = Path(os.environ.get("K8S_TOOLS_DIR", Path.home() / ".cache" / "k8s-tools"))
HELM = TOOLS_DIR / "bin" / "helm"
TOOLS_PYTHON = TOOLS_DIR / "bin" / "python"
API_VERSIONS = ("monitoring.coreos.com/v1", "ray.io/v1")


def ensure_tools() -> str | None:
    """Install the toolkit if helm is missing; None when ready, else why it could not be installed."""
    if HELM.exists() and TOOLS_PYTHON.exists():
        return None
    proc = subprocess.run(
        [str(TOOLKIT / "install-tools.sh"), "--quiet"], capture_output=True, text=True, timeout=1200
    )
    if proc.returncode != 0 or not HELM.exists():
        return f"install-tools.sh failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}"
    return None


def helm_template(
    *args: str, release: str = "lorag", namespace: str = "lorag"
) -> subprocess.CompletedProcess[str]:
    """``helm template`` of charts/lorag with extra arguments (values files, --set ...)."""
    cmd = [str(HELM), "template", release, str(CHART), "--namespace", namespace]
    for api in API_VERSIONS:
        cmd += ["--api-versions", api]
    env = {**os.environ, "HELM_CACHE_HOME": "/nonexistent/cache", "HELM_CONFIG_HOME": "/nonexistent/config"}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, env=env)


def render(*args: str, **kwargs) -> list[dict]:
    """The rendered documents; fails the test with helm's message when rendering fails."""
    proc = helm_template(*args, **kwargs)
    if proc.returncode != 0:
        raise AssertionError(f"helm template failed:\n{proc.stderr}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def require_tools() -> None:
    """Skip a chart test when the toolkit cannot be installed on a developer machine (no registry
    access); fail instead under CI, which installs the tools in `make chart` first."""
    import pytest

    why = ensure_tools()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"helm could not be installed: {why}")
        pytest.skip(f"helm could not be installed: {why}")


def ray_pod_specs(docs: list[dict]):
    """The pod templates of RayService and RayJob clusters (head and worker groups)."""
    for d in docs:
        if d["kind"] == "RayService":
            cluster = d["spec"]["rayClusterConfig"]
        elif d["kind"] == "RayJob":
            cluster = d["spec"]["rayClusterSpec"]
        else:
            continue
        yield cluster["headGroupSpec"]["template"]["spec"]
        for group in cluster["workerGroupSpecs"]:
            yield group["template"]["spec"]

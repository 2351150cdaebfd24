"""A whole lorag platform in this process, for evaluation runs: every servicer in the in-process
``grpc.aio`` host on 127.0.0.1 (embedded Milvus Lite file, SQLite registry under a fresh data
dir), reached through the ordinary SDK client with a tenant of its own.

The models are the user's: the generation models dir and the reranker artifacts dir are resolved
from the environment *before* the data dir is replaced, so the evaluation uses exactly the
models ``lorag serve`` would use, and never builds or downloads any.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TENANT = "eval"


@dataclass
class LocalPlatform:
    """A running in-process platform: ``client`` is a sync SDK client of tenant ``eval``."""

    client: object
    target: str
    data_dir: Path


def _model_env() -> dict[str, str]:
    """LORAG_MODELS_DIR and LORAG_RERANKING_ARTIFACTS_DIR as the user's settings resolve them."""
    from lorag.common.settings import LoragSettings
    from lorag.reranking.settings import RerankingSettings

    base = LoragSettings()
    return {
        "LORAG_MODELS_DIR": str(base.resolved_models_dir),
        "LORAG_RERANKING_ARTIFACTS_DIR": str(RerankingSettings().resolved_artifacts_dir(base.data_dir)),
    }


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def local_platform(data_dir: Path | None = None, *, timeout: float = 600.0) -> Iterator[LocalPlatform]:
    """Start the platform (fresh temporary data dir unless ``data_dir``); stop it on exit."""
    from lorag.client import Client
    from lorag.common.hosts import start_inprocess
    from lorag.common.rpc import Runtime
    from lorag.common.settings import LoragSettings

    owned = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="lorag-eval-")) if owned else Path(data_dir)
    env = {**_model_env(), "LORAG_DATA_DIR": str(root)}
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="lorag-eval-host", daemon=True)
    thread.start()

    def run(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    with _env(env):
        runtime = Runtime.build(LoragSettings(data_dir=root))
        host = None
        try:
            operator_key = runtime.tenants.bootstrap()

            async def start():
                return await start_inprocess(runtime)

            host = run(start())
            with Client(host.target, operator_key, timeout=timeout) as operator:
                tenant = operator.admin.create_tenant(TENANT, admin_key=True)
            with Client(host.target, tenant.admin_api_key, timeout=timeout) as client:
                yield LocalPlatform(client=client, target=host.target, data_dir=root)
        finally:
            if host is not None:
                run(host.stop(0))
            runtime.usage.close()
            runtime.close()
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            if owned:
                shutil.rmtree(root, ignore_errors=True)

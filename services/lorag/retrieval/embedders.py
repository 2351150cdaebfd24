"""How the retrieval service embeds texts: one protocol, an in-process and a Ray Serve implementation.

The retrieval core only sees :class:`Embedder`. In the in-process host it is
:class:`LocalEmbedder` (``lorag.embedding.core.EmbeddingCore`` in this process); inside Ray Serve
it is :class:`ServeEmbedder`, which calls the ``embedding`` application's ``embed_internal``
through a DeploymentHandle. Ray is imported only by the latter, lazily.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lorag.common import errors, telemetry
from lorag.common.remote import domain_error, inside_serve_replica

log = logging.getLogger("lorag.retrieval")


@runtime_checkable
class Embedder(Protocol):
    """What retrieval needs from the embedding service."""

    async def default_model(self) -> str: ...

    async def dimension(self, model: str) -> int: ...

    async def embed(self, texts: list[str], *, model: str, input_type: str) -> np.ndarray:
        """Unit-length float32 vectors, shape (len(texts), dimension)."""
        ...

    def tokenizer(self, model: str) -> Any:
        """The model's (fast) tokenizer for token-aware chunking; None when unavailable."""
        ...


class LocalEmbedder:
    """``EmbeddingCore`` in this process (loaded lazily; ``embed`` runs in a thread)."""

    def __init__(self, core: Any | None = None) -> None:
        self._core = core
        self._lock = threading.Lock()

    def core(self) -> Any:
        with self._lock:
            if self._core is None:
                try:
                    from lorag.embedding.core import EmbeddingCore
                    from lorag.embedding.settings import EmbeddingSettings
                except ImportError as exc:
                    raise errors.FailedPrecondition(
                        "text embedding is not available in this deployment; send vectors"
                    ) from exc
                self._core = EmbeddingCore(EmbeddingSettings())
            return self._core

    async def default_model(self) -> str:
        return await asyncio.to_thread(lambda: self.core().default_model())

    async def dimension(self, model: str) -> int:
        return int(await asyncio.to_thread(lambda: self.core().dimension(model)))

    async def embed(self, texts: list[str], *, model: str, input_type: str) -> np.ndarray:
        with telemetry.span("embed", embedder="local", model=model, texts=len(texts)):
            result = await asyncio.to_thread(
                lambda: self.core().embed(
                    texts, model=model, input_type=input_type, normalize=True, truncate=True
                )
            )
        return np.asarray(result.vectors, dtype=np.float32)

    def tokenizer(self, model: str) -> Any:
        return self.core().tokenizer(model)


class ServeEmbedder:
    """The ``embedding`` Ray Serve application, through a handle (no extra gRPC hop).

    Tokenizers for chunking are loaded in this process from the same model files (cheap: no
    weights), through a :class:`LocalEmbedder` that never embeds.
    """

    def __init__(self, app_name: str = "embedding") -> None:
        self.app_name = app_name
        self._handle = None
        self._dims: dict[str, int] = {}
        self._default: str | None = None
        self._local = LocalEmbedder()

    def _get_handle(self):
        if self._handle is None:
            from ray import serve

            self._handle = serve.get_app_handle(self.app_name)
        return self._handle

    async def _call(self, texts: list[str], model: str | None, input_type: str) -> dict:
        try:
            with telemetry.span("embed", embedder="serve", model=model or "", texts=len(texts)):
                return await self._get_handle().embed_internal.remote(
                    texts, model, input_type, True, True, trace_context=telemetry.inject()
                )
        except Exception as exc:  # noqa: BLE001 - surface domain errors raised by the remote replica
            raise domain_error(exc, service="embedding") from None

    async def default_model(self) -> str:
        if self._default is None:
            out = await self._call(["dimension probe"], None, "query")
            self._default = str(out["model"])
            self._dims[self._default] = int(out["dimension"])
        return self._default

    async def dimension(self, model: str) -> int:
        if model not in self._dims:
            out = await self._call(["dimension probe"], model, "query")
            self._dims[model] = int(out["dimension"])
        return self._dims[model]

    async def embed(self, texts: list[str], *, model: str, input_type: str) -> np.ndarray:
        out = await self._call(texts, model, input_type)
        return np.asarray(out["vectors"], dtype=np.float32)

    def tokenizer(self, model: str) -> Any:
        return self._local.tokenizer(model)


def default_embedder(kind: str, *, app_name: str = "embedding") -> Embedder | None:
    """The embedder for a settings value: ``auto`` picks Serve inside a replica, else local."""
    if kind == "none":
        log.info("retrieval embeds no texts: callers must send vectors")
        return None
    if kind == "serve" or (kind == "auto" and inside_serve_replica()):
        log.info("retrieval embeds texts through the Ray Serve application %r", app_name)
        return ServeEmbedder(app_name)
    log.info("retrieval embeds texts in this process")
    return LocalEmbedder()

"""Ray Serve application `generation`; the Serve config refers to `lorag.generation.deployment:app`.

The deployment is the servicer plus ``@serve.multiplexed`` keyed by adapter version id: Ray Serve
routes requests carrying ``multiplexed_model_id`` metadata to replicas that already hold that
adapter, and evicts the least recently used adapter beyond the per-replica limit.
"""

from __future__ import annotations

import asyncio

from ray import serve

from lorag.generation.servicer import GenerationServicer
from lorag.generation.settings import GenerationSettings
from lorag.serving import deployment_for


class AdapterSlot:
    """What the multiplexer caches per adapter version; dropping it frees the adapter.

    Ray Serve's multiplexer calls ``__del__`` when it evicts the slot (LRU); the unload is
    scheduled on the replica's event loop and waits for in-flight requests on that version.
    """

    def __init__(self, backend, version_id: str) -> None:
        self.backend = backend
        self.version_id = version_id
        self.loop = asyncio.get_running_loop()
        self.released = False

    def __del__(self) -> None:
        if self.released:
            return
        self.released = True
        try:
            asyncio.run_coroutine_threadsafe(self.backend.unload_adapter(self.version_id), self.loop)
        except RuntimeError:  # loop closed: the replica is shutting down
            pass


def build(settings: GenerationSettings | None = None):
    settings = settings or GenerationSettings()

    class GenerationDeployment(GenerationServicer):
        def __init__(self) -> None:
            super().__init__()
            self._paths: dict[str, str] = {}
            self.core.load_adapter = self._load_through_multiplexer

        async def _load_through_multiplexer(self, version_id: str, path: str) -> None:
            self._paths[version_id] = path
            await self.adapter_slot(version_id)

        @serve.multiplexed(max_num_models_per_replica=settings.max_loaded_adapters)
        async def adapter_slot(self, version_id: str) -> AdapterSlot:
            await self.core.backend.load_adapter(version_id, self._paths[version_id])
            return AdapterSlot(self.core.backend, version_id)

        def replica_id(self) -> str:
            return serve.get_replica_context().replica_tag

    return deployment_for("generation", GenerationDeployment)


app = build().bind()

"""Ray Serve application `generation`; the Serve config refers to `lorag.generation.deployment:app`.

The deployment is the servicer plus ``@serve.multiplexed`` keyed by adapter version id: every
version a replica serves is advertised to Ray Serve's router, which sends requests carrying
``multiplexed_model_id`` metadata to replicas that already hold that version. Loading, memory
budget and eviction stay with the replica's AdapterCache.

OpenMP: the servicer module loads torch with a short spin for decoding kernels, see
:mod:`lorag.generation.openmp`.
"""

from __future__ import annotations

from ray import serve

from lorag.generation.servicer import GenerationServicer
from lorag.generation.settings import GenerationSettings
from lorag.serving import deployment_for


def build(settings: GenerationSettings | None = None):
    settings = settings or GenerationSettings()

    class GenerationDeployment(GenerationServicer):
        def __init__(self) -> None:
            super().__init__()
            self.core.on_adapter = self.advertise

        @serve.multiplexed(max_num_models_per_replica=settings.max_loaded_adapters)
        async def advertise(self, version_id: str) -> str:
            # Routing only: the adapter itself is loaded and bounded by the AdapterCache.
            return version_id

        def replica_id(self) -> str:
            return serve.get_replica_context().replica_tag

    return deployment_for("generation", GenerationDeployment)


app = build().bind()

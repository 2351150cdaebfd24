"""Ray Serve application `generation`; the Serve config refers to `lorag.generation.deployment:app`.

The deployment is the servicer plus ``@serve.multiplexed`` keyed by adapter version id: every
version a replica serves is advertised to Ray Serve's router, which sends requests carrying
``multiplexed_model_id`` metadata to replicas that already hold that version. Loading, memory
budget and eviction stay with the replica's AdapterCache.

OpenMP: `lorag serve` and the chart run every worker with ``OMP_WAIT_POLICY=PASSIVE``, so that
idle torch threads sleep and the replicas' event loops stay responsive. A generation replica
decodes with many small kernels back to back on its engine thread; with passive workers each of
them pays a wake-up (SmolLM2-135M at batch 8 on 2 cores: 80 instead of 115 tokens/s). This
module therefore gives the replica's OpenMP workers a short spin between kernels,
``GOMP_SPINCOUNT`` = 300,000 (libgomp's own default; it overrides PASSIVE, and workers still
sleep once the engine idles) unless one is set. OpenMP reads it once, when torch loads, so this
module loads torch first.
"""

from __future__ import annotations

import logging
import os
import sys


def _load_torch_with_spin() -> None:
    """Import torch (which loads OpenMP) with ``GOMP_SPINCOUNT`` set, then take the variable back
    out of the environment so that processes started from here (Ray workers of other services
    included) keep their own setting."""
    if "torch" in sys.modules:  # loaded before: OpenMP already read its settings
        logging.getLogger("lorag.generation").info("torch loaded before the generation deployment")
        return
    own = "GOMP_SPINCOUNT" not in os.environ
    if own:
        os.environ["GOMP_SPINCOUNT"] = "300000"
    try:
        import torch  # noqa: F401
    finally:
        if own:
            del os.environ["GOMP_SPINCOUNT"]


_load_torch_with_spin()

from ray import serve  # noqa: E402

from lorag.generation.servicer import GenerationServicer  # noqa: E402
from lorag.generation.settings import GenerationSettings  # noqa: E402
from lorag.serving import deployment_for  # noqa: E402


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

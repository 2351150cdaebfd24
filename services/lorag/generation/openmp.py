"""OpenMP settings of a process that serves generation; import before anything loads torch.

`lorag serve` and the chart run every worker with ``OMP_WAIT_POLICY=PASSIVE``, so that idle
torch threads sleep and the replicas' event loops stay responsive. A generation replica decodes
with many small kernels back to back on its engine thread; with passive workers each of them
pays a wake-up (SmolLM2-135M at batch 8 on 2 cores, through Ray Serve: 69 instead of 93
tokens/s). Importing this module loads torch with ``GOMP_SPINCOUNT`` = 300,000 (libgomp's own
default, which overrides PASSIVE; workers still sleep once the engine idles) unless one is set,
then takes the variable out of the environment again, so that processes started from here
(Ray workers of other services included) keep their own setting. OpenMP reads it once, when
torch loads: :mod:`lorag.generation.servicer` imports this module first.
"""

from __future__ import annotations

import logging
import os
import sys

SPIN_COUNT = "300000"


def load_torch_with_spin() -> bool:
    """Import torch with the spin count set; False when torch was loaded before (no effect)."""
    if "torch" in sys.modules:  # OpenMP already read its settings
        logging.getLogger("lorag.generation").debug("torch was loaded before lorag.generation.openmp")
        return False
    own = "GOMP_SPINCOUNT" not in os.environ
    if own:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    try:
        import torch  # noqa: F401
    finally:
        if own:
            del os.environ["GOMP_SPINCOUNT"]
    return True


load_torch_with_spin()

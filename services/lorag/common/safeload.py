"""Model and adapter files are loaded from safetensors only: nothing is ever unpickled.

Pickle-based checkpoints (``torch.save``, ``.bin``/``.pt``/``.ckpt``, joblib, numpy object
arrays) run arbitrary code when loaded, so a tenant's adapter or a model directory could take over
a replica. Uploads are validated by :mod:`lorag.adapters.validation`; this module is the last
check right before peft or transformers open a directory. ``tests/unit/test_supply_chain.py``
keeps every loading call in the source tree on these rules.
"""

from __future__ import annotations

from pathlib import Path

from lorag.common.errors import FailedPrecondition

#: Suffixes of pickle-based weight files (refused wherever weights are read).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def require_safetensors_adapter(path: str | Path) -> str:
    """``path`` as a string if it is a peft adapter directory with safetensors weights and no
    pickle-based file; FailedPrecondition otherwise (peft would fall back to unpickling)."""
    directory = Path(path)
    if not (directory / ADAPTER_WEIGHTS).is_file():
        raise FailedPrecondition(
            f"{directory}: no {ADAPTER_WEIGHTS}; only safetensors adapters are loaded "
            "(save with safe_serialization=True)"
        )
    pickled = sorted(p.name for p in directory.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickled:
        raise FailedPrecondition(
            f"{directory}: pickle-based file(s) {', '.join(pickled)} next to the adapter are refused"
        )
    return str(directory)

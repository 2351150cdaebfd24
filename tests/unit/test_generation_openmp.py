"""How a generation process keeps OpenMP fast: spin count at torch load, loads on passing threads."""

import os
import subprocess
import sys
import threading

import pytest

from lorag.generation.backends import _on_passing_thread

# Records GOMP_SPINCOUNT at the moment torch is first imported (when its OpenMP reads it), then
# imports the module a Ray replica of generation imports, and prints what stayed behind.
PROBE = """
import os, sys
seen = []
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("GOMP_SPINCOUNT"))
        return None
sys.meta_path.insert(0, Watch())
import {module}
print(seen, os.environ.get("GOMP_SPINCOUNT"))
"""


def _probe(module: str, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("module", ["lorag.generation.servicer", "lorag.generation.deployment"])
def test_torch_loads_with_a_spin_count_that_does_not_stay_behind(module):
    # set while torch (and its OpenMP, which reads it once) loads; gone afterwards, so processes
    # started later (other services' Ray workers) keep their own setting
    assert _probe(module) == "['300000'] None"


def test_a_spin_count_the_operator_set_is_kept():
    assert _probe("lorag.generation.servicer", GOMP_SPINCOUNT="1234") == "['1234'] 1234"


def test_passing_thread_returns_results_and_raises_errors_on_the_caller():
    caller = threading.get_ident()
    ran_on: list[int] = []

    def work() -> int:
        ran_on.append(threading.get_ident())
        return 42

    assert _on_passing_thread(work) == 42
    assert ran_on and ran_on[0] != caller

    def fail() -> None:
        raise ValueError("bad weights")

    with pytest.raises(ValueError, match="bad weights"):
        _on_passing_thread(fail)
    assert not [t for t in threading.enumerate() if t.name == "lorag-generation-load"]

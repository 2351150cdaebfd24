"""Real peft LoRA adapters built locally from tiny, randomly initialised models (no hub access).

The tiny models keep the layer shapes of the registry's default base models (SmolLM2-135M for
generation, MiniLM-L6 for reranking) with two layers and a toy vocabulary, so the adapters they
produce validate against those base models while building in well under a second.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

GENERATION_BASE = "smollm2-135m-instruct"
GENERATION_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
RERANKING_BASE = "ms-marco-minilm-l6"


def build_llama_adapter(
    out: Path,
    *,
    rank: int = 8,
    targets: tuple[str, ...] = ("q_proj", "v_proj"),
    seed: int = 0,
    base_name: str = GENERATION_HUB_ID,
) -> Path:
    """A generation adapter for SmolLM2-135M-Instruct in ``out`` (adapter files only)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers/peft deprecation noise while building
        torch.manual_seed(seed)
        cfg = LlamaConfig(
            vocab_size=32,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=2,
            num_attention_heads=9,
            num_key_value_heads=3,
            head_dim=64,
            max_position_embeddings=32,
        )
        model = LlamaForCausalLM(cfg)
        model.name_or_path = base_name  # what peft records as base_model_name_or_path
        lora = LoraConfig(
            r=rank,
            lora_alpha=2 * rank,
            target_modules=list(targets),
            task_type="CAUSAL_LM",
            init_lora_weights=False,  # random B, so different seeds give different files
        )
        peft_model = get_peft_model(model, lora)
        peft_model.save_pretrained(out)
    (out / "README.md").unlink(missing_ok=True)
    return out


def build_bert_adapter(out: Path, *, rank: int = 4, seed: int = 0) -> Path:
    """A reranking (sequence classification) adapter for the MiniLM-L6 cross-encoder in ``out``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import BertConfig, BertForSequenceClassification

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers/peft deprecation noise while building
        torch.manual_seed(seed)
        cfg = BertConfig(
            vocab_size=32,
            hidden_size=384,
            intermediate_size=1536,
            num_hidden_layers=2,
            num_attention_heads=12,
            num_labels=1,
        )
        model = BertForSequenceClassification(cfg)
        model.name_or_path = "cross-encoder/ms-marco-MiniLM-L6-v2"
        lora = LoraConfig(
            r=rank,
            lora_alpha=2 * rank,
            target_modules=["query", "key", "value", "dense"],
            task_type="SEQ_CLS",
        )
        get_peft_model(model, lora).save_pretrained(out)
    (out / "README.md").unlink(missing_ok=True)
    return out


def edit_config(src: Path, dst: Path, **changes) -> Path:
    """A copy of adapter directory ``src`` with adapter_config.json fields changed."""
    shutil.copytree(src, dst)
    path = dst / "adapter_config.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))
    return dst


_LLAMA_SHAPES = {  # SmolLM2-135M: (in_features, out_features)
    "q_proj": ("self_attn", 576, 576),
    "k_proj": ("self_attn", 576, 192),
    "v_proj": ("self_attn", 576, 192),
    "o_proj": ("self_attn", 576, 576),
    "gate_proj": ("mlp", 576, 1536),
    "up_proj": ("mlp", 576, 1536),
    "down_proj": ("mlp", 1536, 576),
}


def synthetic_llama_adapter(
    out: Path,
    *,
    rank: int = 8,
    targets: tuple[str, ...] = ("q_proj", "v_proj"),
    layers: int = 2,
    seed: int = 0,
    base: str = GENERATION_HUB_ID,
    config: dict | None = None,
    tensors: dict | None = None,
) -> Path:
    """A peft-layout LoRA adapter for SmolLM2-135M written with numpy only (no torch): fast."""
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    weights = {}
    for layer in range(layers):
        for target in targets:
            block, fan_in, fan_out = _LLAMA_SHAPES[target]
            prefix = f"base_model.model.model.layers.{layer}.{block}.{target}"
            weights[f"{prefix}.lora_A.weight"] = rng.standard_normal((rank, fan_in), dtype=np.float32)
            weights[f"{prefix}.lora_B.weight"] = rng.standard_normal((fan_out, rank), dtype=np.float32)
    weights.update(tensors or {})
    out.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(out / "adapter_model.safetensors"))
    cfg = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": rank,
        "lora_alpha": 2 * rank,
        "target_modules": list(targets),
        "bias": "none",
        "use_dora": False,
        "modules_to_save": None,
        "rank_pattern": {},
    }
    cfg.update(config or {})
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    return out


def write_tar(fileobj, members, *, mode: str = "w:gz") -> None:
    """Write a tar archive of ``members`` (name, type flag, data or link target) to ``fileobj``
    (a path or a binary file); type flags: b"0" file, b"1" hardlink, b"2" symlink, b"3" device."""
    import io
    import tarfile

    opened = (
        tarfile.open(fileobj, mode)
        if isinstance(fileobj, (str, Path))
        else tarfile.open(fileobj=fileobj, mode=mode)
    )
    with opened as tf:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                info.linkname = data.decode() if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
                tf.addfile(info)

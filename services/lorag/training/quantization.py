"""Quantized base models: an int8 artifact (torch.ao), bitsandbytes 8/4-bit measurements, their deltas.

``int8`` applies the same torch.ao dynamic quantization the generation service uses for
``LORAG_GENERATION_QUANTIZE_INT8`` (:func:`lorag.embedding.models.quantize_int8`) and writes the
result as an artifact: every quantized Linear as int8 weights with per-channel scales and zero
points, the rest in float32, all in safetensors (no pickle), plus ``lorag-model.json`` with the
measured size and quality deltas against the float32 base (mean answer-token loss and perplexity
on general records). The generation service quantizes at load with the identical, deterministic
operation, so the artifact's figures are what serving with int8 costs.

``nf4`` / ``fp4`` / ``bnb-int8`` load the base through bitsandbytes (on a CUDA GPU, else on its
CPU backend) and record the same deltas (memory footprint instead of file size); refused with
FAILED_PRECONDITION where bitsandbytes cannot run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from lorag.common.errors import FailedPrecondition, InvalidArgument
from lorag.training.validation import Record

MANIFEST = "lorag-model.json"
WEIGHTS = "model-int8.safetensors"
MODES = ("int8", "nf4", "fp4", "bnb-int8")


@dataclass(frozen=True)
class QuantizedArtifact:
    name: str
    mode: str
    path: str  # artifact directory ('' for GPU modes, which are not written)
    base_dir: str
    fp32_bytes: int
    quantized_bytes: int
    size_ratio: float
    fp32_loss: float
    quantized_loss: float
    loss_delta: float
    perplexity_ratio: float
    records: int
    created_at: str


def _param_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers()
    )


def int8_tensors(model) -> dict:
    """The tensors of a dynamically quantized model: int8 weights with their per-channel (or
    per-tensor) scales and zero points for quantized Linears, float32 for everything else."""
    import torch

    out: dict[str, torch.Tensor] = {}
    quantized_prefixes = []
    for name, module in model.named_modules():
        weight_fn = getattr(module, "weight", None)
        if callable(weight_fn) and type(module).__module__.startswith("torch.ao.nn.quantized"):
            w = weight_fn()
            quantized_prefixes.append(name + ".")
            out[f"{name}.weight.int8"] = w.int_repr().contiguous()
            if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                out[f"{name}.weight.scales"] = w.q_per_channel_scales().float().contiguous()
                out[f"{name}.weight.zero_points"] = w.q_per_channel_zero_points().to(torch.int32).contiguous()
            else:
                out[f"{name}.weight.scales"] = torch.tensor([w.q_scale()], dtype=torch.float32)
                out[f"{name}.weight.zero_points"] = torch.tensor([w.q_zero_point()], dtype=torch.int32)
            bias = module.bias()
            if bias is not None:
                out[f"{name}.bias"] = bias.detach().float().contiguous()
    seen = set()
    for name, tensor in model.state_dict().items():
        if not isinstance(tensor, torch.Tensor) or tensor.is_quantized:
            continue
        if any(name.startswith(p) for p in quantized_prefixes):
            continue
        if tensor.data_ptr() in seen:  # tied weights (embeddings = lm_head) once
            continue
        seen.add(tensor.data_ptr())
        out[name] = tensor.detach().contiguous()
    return out


def quantize_base(
    model_dir: Path,
    *,
    out_root: Path,
    name: str,
    records: Sequence[Record],
    mode: str = "int8",
    max_length: int = 256,
) -> QuantizedArtifact:
    """Quantize the generation base in ``model_dir``; measure size and loss against float32."""
    import math

    from safetensors.torch import save_file

    from lorag.embedding.models import quantize_int8
    from lorag.training import evaluation, trainer

    if mode not in MODES:
        raise InvalidArgument(f"must be one of {', '.join(MODES)}", field="mode")
    if not records:
        raise InvalidArgument("needs evaluation records", field="records")
    model, tokenizer = trainer.load_base("generation", Path(model_dir))
    model.eval()
    fp32_bytes = _param_bytes(model)
    fp32_loss = evaluation.generation_loss(model, tokenizer, records, max_length=max_length)
    path = ""
    if mode == "int8":
        qmodel, ok = quantize_int8(model)
        if not ok:
            raise FailedPrecondition("this torch build has no int8 dynamic quantization")
        q_loss = evaluation.generation_loss(qmodel, tokenizer, records, max_length=max_length)
        target = Path(out_root) / "generation" / f"{name}-int8"
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(int8_tensors(qmodel), str(tmp / WEIGHTS))
        for extra in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                      "chat_template.jinja", "special_tokens_map.json"):  # fmt: skip
            if (Path(model_dir) / extra).exists():
                shutil.copy2(Path(model_dir) / extra, tmp / extra)
        q_bytes = (tmp / WEIGHTS).stat().st_size
        fp32_bytes = sum(f.stat().st_size for f in Path(model_dir).glob("*.safetensors")) or fp32_bytes
        path = str(target)
    else:
        from lorag.generation.models import load_bnb

        del model
        qmodel = load_bnb(str(model_dir), "int8" if mode == "bnb-int8" else mode)
        q_loss = evaluation.generation_loss(qmodel, tokenizer, records, max_length=max_length)
        q_bytes = int(qmodel.get_memory_footprint())
        tmp = target = None
    artifact = QuantizedArtifact(
        name=name,
        mode=mode,
        path=path,
        base_dir=str(model_dir),
        fp32_bytes=int(fp32_bytes),
        quantized_bytes=int(q_bytes),
        size_ratio=q_bytes / max(1, fp32_bytes),
        fp32_loss=fp32_loss,
        quantized_loss=q_loss,
        loss_delta=q_loss - fp32_loss,
        perplexity_ratio=math.exp(min(50.0, q_loss - fp32_loss)),
        records=len(records),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    if tmp is not None and target is not None:
        (tmp / MANIFEST).write_text(
            json.dumps({**asdict(artifact), "method": "torch.ao dynamic int8"}, indent=2)
        )
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    return artifact

"""Gathered multi-LoRA matmuls for mixed-adapter batches.

peft applies a mixed batch (``adapter_names`` per row) by looping over the distinct adapters and
running each one on its sub-batch: with 8 adapters in a batch of 8, every LoRA-wrapped Linear
does 8 small matmul pairs plus gathers and scatters. Here every Linear keeps the A and B matrices
of all its loaded adapters stacked (zero-padded to the largest rank, row 0 = no adapter, scaling
folded into A) and applies a whole batch with two batched matmuls::

    y = base(x) + bmm(bmm(x, A[idx]^T), B[idx]^T)        idx[row] = adapter of that row

which is what multi-LoRA servers do with BGMV/SGMV kernels on GPUs. Rows without an adapter
gather zero matrices. Adapters with a peft variant (DoRA, aLoRA, ...) keep peft's own path.

Stacks are rebuilt only when the set of loaded adapters of a module changes; adapter weights
never change under a name because lorag names adapters by immutable version id.
"""

from __future__ import annotations

import types
from typing import Any

import torch

BASE = "__base__"


def _stack(layer: Any) -> tuple[tuple[str, ...], dict[str, int], torch.Tensor, torch.Tensor]:
    names = tuple(sorted(n for n in layer.lora_A.keys() if n not in layer.lora_variant))
    cached = getattr(layer, "_lorag_stack", None)
    if cached is not None and cached[0] == names:
        return cached
    weight_a = [layer.lora_A[n].weight for n in names]
    weight_b = [layer.lora_B[n].weight for n in names]
    in_features = layer.in_features
    out_features = layer.out_features
    rank = max((a.shape[0] for a in weight_a), default=1)
    dtype = weight_a[0].dtype if weight_a else torch.float32
    stacked_a = torch.zeros(len(names) + 1, rank, in_features, dtype=dtype)
    stacked_b = torch.zeros(len(names) + 1, out_features, rank, dtype=dtype)
    for i, (name, a, b) in enumerate(zip(names, weight_a, weight_b, strict=True), start=1):
        r = a.shape[0]
        stacked_a[i, :r] = a.detach() * layer.scaling[name]
        stacked_b[i, :, :r] = b.detach()
    index = {name: i for i, name in enumerate(names, start=1)}
    cached = (names, index, stacked_a, stacked_b)
    layer._lorag_stack = cached
    return cached


def _gathered_mixed_forward(self, x: torch.Tensor, *args: Any, adapter_names: list[str], **kwargs: Any):
    if self.fan_in_fan_out or any(name in self.lora_variant for name in adapter_names):
        return self._lorag_peft_mixed_forward(x, *args, adapter_names=adapter_names, **kwargs)
    for key in ("alora_offsets",):
        kwargs.pop(key, None)
    result = self.base_layer(x, *args, **kwargs)
    _, index, stacked_a, stacked_b = _stack(self)
    rows = [index.get(name, 0) for name in adapter_names]
    if not any(rows):
        return result
    idx = torch.tensor(rows, dtype=torch.long)
    squeeze = x.dim() == 2
    h = x.unsqueeze(1) if squeeze else x  # [B, T, in]
    h = h.to(stacked_a.dtype)
    delta = torch.bmm(torch.bmm(h, stacked_a[idx].transpose(1, 2)), stacked_b[idx].transpose(1, 2))
    if squeeze:
        delta = delta.squeeze(1)
    return result + delta.to(result.dtype)


def install(model: Any) -> int:
    """Route every LoRA Linear of ``model`` through the gathered path; returns how many."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    count = 0
    for module in model.modules():
        if isinstance(module, LoraLinear) and not hasattr(module, "_lorag_peft_mixed_forward"):
            module._lorag_peft_mixed_forward = module._mixed_batch_forward
            module._mixed_batch_forward = types.MethodType(_gathered_mixed_forward, module)
            count += 1
    return count

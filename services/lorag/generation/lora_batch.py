"""Batched multi-LoRA matmuls for mixed-adapter batches.

peft applies a mixed batch (``adapter_names`` per row) by registering a hook on every LoRA module
for each forward pass and, inside each module, looping over the distinct adapters of the batch
with a gather, two small matmuls and a scatter each. Here every LoRA Linear keeps the A and B
matrices of its loaded adapters concatenated along the rank (each adapter its own rank, no
padding; scaling folded into A) and applies a whole batch as::

    h = x @ A_sel^T            A_sel: the adapters present in the batch, [sum of ranks, in]
    h *= mask                  mask[row, j] = 1 where column j belongs to the row's adapter
    y = base(x) + h @ B_sel^T  (one in-place addmm)

Other adapters' columns are multiplied by exact zeros, so each row gets exactly its own
adapter's update. ``A_sel``/``B_sel`` are cached per module until the set of adapters in the
batch changes; the row mask is built once per forward pass for all modules that share one
adapter layout. Batches of base-model rows only skip the LoRA work entirely.

Use it through :func:`rows`, which sets the adapter of every row for the forward passes in its
block (no per-forward hooks); peft's own ``adapter_names`` argument is also served by the same
path. Adapters with a peft variant (DoRA, aLoRA, ...) or ``fan_in_fan_out`` weights keep peft's
own path. Call :func:`install` after loading adapters; adapter weights never change under a
name because lorag names adapters by immutable version id.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

BASE = "__base__"


class _Stack:
    """Concatenated, scaled A and B of one module's loaded adapters."""

    __slots__ = ("names", "spans", "a", "b", "key", "selected")

    def __init__(self, layer: Any, names: tuple[str, ...]) -> None:
        a_parts, b_parts, spans, start = [], [], {}, 0
        for name in names:
            a = layer.lora_A[name].weight.detach()
            r = a.shape[0]
            a_parts.append(a * layer.scaling[name])
            b_parts.append(layer.lora_B[name].weight.detach())
            spans[name] = (start, start + r)
            start += r
        self.names = names
        self.spans = spans
        self.a = torch.cat(a_parts, 0) if a_parts else None  # [R, in]
        self.b = torch.cat(b_parts, 1) if b_parts else None  # [out, R]
        # Modules with equal adapter names and ranks share one row mask per forward pass.
        self.key = tuple((n, *spans[n]) for n in names)
        self.selected: tuple[tuple[str, ...], torch.Tensor, torch.Tensor] | None = None

    def select(self, active: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """``A_sel^T`` [in, R_sel] and ``B_sel^T`` [R_sel, out] for the adapters in ``active``."""
        cached = self.selected
        if cached is not None and cached[0] == active:
            return cached[1], cached[2]
        if active == self.names:
            a, b = self.a, self.b
        else:
            cols = torch.cat([torch.arange(*self.spans[n], device=self.a.device) for n in active])
            a, b = self.a.index_select(0, cols), self.b.index_select(1, cols)
        a_t, b_t = a.t().contiguous(), b.t().contiguous()
        self.selected = (active, a_t, b_t)
        return a_t, b_t


class _Plan:
    """The adapter of every row of one batch, and the masks derived from it per layout."""

    __slots__ = ("names", "distinct", "masks")

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.distinct = frozenset(n for n in self.names if n != BASE)
        self.masks: dict[tuple, tuple[tuple[str, ...], torch.Tensor] | None] = {}

    def layout(self, stack: _Stack, tokens: int) -> tuple[tuple[str, ...], torch.Tensor] | None:
        """(adapters of this batch in the stack, row mask [rows * tokens, R_sel]) or None."""
        key = (stack.key, tokens)
        try:
            return self.masks[key]
        except KeyError:
            pass
        active = tuple(n for n in stack.names if n in self.distinct)
        entry = None
        if active:
            spans, start = {}, 0
            for name in active:
                lo, hi = stack.spans[name]
                spans[name] = (start, start + hi - lo)
                start += hi - lo
            mask = torch.zeros(len(self.names), start, dtype=stack.a.dtype, device=stack.a.device)
            for row, name in enumerate(self.names):
                span = spans.get(name)
                if span is not None:
                    mask[row, span[0] : span[1]] = 1
            if tokens > 1:
                mask = mask.repeat_interleave(tokens, dim=0)
            entry = (active, mask)
        self.masks[key] = entry
        return entry


class _RowState(threading.local):
    """Per thread: the plan set by :func:`rows` and the last plan built from ``adapter_names``."""

    def __init__(self) -> None:
        self.plan: _Plan | None = None
        self.named: _Plan | None = None


def _stack(layer: Any) -> _Stack:
    names = tuple(n for n in layer.lora_A if n not in layer.lora_variant)
    stack = layer.__dict__.get("_lorag_stack")
    if stack is None or stack.names != names:
        stack = _Stack(layer, names)
        layer.__dict__["_lorag_stack"] = stack
    return stack


def _forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    state: _RowState = self._lorag_rows
    names = kwargs.get("adapter_names")
    if names is not None:
        plan = state.named
        if plan is None or plan.names != tuple(names):
            plan = state.named = _Plan(names)
    else:
        plan = state.plan
        if plan is None:
            return self._lorag_peft_forward(x, *args, **kwargs)
    peft_only = self.disable_adapters or self.merged or getattr(self, "fan_in_fan_out", False)
    if peft_only or not plan.distinct.isdisjoint(self.lora_variant):
        kwargs["adapter_names"] = list(plan.names)
        return self._lorag_peft_forward(x, *args, **kwargs)
    if len(x) != len(plan.names):
        raise ValueError(f"{len(plan.names)} adapter names for a batch of {len(x)} rows")
    kwargs.pop("adapter_names", None)
    kwargs.pop("alora_offsets", None)
    result = self.base_layer(x, *args, **kwargs)
    if not plan.distinct:
        return result
    stack = _stack(self)
    if stack.a is None:
        return result
    tokens = x.shape[1] if x.dim() == 3 else 1
    entry = plan.layout(stack, tokens)
    if entry is None:
        return result
    active, mask = entry
    a_t, b_t = stack.select(active)
    flat = x.reshape(-1, x.shape[-1])
    if flat.dtype != a_t.dtype:
        flat = flat.to(a_t.dtype)
    h = torch.mm(flat, a_t).mul_(mask)
    out = result.view(-1, result.shape[-1])
    if out.dtype == b_t.dtype and self._lorag_inplace:
        out.addmm_(h, b_t)
        return result
    return result + torch.mm(h, b_t).to(result.dtype).view_as(result)


def _linear_classes() -> tuple[type, ...]:
    """peft's LoRA Linear layers whose base is a plain or a bitsandbytes 8/4-bit Linear."""
    from peft.tuners.lora.layer import Linear

    classes: list[type] = [Linear]
    try:
        from peft.tuners.lora import bnb
    except ImportError:  # bitsandbytes not installed
        return tuple(classes)
    classes += [getattr(bnb, n) for n in ("Linear8bitLt", "Linear4bit") if hasattr(bnb, n)]
    return tuple(classes)


def install(model: Any) -> int:
    """Route every LoRA Linear of ``model`` through the batched path; returns how many.

    Covers LoRA on plain Linear layers and on bitsandbytes 8/4-bit ones (the A/B matrices stay
    in full precision there, only the base layer is quantized). Call again after loading
    adapters (cached stacks are dropped and new modules patched).
    """
    classes = _linear_classes()
    state = model.__dict__.get("_lorag_rows")
    if state is None:
        state = _RowState()
        model.__dict__["_lorag_rows"] = state
    count = 0
    for module in model.modules():
        if isinstance(module, classes):
            if "_lorag_peft_forward" not in module.__dict__:
                module.__dict__["_lorag_peft_forward"] = module.forward
                module.forward = types.MethodType(_forward, module)
                # A plain Linear's output is a fresh tensor: add the update in place. A
                # quantized layer's output may share storage with its kernel's buffers.
                module.__dict__["_lorag_inplace"] = type(module) is classes[0]
            module.__dict__["_lorag_rows"] = state
            module.__dict__.pop("_lorag_stack", None)
            count += 1
    model.__dict__.pop("_lorag_rows_supported", None)
    return count


def rows_supported(model: Any) -> bool:
    """True when every LoRA module of ``model`` honours :func:`rows` (all are patched Linears).

    Checked again whenever the model's set of adapters changes.
    """
    from peft.tuners.lora.layer import LoraLayer

    if "_lorag_rows" not in model.__dict__:
        return False
    names = tuple(model.peft_config)
    cached = model.__dict__.get("_lorag_rows_supported")
    if cached is not None and cached[0] == names:
        return cached[1]
    ok = all("_lorag_peft_forward" in m.__dict__ for m in model.modules() if isinstance(m, LoraLayer))
    model.__dict__["_lorag_rows_supported"] = (names, ok)
    return ok


@contextmanager
def rows(model: Any, names: Sequence[str]) -> Iterator[None]:
    """Within the block, forward passes of ``model`` on this thread apply ``names[i]`` to row i.

    ``"__base__"`` means no adapter. Unknown names raise ``ValueError`` (as peft does). Needs
    :func:`install` and :func:`rows_supported`; the model is then called without
    ``adapter_names``.
    """
    state: _RowState = model.__dict__["_lorag_rows"]
    plan = _Plan(names)
    unknown = plan.distinct - set(model.peft_config)
    if unknown:
        raise ValueError(f"Trying to infer with non-existing adapter(s): {', '.join(sorted(unknown))}")
    previous, state.plan = state.plan, plan
    try:
        yield
    finally:
        state.plan = previous

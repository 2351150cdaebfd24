"""Continuous-batching decoder for a causal LM with many LoRA adapters at once.

One engine thread owns the model. Each loop iteration it admits waiting requests (a batched
prefill of the newcomers, each row with its own adapter), merges their KV cache into the running
batch, then runs ONE decoding forward pass for every active sequence, each row with its own
adapter (``"__base__"`` = no adapter) through :func:`lorag.generation.lora_batch.rows`, or
peft's ``adapter_names`` for LoRA layers that path does not cover. Finished or cancelled
sequences leave the batch between steps, so new requests never wait for a whole batch to finish.

Pure Python + torch: no grpc, no ray. Results are delivered through per-request callbacks,
called on the engine thread.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from lorag.generation import lora_batch

log = logging.getLogger("lorag.generation.engine")

BASE = "__base__"


@dataclass(frozen=True)
class SamplingParams:
    """Per-request decoding parameters. ``temperature == 0`` means greedy decoding."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    seed: int | None = None
    repetition_penalty: float = 1.0
    ignore_eos: bool = False  # keep going past end-of-sequence tokens (benchmarks at equal work)


@dataclass
class TokenEvent:
    """A piece of output: new text (and token ids); ``finish_reason`` set on the last event."""

    text: str
    token_ids: list[int]
    finish_reason: str | None = None  # "stop" | "length" | "stop_sequence" | "cancelled" | "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


@dataclass
class Sequence:
    prompt_ids: list[int]
    adapter: str
    params: SamplingParams
    sink: Callable[[TokenEvent], None]
    id: int = 0
    out_ids: list[int] = field(default_factory=list)
    emitted_chars: int = 0
    cancelled: bool = False
    finished: bool = False
    generator: torch.Generator | None = None
    submitted: float = field(default_factory=time.perf_counter)

    def cancel(self) -> None:
        """Ask the engine to drop this sequence at its next step (frees the batch slot)."""
        self.cancelled = True


class BatchEngine:
    """Runs generation for submitted sequences with continuous, adapter-mixed batching."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch_size: int = 8,
        idle_wait_s: float = 0.05,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.idle_wait_s = idle_wait_s
        self.eos_ids = _eos_ids(tokenizer, model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.device = _device_of(model)  # batch tensors live there; sampling runs on the CPU
        self._pending: queue.Queue[Sequence] = queue.Queue()
        self._commands: queue.Queue[tuple[Callable[[], Any], threading.Event, list]] = queue.Queue()
        self._active: list[Sequence] = []
        self._cache = None
        self._mask: torch.Tensor | None = None  # [B, L] 1 = real token
        self._next_pos: torch.Tensor | None = None  # [B]
        self._last: torch.Tensor | None = None  # [B] token to feed next
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.steps = 0
        self.batch_rows = 0  # sum of batch sizes over decode steps (occupancy = batch_rows/steps)
        self._thread = threading.Thread(target=self._run, name="lorag-generation-engine", daemon=True)
        self._thread.start()

    # -- public API (any thread) ------------------------------------------------------------
    def submit(self, seq: Sequence) -> Sequence:
        seq.id = next(self._ids)
        if seq.params.seed is not None:
            seq.generator = torch.Generator().manual_seed(int(seq.params.seed))
        self._pending.put(seq)
        self._wake.set()
        return seq

    def run_exclusive(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run ``fn`` on the engine thread between steps (adapter load/unload)."""
        done, box = threading.Event(), []
        self._commands.put((fn, done, box))
        self._wake.set()
        if not done.wait(timeout):
            raise TimeoutError("engine did not run the command in time")
        if box and isinstance(box[0], BaseException):
            raise box[0]
        return box[0] if box else None

    @property
    def active_count(self) -> int:
        return len(self._active) + self._pending.qsize()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    # -- engine thread ------------------------------------------------------------------------
    def _run(self) -> None:
        with torch.inference_mode():
            while not self._stop.is_set():
                try:
                    self._run_commands()
                    self._admit()
                    if not self._active:
                        self._wake.wait(self.idle_wait_s)
                        self._wake.clear()
                        continue
                    self._decode_step()
                except Exception as exc:  # noqa: BLE001 - fail the batch, keep serving
                    log.exception("generation step failed")
                    for seq in self._active:
                        self._finish(seq, "error", error=f"{type(exc).__name__}")
                    self._reset_batch()

    def _run_commands(self) -> None:
        while True:
            try:
                fn, done, box = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                box.append(fn())
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                box.append(exc)
            done.set()

    def _admit(self) -> None:
        room = self.max_batch_size - len(self._active)
        newcomers: list[Sequence] = []
        while room > 0:
            try:
                seq = self._pending.get_nowait()
            except queue.Empty:
                break
            if seq.cancelled:
                self._finish(seq, "cancelled")
                continue
            newcomers.append(seq)
            room -= 1
        if newcomers:
            self._prefill(newcomers)

    def _forward(self, adapters: list[str], **kwargs):
        # A PeftModel called without adapter_names would apply its *active* adapter to every row.
        if hasattr(self.model, "peft_config"):
            if lora_batch.rows_supported(self.model):
                with lora_batch.rows(self.model, adapters):
                    return self.model(**kwargs, use_cache=True)
            kwargs["adapter_names"] = adapters
        elif any(a != BASE for a in adapters):
            raise RuntimeError("an adapter was requested but none is loaded")
        return self.model(**kwargs, use_cache=True)

    def _prefill(self, seqs: list[Sequence]) -> None:
        width = max(len(s.prompt_ids) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, s in enumerate(seqs):
            n = len(s.prompt_ids)
            ids[row, width - n :] = torch.tensor(s.prompt_ids, dtype=torch.long)
            mask[row, width - n :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        out = self._forward(
            [s.adapter for s in seqs], input_ids=ids, attention_mask=mask, position_ids=positions
        )
        logits = out.logits[:, -1, :].float()
        first = self._sample(seqs, logits)
        start = len(self._active)
        self._merge(seqs, _cache_of(out), mask, first)
        self._emit_and_retire(first, start=start)

    def _merge(self, seqs: list[Sequence], cache, mask: torch.Tensor, first: torch.Tensor) -> None:
        next_pos = mask.sum(-1)
        if not self._active:
            self._cache, self._mask, self._next_pos, self._last = cache, mask, next_pos, first
            self._active = list(seqs)
            return
        old_len, new_len = self._mask.shape[1], mask.shape[1]
        width = max(old_len, new_len)
        for layer_old, layer_new in zip(self._cache.layers, cache.layers, strict=True):
            layer_old.keys = torch.cat([_lpad(layer_old.keys, width), _lpad(layer_new.keys, width)], 0)
            layer_old.values = torch.cat([_lpad(layer_old.values, width), _lpad(layer_new.values, width)], 0)
        self._mask = torch.cat([_lpad(self._mask, width, dim=1), _lpad(mask, width, dim=1)], 0)
        self._next_pos = torch.cat([self._next_pos, next_pos])
        self._last = torch.cat([self._last, first])
        self._active.extend(seqs)

    def _decode_step(self) -> None:
        batch = len(self._active)
        mask = torch.cat([self._mask, torch.ones((batch, 1), dtype=torch.long, device=self.device)], dim=1)
        out = self._forward(
            [s.adapter for s in self._active],
            input_ids=self._last[:, None],
            attention_mask=mask,
            position_ids=self._next_pos[:, None],
            **{_cache_kwarg(self.model): self._cache},
        )
        self._cache, self._mask = _cache_of(out), mask
        self._next_pos = self._next_pos + 1
        self.steps += 1
        self.batch_rows += batch
        nxt = self._sample(self._active, out.logits[:, -1, :].float())
        self._last = nxt
        self._emit_and_retire(nxt)

    def _sample(self, seqs: list[Sequence], logits: torch.Tensor) -> torch.Tensor:
        logits = logits.cpu()
        chosen = torch.empty(len(seqs), dtype=torch.long)
        for row, seq in enumerate(seqs):
            chosen[row] = _sample_row(logits[row], seq)
        return chosen.to(self.device)

    def _emit_and_retire(self, tokens: torch.Tensor, *, start: int = 0) -> None:
        """Append ``tokens`` to rows ``start:``, then drop finished or cancelled rows."""
        for offset, token in enumerate(tokens.tolist()):
            seq = self._active[start + offset]
            if seq.cancelled:
                continue
            reason = self._append(seq, token)
            if reason is not None:
                self._finish(seq, reason)
        keep: list[int] = []
        for row, seq in enumerate(self._active):
            if seq.cancelled and not seq.finished:
                self._finish(seq, "cancelled")
            if not seq.finished:
                keep.append(row)
        if len(keep) != len(self._active):
            self._select(keep)

    def _append(self, seq: Sequence, token: int) -> str | None:
        if token in self.eos_ids and not seq.params.ignore_eos:
            self._emit(seq, final=True)
            return "stop"
        seq.out_ids.append(token)
        text = self.tokenizer.decode(seq.out_ids, skip_special_tokens=True)
        for stop in seq.params.stop:
            at = text.find(stop, max(0, seq.emitted_chars - len(stop)))
            if at >= 0:
                self._emit(seq, final=True, text=text[:at])
                return "stop_sequence"
        if len(seq.out_ids) >= seq.params.max_new_tokens:
            self._emit(seq, final=True, text=text)
            return "length"
        self._emit(seq, final=False, text=text)
        return None

    def _emit(self, seq: Sequence, *, final: bool, text: str | None = None) -> None:
        if text is None:
            text = self.tokenizer.decode(seq.out_ids, skip_special_tokens=True)
        if final:
            safe = len(text)
        else:
            # Hold back what could be the start of a stop sequence or an incomplete character.
            hold = max((len(s) - 1 for s in seq.params.stop), default=0)
            safe = len(text) - hold
            if text.endswith("\ufffd"):
                safe = min(safe, len(text) - 1)
        if safe > seq.emitted_chars:
            piece = text[seq.emitted_chars : safe]
            seq.emitted_chars = safe
            seq.sink(TokenEvent(text=piece, token_ids=seq.out_ids[-1:]))

    def _finish(self, seq: Sequence, reason: str, *, error: str | None = None) -> None:
        seq.finished = True
        seq.sink(
            TokenEvent(
                text="",
                token_ids=[],
                finish_reason=reason,
                prompt_tokens=len(seq.prompt_ids),
                completion_tokens=len(seq.out_ids),
                error=error,
            )
        )

    def _select(self, keep: list[int]) -> None:
        if not keep:
            self._reset_batch()
            return
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        self._active = [self._active[i] for i in keep]
        self._mask = self._mask[idx]
        self._next_pos = self._next_pos[idx]
        self._last = self._last[idx]
        # Drop leading columns that are padding for every remaining row.
        start = int((self._mask.sum(0) > 0).nonzero()[0])
        self._mask = self._mask[:, start:]
        for layer in self._cache.layers:
            layer.keys = layer.keys[idx, :, start:, :]
            layer.values = layer.values[idx, :, start:, :]

    def _reset_batch(self) -> None:
        self._active, self._cache, self._mask, self._next_pos, self._last = [], None, None, None, None


def _lpad(t: torch.Tensor, width: int, dim: int = 2) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=t.dtype, device=t.device), t], dim=dim)


def _device_of(model: Any) -> torch.device:
    for param in model.parameters():
        return param.device
    return torch.device("cpu")


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


_CACHE_KWARG: dict[type, str] = {}


def _cache_kwarg(model: Any) -> str:
    """``cache`` (transformers >= 5.24) or ``past_key_values``, as the model's forward names it."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    kind = type(base)
    name = _CACHE_KWARG.get(kind)
    if name is None:
        params = inspect.signature(kind.forward).parameters
        name = _CACHE_KWARG[kind] = "cache" if "cache" in params else "past_key_values"
    return name


def _eos_ids(tokenizer: Any, model: Any) -> set[int]:
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen_cfg = getattr(model, "generation_config", None)
    eos = getattr(gen_cfg, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(int(e) for e in eos)
    return ids or {0}


def _sample_row(logits: torch.Tensor, seq: Sequence) -> int:
    p = seq.params
    if p.repetition_penalty != 1.0 and (seq.out_ids or seq.prompt_ids):
        seen = torch.tensor(sorted(set(seq.prompt_ids) | set(seq.out_ids)), dtype=torch.long)
        vals = logits[seen]
        logits[seen] = torch.where(vals > 0, vals / p.repetition_penalty, vals * p.repetition_penalty)
    if p.temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits / p.temperature
    if p.top_k > 0:
        k = min(p.top_k, logits.shape[-1])
        kth = torch.topk(logits, k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if p.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        cumulative = sorted_probs.cumsum(-1)
        cut = cumulative - sorted_probs > p.top_p
        sorted_probs[cut] = 0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=seq.generator))

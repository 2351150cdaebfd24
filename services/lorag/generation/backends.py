"""Generation backends behind one interface.

- ``LocalBackend``: transformers + peft on this process, many LoRA adapters loaded at once, the
  continuous mixed-adapter batching of :mod:`lorag.generation.engine`.
- ``TgiBackend``: a remote TGI / LoRAX server over HTTP, adapter passed as
  ``parameters.adapter_id`` on the documented ``/generate_stream`` JSON + SSE wire format (the
  official ``text-generation`` client has no adapter argument and pins an old
  ``huggingface-hub``, so the wire format is spoken directly).

No grpc, no ray here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lorag.common.errors import FailedPrecondition, InvalidArgument, Unavailable
from lorag.common.safeload import require_safetensors_adapter
from lorag.embedding import models as model_files
from lorag.generation import lora_batch
from lorag.generation.engine import BASE, BatchEngine, SamplingParams, Sequence, TokenEvent
from lorag.generation.models import ModelSource, load_bnb, weights_sha256

log = logging.getLogger("lorag.generation.backends")


@dataclass(frozen=True)
class BackendRequest:
    prompt: str
    adapter: str  # adapter version id, or BASE
    params: SamplingParams


@dataclass
class LoadedAdapterInfo:
    version_id: str
    path: str
    size_bytes: int
    load_time: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)


class GenerationBackend(Protocol):
    name: str
    model: str

    def max_context(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def render_chat(self, messages: list[dict[str, str]]) -> str: ...

    async def load_adapter(self, version_id: str, path: str) -> None: ...

    async def unload_adapter(self, version_id: str) -> None: ...

    def loaded_adapters(self) -> list[LoadedAdapterInfo]: ...

    def stream(self, request: BackendRequest) -> AsyncIterator[TokenEvent]: ...

    def weights_sha256(self) -> str: ...

    async def close(self) -> None: ...


def _on_passing_thread(fn):
    """``fn()`` on a new thread that ends with it; returns its result or raises its exception.

    Loading and quantizing a model runs torch kernels; torch's OpenMP keeps a team of worker
    threads per calling thread for as long as that thread lives. Done on the constructor's
    long-lived thread, that team would stay beside the engine thread's, and with more OpenMP
    threads than cores every decoding kernel pays a wake-up (see
    :mod:`lorag.generation.openmp`). A thread that ends takes its team with it.
    """
    box: list = []

    def run() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            box.append((False, exc))

    thread = threading.Thread(target=run, name="lorag-generation-load", daemon=True)
    thread.start()
    thread.join()
    ok, value = box[0]
    if not ok:
        raise value
    return value


class LocalBackend:
    """A base model on this process with any number of LoRA adapters (peft)."""

    name = "local"

    def __init__(
        self,
        source: ModelSource,
        *,
        max_batch_size: int = 8,
        torch_threads: int = 0,
        quantize_int8: bool = False,
        bnb_quantization: str = "none",
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(torch_threads or max(1, os.cpu_count() or 1))
        self.model = source.name
        self.source = source
        self.tokenizer = AutoTokenizer.from_pretrained(source.path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if bnb_quantization != "none" and quantize_int8:
            raise FailedPrecondition(
                "LORAG_GENERATION_QUANTIZE_INT8 (torch.ao) and LORAG_GENERATION_BNB_QUANTIZATION "
                "exclude each other"
            )

        def load():
            if bnb_quantization != "none":
                # bitsandbytes 8/4-bit weights (GPU, or CPU with bitsandbytes>=0.50); peft wraps
                # them with its own LoRA layers, which lora_batch serves like plain ones.
                model = load_bnb(source.path, bnb_quantization)
            else:
                model = AutoModelForCausalLM.from_pretrained(
                    source.path, dtype=torch.float32, use_safetensors=True
                )
            model.eval()
            if quantize_int8:
                # int8 dynamic quantization of every Linear (weights int8, activations quantized
                # on the fly). peft cannot attach LoRA to quantized Linear modules, so a
                # quantized replica serves the base model only.
                return model_files.quantize_int8(model)
            return model, False

        base, self.quantized = _on_passing_thread(load)
        self.base = base
        self.engine = BatchEngine(base, self.tokenizer, max_batch_size=max_batch_size)
        self._adapters: OrderedDict[str, LoadedAdapterInfo] = OrderedDict()
        self._loads: dict[str, asyncio.Future] = {}
        self._in_use: dict[str, int] = {}  # version id -> requests generating with it
        self._unload_when_idle: set[str] = set()
        self._sha = ""

    # -- model facts ----------------------------------------------------------------------------
    def max_context(self) -> int:
        return int(getattr(self.base.config, "max_position_embeddings", 2048))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def weights_sha256(self) -> str:
        if not self._sha:
            self._sha = weights_sha256(self.source.path)
        return self._sha

    # -- adapters -------------------------------------------------------------------------------
    async def load_adapter(self, version_id: str, path: str) -> None:
        """Load adapter files under ``version_id`` (idempotent; concurrent loads share one)."""
        if version_id in self._adapters:
            self._adapters.move_to_end(version_id)
            return
        if self.quantized:
            raise FailedPrecondition(
                "this replica runs an int8-quantized base model, which cannot apply LoRA adapters "
                "(LORAG_GENERATION_QUANTIZE_INT8)"
            )
        pending = self._loads.get(version_id)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._loads[version_id] = pending
            try:
                await asyncio.to_thread(self.engine.run_exclusive, lambda: self._load(version_id, path))
                size = sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))
                self._adapters[version_id] = LoadedAdapterInfo(version_id, path, size)
                pending.set_result(None)
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # mark retrieved: the caller below re-raises it
                raise
            finally:
                self._loads.pop(version_id, None)
        else:
            await asyncio.shield(pending)

    def _load(self, version_id: str, path: str) -> None:
        from peft import PeftModel

        model = self.engine.model
        path = require_safetensors_adapter(path)
        try:
            if hasattr(model, "peft_config"):
                model.load_adapter(path, adapter_name=version_id)
            else:
                model = PeftModel.from_pretrained(self.base, path, adapter_name=version_id)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise FailedPrecondition(f"adapter {version_id} does not fit model {self.model}: {exc}") from exc
        model.eval()
        lora_batch.install(model)  # new LoRA modules (other target modules) get the gathered path
        self.engine.model = model

    async def unload_adapter(self, version_id: str) -> None:
        """Free an adapter once no request generates with it any more.

        In-flight requests finish on the version they started with. The last adapter stays
        loaded: peft cannot drop its final adapter in place.
        """
        if version_id not in self._adapters:
            return
        if self._in_use.get(version_id):
            self._unload_when_idle.add(version_id)
            return
        self._unload_when_idle.discard(version_id)

        def unload() -> bool:
            model = self.engine.model
            if len(model.peft_config) <= 1:
                return False
            model.delete_adapter(version_id)
            return True

        if await asyncio.to_thread(self.engine.run_exclusive, unload):
            self._adapters.pop(version_id, None)

    def loaded_adapters(self) -> list[LoadedAdapterInfo]:
        return list(self._adapters.values())

    # -- generation -----------------------------------------------------------------------------
    async def stream(self, request: BackendRequest) -> AsyncIterator[TokenEvent]:
        if request.adapter != BASE:
            info = self._adapters.get(request.adapter)
            if info is None:
                raise FailedPrecondition(f"adapter {request.adapter} is not loaded on this replica")
            info.last_used = time.time()
            self._adapters.move_to_end(request.adapter)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[TokenEvent] = asyncio.Queue()
        prompt_ids = self.tokenizer(request.prompt, add_special_tokens=False)["input_ids"]
        if self.tokenizer.bos_token_id is not None and not request.prompt.startswith(
            self.tokenizer.bos_token or "\0"
        ):
            prompt_ids = [self.tokenizer.bos_token_id, *prompt_ids]
        seq = Sequence(
            prompt_ids=prompt_ids,
            adapter=request.adapter,
            params=request.params,
            sink=lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev),
        )
        self._in_use[request.adapter] = self._in_use.get(request.adapter, 0) + 1
        self.engine.submit(seq)
        try:
            while True:
                event = await events.get()
                yield event
                if event.finish_reason is not None:
                    return
        finally:
            seq.cancel()  # no-op when finished; frees the batch slot at once otherwise
            left = self._in_use.pop(request.adapter, 1) - 1
            if left > 0:
                self._in_use[request.adapter] = left
            elif request.adapter in self._unload_when_idle:
                await self.unload_adapter(request.adapter)

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.close)


class TgiBackend:
    """A remote TGI/LoRAX server; adapters are loaded by the server from ``adapter_id``."""

    name = "tgi"

    def __init__(self, base_url: str, *, model: str = "tgi", timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self._session = None
        self._adapters: OrderedDict[str, LoadedAdapterInfo] = OrderedDict()

    def max_context(self) -> int:
        return 0  # the server enforces its own limit

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # estimate; the server reports generated tokens exactly

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
        return "".join(parts) + "<|im_start|>assistant\n"

    def weights_sha256(self) -> str:
        return ""

    async def load_adapter(self, version_id: str, path: str) -> None:
        self._adapters.setdefault(version_id, LoadedAdapterInfo(version_id, path, 0))

    async def unload_adapter(self, version_id: str) -> None:
        self._adapters.pop(version_id, None)

    def loaded_adapters(self) -> list[LoadedAdapterInfo]:
        return list(self._adapters.values())

    def _session_get(self):
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    @staticmethod
    def payload(request: BackendRequest) -> dict:
        """The TGI/LoRAX JSON body for a request (documented wire format)."""
        p = request.params
        params: dict = {
            "max_new_tokens": p.max_new_tokens,
            "details": True,
            "do_sample": p.temperature > 0,
        }
        if p.temperature > 0:
            params["temperature"] = p.temperature
            if p.top_p < 1.0:
                params["top_p"] = p.top_p
            if p.top_k > 0:
                params["top_k"] = p.top_k
        if p.stop:
            params["stop"] = list(p.stop)
        if p.seed is not None:
            params["seed"] = p.seed
        if p.repetition_penalty != 1.0:
            params["repetition_penalty"] = p.repetition_penalty
        if request.adapter != BASE:
            params["adapter_id"] = request.adapter
        return {"inputs": request.prompt, "parameters": params}

    async def stream(self, request: BackendRequest) -> AsyncIterator[TokenEvent]:
        import aiohttp

        body = self.payload(request)
        completion = 0
        try:
            async with self._session_get().post(
                f"{self.base_url}/generate_stream", json=body, headers={"Accept": "text/event-stream"}
            ) as resp:
                if resp.status >= 400:
                    detail = (await resp.text())[:500]
                    if resp.status in (400, 422):
                        raise InvalidArgument(f"generation server rejected the request: {detail}")
                    raise Unavailable(f"generation server answered HTTP {resp.status}: {detail}")
                async for event in _sse_events(resp.content):
                    if "error" in event:
                        raise Unavailable(f"generation server error: {event['error']}")
                    token = event.get("token") or {}
                    details = event.get("details")
                    if not token.get("special") and token.get("text"):
                        completion += 1
                        yield TokenEvent(text=token["text"], token_ids=[int(token.get("id", 0))])
                    if details is not None:
                        yield TokenEvent(
                            text="",
                            token_ids=[],
                            finish_reason=_TGI_FINISH.get(details.get("finish_reason"), "stop"),
                            completion_tokens=int(details.get("generated_tokens", completion)),
                            prompt_tokens=self.count_tokens(request.prompt),
                        )
                        return
        except aiohttp.ClientError as exc:
            raise Unavailable(f"generation server unreachable: {type(exc).__name__}") from exc
        raise Unavailable("generation server closed the stream before finishing")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


_TGI_FINISH = {"length": "length", "eos_token": "stop", "stop_sequence": "stop_sequence"}


async def _sse_events(content) -> AsyncIterator[dict]:
    """Parse ``data:`` lines of a server-sent event stream into JSON objects."""
    buffer = b""
    async for chunk in content.iter_any():
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if not data or data == b"[DONE]":
                continue
            try:
                yield json.loads(data)
            except json.JSONDecodeError:
                log.warning("skipping malformed SSE data line")

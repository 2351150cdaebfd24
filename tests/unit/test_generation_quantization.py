"""Quantized generation bases: bitsandbytes 8/4-bit on a CUDA GPU or on its CPU backend.

The tests run bitsandbytes for real on the CPU (the test extra installs it): a 4-bit base loads,
serves LoRA adapters through the batched path, and each row of a mixed batch gets its own
adapter, exactly as peft's own mixed-batch path computes it.
"""

import asyncio

import pytest
import torch
from pydantic import ValidationError

from lorag.common.errors import FailedPrecondition
from lorag.generation import lora_batch
from lorag.generation.backends import BackendRequest, LocalBackend
from lorag.generation.engine import BASE, SamplingParams
from lorag.generation.models import ModelSource, bnb_config, bnb_device
from lorag.generation.settings import GenerationSettings
from tests.support.models import make_lora, tiny_llama_dir


def test_bnb_setting_accepts_known_modes_only():
    assert GenerationSettings().bnb_quantization == "none"
    assert GenerationSettings(bnb_quantization="nf4").bnb_quantization == "nf4"
    with pytest.raises(ValidationError):
        GenerationSettings(bnb_quantization="int4")


def test_bnb_device_prefers_the_gpu_and_needs_bitsandbytes():
    assert bnb_device("nf4", cuda=True, bitsandbytes=True, cpu_backend=False) == "cuda"
    assert bnb_device("int8", cuda=False, bitsandbytes=True, cpu_backend=True) == "cpu"
    with pytest.raises(FailedPrecondition, match=r"lorag\[quant\]"):
        bnb_device("nf4", cuda=True, bitsandbytes=False)
    with pytest.raises(FailedPrecondition, match=r"needs a CUDA GPU, or bitsandbytes>=0.50"):
        bnb_device("fp4", cuda=False, bitsandbytes=True, cpu_backend=False)
    with pytest.raises(FailedPrecondition, match="unknown bitsandbytes quantization 'int4'"):
        bnb_device("int4", cuda=True, bitsandbytes=True)


def test_this_process_runs_bitsandbytes_on_the_cpu():
    assert bnb_device("nf4") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_bnb_configs_for_each_mode():
    int8 = bnb_config("int8", device="cpu")
    assert int8.load_in_8bit and not int8.load_in_4bit
    nf4 = bnb_config("nf4", device="cpu")
    assert nf4.load_in_4bit and nf4.bnb_4bit_quant_type == "nf4" and nf4.bnb_4bit_use_double_quant
    assert nf4.bnb_4bit_compute_dtype == torch.float32  # the CPU backend computes in the input dtype
    assert bnb_config("fp4", device="cpu").bnb_4bit_quant_type == "fp4"
    with pytest.raises(FailedPrecondition, match="unknown bitsandbytes quantization 'int4'"):
        bnb_config("int4", device="cpu")


def test_local_backend_refuses_bnb_with_torch_int8():
    source = ModelSource("tiny", str(tiny_llama_dir()), False)
    with pytest.raises(FailedPrecondition, match="exclude each other"):
        LocalBackend(source, bnb_quantization="int8", quantize_int8=True)


@pytest.fixture(scope="module")
def nf4_backend(tmp_path_factory):
    base_dir = tiny_llama_dir()
    ad = tmp_path_factory.mktemp("nf4-adapters")
    a1 = make_lora(base_dir, ad / "a1", seed=21)
    a2 = make_lora(base_dir, ad / "a2", seed=22, rank=8, modules=("q_proj", "k_proj", "v_proj", "o_proj"))
    backend = LocalBackend(ModelSource("tiny", str(base_dir), False), bnb_quantization="nf4")

    async def load():
        await backend.load_adapter("a1", str(a1))
        await backend.load_adapter("a2", str(a2))

    asyncio.run(load())
    yield backend
    asyncio.run(backend.close())


def test_nf4_base_is_4bit_and_adapters_take_the_batched_path(nf4_backend):
    import bitsandbytes as bnb

    model = nf4_backend.engine.model
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantized) == 2 * 7  # every Linear of both layers (attention and MLP)
    assert lora_batch.rows_supported(model)
    assert all(
        "_lorag_peft_forward" in m.__dict__ for m in model.modules() if hasattr(m, "lora_A") and m.lora_A
    )


def test_nf4_mixed_rows_equal_peft_mixed_batches(nf4_backend):
    model, tok = nf4_backend.engine.model, nf4_backend.tokenizer
    ids = tok(
        ["Once upon a time there", "The capital of", "def fib(n):", "Hello"],
        return_tensors="pt",
        padding=True,
    )
    names = ["a1", BASE, "a2", "a1"]

    def peft_path(**kw):
        with torch.no_grad():
            # peft's own mixed-batch forward, bypassing the batched path
            saved = {m: m.forward for m in model.modules() if "_lorag_peft_forward" in m.__dict__}
            try:
                for m in saved:
                    m.forward = m.__dict__["_lorag_peft_forward"]
                return model(**kw, adapter_names=names).logits
            finally:
                for m, f in saved.items():
                    m.forward = f

    def engine(dispatch):
        return nf4_backend.engine.run_exclusive(dispatch)

    def fast():
        with torch.no_grad(), lora_batch.rows(model, names):
            return model(**ids).logits

    got, want = engine(fast), engine(lambda: peft_path(**ids))
    assert torch.allclose(got, want, atol=1e-4)

    def base_rows():
        with torch.no_grad(), lora_batch.rows(model, [BASE] * 4):
            return model(**ids).logits

    base = engine(base_rows)
    assert torch.equal(got[1], base[1])  # the base row of a mixed batch gets no adapter at all
    assert not torch.allclose(got[0], base[0], atol=1e-3)  # and adapter rows do get theirs


def test_nf4_backend_generates_with_each_adapter(nf4_backend):
    params = SamplingParams(max_new_tokens=6, ignore_eos=True)

    async def one(adapter: str) -> list[int]:
        ids: list[int] = []
        async for ev in nf4_backend.stream(BackendRequest("Tell me a story about", adapter, params)):
            ids += ev.token_ids
            if ev.finish_reason:
                assert ev.finish_reason == "length" and ev.completion_tokens == 6
        return ids

    async def all_three():
        return await asyncio.gather(one(BASE), one("a1"), one("a2"))

    outs = asyncio.run(all_three())
    assert all(len(o) == 6 for o in outs)
    assert len({tuple(o) for o in outs}) > 1  # the adapters change what the 4-bit base says

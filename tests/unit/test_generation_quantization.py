"""Quantized generation bases: bitsandbytes on a CUDA GPU (opt-in), refused clearly elsewhere."""

import pytest
from pydantic import ValidationError

from lorag.common.errors import FailedPrecondition
from lorag.generation.backends import LocalBackend
from lorag.generation.models import ModelSource, bnb_config
from lorag.generation.settings import GenerationSettings
from tests.support.models import tiny_llama_dir


def test_bnb_setting_accepts_known_modes_only():
    assert GenerationSettings().bnb_quantization == "none"
    assert GenerationSettings(bnb_quantization="nf4").bnb_quantization == "nf4"
    with pytest.raises(ValidationError):
        GenerationSettings(bnb_quantization="int4")


def test_bnb_needs_a_gpu_and_bitsandbytes():
    with pytest.raises(FailedPrecondition, match="needs a CUDA GPU"):
        bnb_config("int8", cuda=False, bitsandbytes=True)
    with pytest.raises(FailedPrecondition, match=r"lorag\[gpu\]"):
        bnb_config("nf4", cuda=True, bitsandbytes=False)


def test_bnb_configs_for_each_mode():
    int8 = bnb_config("int8", cuda=True, bitsandbytes=True)
    assert int8.load_in_8bit and not int8.load_in_4bit
    nf4 = bnb_config("nf4", cuda=True, bitsandbytes=True)
    assert nf4.load_in_4bit and nf4.bnb_4bit_quant_type == "nf4" and nf4.bnb_4bit_use_double_quant
    assert bnb_config("fp4", cuda=True, bitsandbytes=True).bnb_4bit_quant_type == "fp4"


def test_local_backend_refuses_bnb_without_gpu_or_with_int8():
    source = ModelSource("tiny", str(tiny_llama_dir()), False)
    with pytest.raises(FailedPrecondition, match="LORAG_GENERATION_BNB_QUANTIZATION"):
        LocalBackend(source, bnb_quantization="nf4")
    with pytest.raises(FailedPrecondition, match="exclude each other"):
        LocalBackend(source, bnb_quantization="int8", quantize_int8=True)

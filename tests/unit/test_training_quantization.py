"""The int8 base-model artifact: int8 weights in safetensors, a manifest with size and loss deltas."""

from __future__ import annotations

import json

import pytest

from lorag.common.errors import InvalidArgument
from lorag.training import quantization
from lorag.training.validation import Record
from tests.support.models import tiny_llama_dir

RECORDS = [
    Record(
        line=0, kind="generation", messages=(("user", f"What is {i} plus {i}?"), ("assistant", f"{2 * i}."))
    )
    for i in range(4)
]


def test_int8_artifact_records_size_and_quality_deltas(tmp_path):
    from safetensors import safe_open

    art = quantization.quantize_base(tiny_llama_dir(), out_root=tmp_path, name="tiny", records=RECORDS)
    manifest = json.loads((tmp_path / "generation" / "tiny-int8" / quantization.MANIFEST).read_text())
    assert manifest["mode"] == "int8" and manifest["method"] == "torch.ao dynamic int8"
    # (this tiny model is mostly its tied embedding, kept in float32: no size win here; SmolLM2
    # shrinks to about half, see the README)
    assert art.quantized_bytes > 0 and art.size_ratio == pytest.approx(art.quantized_bytes / art.fp32_bytes)
    assert art.loss_delta == pytest.approx(art.quantized_loss - art.fp32_loss) and art.records == 4
    with safe_open(str(tmp_path / "generation" / "tiny-int8" / quantization.WEIGHTS), "pt") as f:
        keys = list(f.keys())
        q = next(k for k in keys if k.endswith("q_proj.weight.int8"))
        assert str(f.get_tensor(q).dtype) == "torch.int8"  # 1 byte per weight instead of 4
        assert q.replace(".int8", ".scales") in keys
    assert (tmp_path / "generation" / "tiny-int8" / "tokenizer.json").exists()


def test_unknown_mode_is_refused(tmp_path):
    with pytest.raises(InvalidArgument):
        quantization.quantize_base(
            tiny_llama_dir(), out_root=tmp_path, name="x", records=RECORDS, mode="int4"
        )


@pytest.mark.parametrize("mode", ["nf4", "bnb-int8"])
def test_bitsandbytes_modes_measure_memory_and_loss(tmp_path, mode):
    """bitsandbytes modes run here on its CPU backend: nothing is written, the deltas are real."""
    art = quantization.quantize_base(
        tiny_llama_dir(), out_root=tmp_path, name="tiny", records=RECORDS, mode=mode
    )
    assert art.mode == mode and art.path == "" and not any(tmp_path.iterdir())
    assert 0 < art.quantized_bytes < art.fp32_bytes  # the quantized Linears take less memory
    assert art.quantized_loss != art.fp32_loss  # quantization moved the loss, by a measured delta
    assert art.loss_delta == pytest.approx(art.quantized_loss - art.fp32_loss)

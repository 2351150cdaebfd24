"""Adapter validation: what is refused before anything becomes visible, and why."""

import json
import pickle
import struct

import pytest

from lorag.adapters import validation
from lorag.adapters.settings import DEFAULT_BASE_MODELS, BaseModelSpec
from lorag.common.errors import FailedPrecondition, InvalidArgument
from tests.support.adapters import synthetic_llama_adapter

BASE = "smollm2-135m-instruct"
SPEC = DEFAULT_BASE_MODELS[BASE]


def files_of(d):
    return {p.name: p for p in d.iterdir()}


def validate(d, *, max_rank=64, spec=SPEC, base=BASE, kind="generation"):
    return validation.validate_adapter(files_of(d), base_model=base, spec=spec, kind=kind, max_rank=max_rank)


def test_a_well_formed_adapter_is_described(tmp_path):
    info = validate(
        synthetic_llama_adapter(tmp_path / "a", rank=8, targets=("v_proj", "q_proj", "down_proj"))
    )
    assert (info.rank, info.alpha, info.target_modules) == (8, 16.0, ("down_proj", "q_proj", "v_proj"))
    assert info.tensor_count == 2 * 2 * 3


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("../adapter_config.json", "not a plain file name"),
        ("/abs/adapter_config.json", "not a plain file name"),
        ("..", "not a plain file name"),
        ("c:adapter_config.json", "not a plain file name"),
        ("sub\\adapter_config.json", "not a plain file name"),
        ("adapter_model.bin", "pickle-based checkpoint"),
        ("pytorch_model.PT", "pickle-based checkpoint"),
        ("weights.pkl", "pickle-based checkpoint"),
        ("tokenizer.json", "not an allowed file"),
        ("adapter_config.json\x00", "printable"),
        ("", "is required"),
    ],
)
def test_file_names_are_path_safe_and_allow_listed(name, needle):
    with pytest.raises(InvalidArgument) as info:
        validation.check_file_name(name)
    assert needle in str(info.value)


def test_a_pickle_renamed_to_safetensors_is_refused_without_unpickling(tmp_path):
    d = synthetic_llama_adapter(tmp_path / "a")
    marker = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self):
            return (marker.write_text, ("pwned",))

    (d / "adapter_model.safetensors").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(InvalidArgument) as info:
        validate(d)
    assert "pickle" in str(info.value) and str(info.value).startswith("adapter_model.safetensors:")
    assert not marker.exists()


def test_a_torch_zip_archive_is_refused(tmp_path):
    d = synthetic_llama_adapter(tmp_path / "a")
    (d / "adapter_model.safetensors").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    with pytest.raises(InvalidArgument, match="torch.save archive"):
        validate(d)


@pytest.mark.parametrize("cut", [4, 20, -10])
def test_truncated_or_corrupt_safetensors_are_refused(tmp_path, cut):
    d = synthetic_llama_adapter(tmp_path / "a")
    path = d / "adapter_model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(InvalidArgument) as info:
        validate(d)
    assert str(info.value).startswith("adapter_model.safetensors:")


def test_overlapping_tensor_offsets_are_refused(tmp_path):
    d = synthetic_llama_adapter(tmp_path / "a", targets=("q_proj",), layers=1)
    path = d / "adapter_model.safetensors"
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    names = [k for k in header if k != "__metadata__"]
    header[names[1]]["data_offsets"] = header[names[0]]["data_offsets"]
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    with pytest.raises(InvalidArgument):
        validate(d)


def test_rank_above_the_limit_is_refused(tmp_path):
    d = synthetic_llama_adapter(tmp_path / "a", rank=32)
    with pytest.raises(InvalidArgument, match="rank r=32 is above the limit of 16"):
        validate(d, max_rank=16)


@pytest.mark.parametrize(
    "declared",
    ["HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2-135m-instruct", "/models/SmolLM2-135M-Instruct/"],
)
def test_base_model_names_that_match(tmp_path, declared):
    validate(synthetic_llama_adapter(tmp_path / "a", base=declared))


def test_another_base_model_is_a_failed_precondition(tmp_path):
    with pytest.raises(FailedPrecondition, match="'meta-llama/Llama-3.1-8B'"):
        validate(synthetic_llama_adapter(tmp_path / "a", base="meta-llama/Llama-3.1-8B"))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"peft_type": "IA3"}, "peft_type must be LORA"),
        ({"target_modules": ["q_proj", "attn_c"]}, "target module 'attn_c' does not exist"),
        ({"target_modules": ".*proj"}, "not a pattern"),
        ({"r": 0}, "r must be a positive integer"),
        ({"r": 4}, "lora_A must be [r=4, 576]"),
        ({"lora_alpha": -1}, "lora_alpha must be a positive number"),
        ({"use_dora": True}, "DoRA"),
        ({"bias": "all"}, "bias must be 'none'"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"task_type": "SEQ_CLS"}, "does not fit a generation adapter"),
        ({"base_model_name_or_path": None}, "base_model_name_or_path is missing"),
    ],
)
def test_config_problems_are_named(tmp_path, change, needle):
    d = synthetic_llama_adapter(tmp_path / "a", config=change)
    with pytest.raises(InvalidArgument) as info:
        validate(d)
    assert needle in str(info.value)


def test_tensors_must_match_the_config_and_the_base_model(tmp_path):
    import numpy as np

    # a tensor for a module the config does not target
    d = synthetic_llama_adapter(
        tmp_path / "a", targets=("q_proj",), config={"target_modules": ["q_proj", "k_proj"]}
    )
    validate(d)  # declaring more targets than tensors is allowed (peft skips missing ones)
    d = synthetic_llama_adapter(
        tmp_path / "b",
        targets=("q_proj",),
        tensors={
            "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight": np.zeros((8, 576), np.float32),
            "base_model.model.model.layers.0.mlp.up_proj.lora_B.weight": np.zeros((1536, 8), np.float32),
        },
    )
    with pytest.raises(InvalidArgument, match="not in target_modules"):
        validate(d)
    # a layer the base model does not have
    d = synthetic_llama_adapter(tmp_path / "c", layers=31)
    with pytest.raises(InvalidArgument, match="layer 30 does not exist"):
        validate(d)
    # lora_A without lora_B
    d = synthetic_llama_adapter(
        tmp_path / "d",
        targets=("q_proj",),
        tensors={
            "base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight": np.zeros((8, 576), np.float32)
        },
        config={"target_modules": ["q_proj", "k_proj"]},
    )
    with pytest.raises(InvalidArgument, match="without lora_B"):
        validate(d)
    # something that is not a LoRA weight at all
    d = synthetic_llama_adapter(
        tmp_path / "e", tensors={"model.embed_tokens.weight": np.zeros((4, 576), np.float32)}
    )
    with pytest.raises(InvalidArgument, match="unexpected tensor"):
        validate(d)


def test_missing_files_and_links_are_refused(tmp_path):
    d = synthetic_llama_adapter(tmp_path / "a")
    (d / "adapter_config.json").unlink()
    with pytest.raises(InvalidArgument, match="missing adapter_config.json"):
        validate(d)
    e = synthetic_llama_adapter(tmp_path / "b")
    (e / "adapter_model.safetensors").rename(tmp_path / "elsewhere")
    (e / "adapter_model.safetensors").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidArgument, match="symbolic link"):
        validation.check_directory(e)


def test_sizes_can_come_from_a_local_model_config(tmp_path):
    model_dir = tmp_path / "tiny-llama"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": 576,
                "intermediate_size": 1536,
                "num_hidden_layers": 1,
                "num_attention_heads": 9,
                "num_key_value_heads": 3,
                "head_dim": 64,
            }
        )
    )
    spec = BaseModelSpec(kind="generation", architecture="llama", model_dir=model_dir)
    validate(synthetic_llama_adapter(tmp_path / "ok", layers=1, base=str(model_dir)), spec=spec, base="tiny")
    with pytest.raises(InvalidArgument, match="layer 1 does not exist"):
        validate(synthetic_llama_adapter(tmp_path / "two", layers=2, base="tiny"), spec=spec, base="tiny")
    empty = BaseModelSpec(kind="generation", architecture="llama")
    with pytest.raises(FailedPrecondition, match="no known sizes"):
        validate(synthetic_llama_adapter(tmp_path / "x", base="tiny"), spec=empty, base="tiny")


def test_manifest_hash_is_sha256sum_output():
    import hashlib

    lines = "bb  b.json\naa  a.json\n"
    expected = hashlib.sha256(b"aa  a.json\nbb  b.json\n").hexdigest()
    assert (
        validation.manifest_sha256({"b.json": "bb", "a.json": "aa"})
        == expected
        != hashlib.sha256(lines.encode()).hexdigest()
    )

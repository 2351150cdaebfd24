"""Adapter validation: what is refused before anything becomes visible, and why."""

import json
import pickle
import struct

import pytest

from lorag.adapters import validation
from lorag.adapters.settings import DEFAULT_BASE_MODELS, BaseModelSpec
from lorag.common.errors import FailedPrecondition, InvalidArgument
from tests.support.adapters import synthetic_llama_adapter, write_tar

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


# -- non-finite tensor values -------------------------------------------------------------------------

_NAN_BITS = {"F16": (2, 0x7E00), "BF16": (2, 0x7FC0), "F32": (4, 0x7FC00000), "F64": (8, 0x7FF8000000000000)}
_INF_BITS = {"F16": 0x7C00, "BF16": 0x7F80, "F32": 0x7F800000, "F64": 0x7FF0000000000000}


def _retype(d, dtype: str, *, poison: int | None = None) -> None:
    """Rewrite ``d``'s weights as ``dtype`` zeros; ``poison``: the bits of the very last value."""
    path = d / "adapter_model.safetensors"
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    width, _ = _NAN_BITS[dtype]
    offset, body = 0, b""
    for name in sorted(k for k in header if k != "__metadata__"):
        size = width * header[name]["shape"][0] * header[name]["shape"][1]
        header[name].update(dtype=dtype, data_offsets=[offset, offset + size])
        offset += size
        body += b"\0" * size
    if poison is not None:
        body = body[:-width] + poison.to_bytes(width, "little")
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


@pytest.mark.parametrize("dtype", ["F16", "BF16", "F32", "F64"])
def test_nan_and_infinity_in_any_tensor_are_refused(tmp_path, monkeypatch, dtype):
    monkeypatch.setattr(validation, "_FINITE_CHECK_BYTES", 64)  # the value lies many chunks in
    d = synthetic_llama_adapter(tmp_path / "ok")
    _retype(d, dtype)
    validate(d)  # zeros are fine
    for what, bits in (
        ("nan", _NAN_BITS[dtype][1]),
        ("inf", _INF_BITS[dtype]),
        ("-inf", _INF_BITS[dtype] | 1 << (8 * _NAN_BITS[dtype][0] - 1)),
    ):
        d = synthetic_llama_adapter(tmp_path / f"{dtype}-{what}")
        _retype(d, dtype, poison=bits)
        with pytest.raises(InvalidArgument) as info:
            validate(d)
        message = str(info.value)
        assert message.startswith("adapter_model.safetensors:") and "not finite" in message, message
        last = sorted(k for k in json.loads(_header_bytes(d)) if k != "__metadata__")[-1]
        assert repr(last) in message


def _header_bytes(d) -> bytes:
    data = (d / "adapter_model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return data[8 : 8 + n]


def test_a_large_finite_tensor_is_read_in_bounded_chunks(tmp_path, monkeypatch):
    reads = []
    real_open = open

    class Spy:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def seek(self, *a):
            return self.fh.seek(*a)

        def read(self, n=-1):
            reads.append(n)
            return self.fh.read(n)

    d = synthetic_llama_adapter(tmp_path / "a", rank=64, targets=("down_proj",))
    monkeypatch.setattr(validation, "_FINITE_CHECK_BYTES", 4096)
    monkeypatch.setattr(validation, "open", lambda p, mode="r": Spy(real_open(p, mode)), raising=False)
    validation.check_finite(d / "adapter_model.safetensors")
    data_reads = [n for n in reads if n not in (8,) and n > 0]
    assert data_reads and max(data_reads) <= 4096
    assert sum(data_reads) >= 2 * 64 * 1536 * 4  # every byte of both tensors was looked at


@pytest.mark.parametrize(
    ("file", "payload"),
    [
        ("adapter_config.json", b"[" * 100_000),
        ("adapter_model.safetensors", struct.pack("<Q", 100_000) + b"[" * 100_000),
    ],
)
def test_deeply_nested_json_is_refused_not_a_crash(tmp_path, file, payload):
    d = synthetic_llama_adapter(tmp_path / "a")
    (d / file).write_bytes(payload)
    with pytest.raises(InvalidArgument) as info:
        validate(d)
    assert str(info.value).startswith(f"{file}:")


def test_a_header_lying_about_lengths_is_refused(tmp_path):
    d = synthetic_llama_adapter(tmp_path / "a")
    path = d / "adapter_model.safetensors"
    data = path.read_bytes()
    path.write_bytes(struct.pack("<Q", len(data)) + data[8:])  # header length past the end
    with pytest.raises(InvalidArgument, match="bad header length"):
        validate(d)
    header = json.loads(_header_bytes(synthetic_llama_adapter(tmp_path / "b")))
    name = sorted(k for k in header if k != "__metadata__")[0]
    header[name]["data_offsets"][1] += 4  # claims 4 bytes more than its shape holds
    raw = json.dumps(header).encode()
    body = (tmp_path / "b" / "adapter_model.safetensors").read_bytes()[
        8 + len(_header_bytes(tmp_path / "b")) :
    ]
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    with pytest.raises(InvalidArgument, match=f"tensor {name!r}"):
        validate(d)


def test_a_wrong_dtype_is_refused(tmp_path):
    import numpy as np

    d = synthetic_llama_adapter(
        tmp_path / "a",
        targets=("q_proj",),
        layers=1,
        tensors={
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": np.zeros((8, 576), np.int32),
        },
    )
    with pytest.raises(InvalidArgument, match="dtype 'I32'"):
        validate(d)


# -- archives -------------------------------------------------------------------------------------------


def _tar(path, members, *, mode="w:gz"):
    """``members``: (name, type flag, data or link target)."""
    write_tar(path, members, mode=mode)
    return path


def _adapter_members(d, prefix=""):
    return [(prefix + p.name, b"0", p.read_bytes()) for p in sorted(d.iterdir())]


def _zip(path, members):
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            z.writestr(info, data)
    return path


def extract(path, tmp_path, *, max_bytes=64 << 20):
    return validation.extract_archive(path, tmp_path / "out", archive=path.name, max_bytes=max_bytes)


@pytest.mark.parametrize("archive", ["a.tar", "a.tar.gz", "a.tgz", "a.zip"])
@pytest.mark.parametrize("prefix", ["", "./", "support-bot/"])
def test_an_archived_adapter_is_extracted_and_validates(tmp_path, archive, prefix):
    d = synthetic_llama_adapter(tmp_path / "src")
    path = tmp_path / archive
    if archive.endswith(".zip"):
        _zip(path, [(n, data, 0o100644) for n, _, data in _adapter_members(d, prefix)])
    else:
        members = _adapter_members(d, prefix)
        if prefix == "support-bot/":
            members.insert(0, ("support-bot", b"5", b""))  # the directory entry tar writes first
        _tar(path, members, mode="w" if archive.endswith(".tar") else "w:gz")
    files = extract(path, tmp_path)
    assert sorted(files) == sorted(validation.ALLOWED_FILES)
    for name, p in files.items():
        assert p.read_bytes() == (d / name).read_bytes()
    validation.validate_adapter(files, base_model=BASE, spec=SPEC, kind="generation", max_rank=64)


@pytest.mark.parametrize(
    ("member", "kind", "data", "needle"),
    [
        ("../adapter_config.json", b"0", b"{}", "'../adapter_config.json' is not a plain path"),
        ("/etc/adapter_config.json", b"0", b"{}", "'/etc/adapter_config.json' is not a plain path"),
        ("a/../../adapter_config.json", b"0", b"{}", "is not a plain path"),
        ("c:adapter_config.json", b"0", b"{}", "is not a plain path"),
        ("a/b/adapter_config.json", b"0", b"{}", "nested directories"),
        ("link", b"2", b"/etc/passwd", "'link' is a link"),
        ("hard", b"1", b"adapter_config.json", "'hard' is a link"),
        ("tty", b"3", b"", "'tty' is a device file"),
        ("disk", b"4", b"", "'disk' is a device file"),
        ("pipe", b"6", b"", "'pipe' is a device file or FIFO"),
        ("adapter_model.bin", b"0", b"\x80\x04K.", "'adapter_model.bin' is a pickle-based checkpoint"),
        ("notes.txt", b"0", b"hi", "'notes.txt' is not an allowed file"),
        ("adapter_config.json", b"0", b"{}", "holds adapter_config.json more than once"),
    ],
)
def test_unsafe_tar_members_are_refused_before_anything_is_extracted(tmp_path, member, kind, data, needle):
    d = synthetic_llama_adapter(tmp_path / "src")
    path = _tar(tmp_path / "a.tar.gz", [*_adapter_members(d), (member, kind, data)])
    with pytest.raises(InvalidArgument) as info:
        extract(path, tmp_path)
    assert needle in str(info.value) and str(info.value).startswith("a.tar.gz:"), str(info.value)
    assert not any((tmp_path / "out").iterdir())  # nothing was extracted


def test_unsafe_zip_members_are_refused(tmp_path):
    import stat as st

    d = synthetic_llama_adapter(tmp_path / "src")
    good = [(n, data, 0o100644) for n, _, data in _adapter_members(d)]
    cases = [
        ("../evil", b"x", 0o100644, "'../evil' is not a plain path"),
        ("link", b"/etc/passwd", st.S_IFLNK | 0o777, "'link' is a symbolic link"),
        ("dev", b"", st.S_IFCHR | 0o600, "'dev' is a device file"),
    ]
    for name, data, mode, needle in cases:
        path = _zip(tmp_path / f"{name.strip('./')}.zip", [*good, (name, data, mode)])
        with pytest.raises(InvalidArgument) as info:
            extract(path, tmp_path)
        assert needle in str(info.value), str(info.value)


def test_archive_bombs_are_refused_from_their_headers(tmp_path):
    d = synthetic_llama_adapter(tmp_path / "src")
    cfg = (d / "adapter_config.json").read_bytes()
    zeros = b"\0" * (8 << 20)
    for path in (
        _zip(
            tmp_path / "bomb.zip",
            [("adapter_config.json", cfg, None), ("adapter_model.safetensors", zeros, None)],
        ),
        _tar(
            tmp_path / "bomb.tar.gz",
            [("adapter_config.json", b"0", cfg), ("adapter_model.safetensors", b"0", zeros)],
        ),
    ):
        with pytest.raises(InvalidArgument, match="compression ratio above the limit of 100"):
            extract(path, tmp_path)
        assert not any((tmp_path / "out").iterdir())


def test_archives_over_the_size_limit_or_with_too_many_members_are_refused(tmp_path):
    d = synthetic_llama_adapter(tmp_path / "src")
    path = _tar(tmp_path / "a.tar", _adapter_members(d), mode="w")
    with pytest.raises(InvalidArgument, match="the adapter size limit is 1000 bytes"):
        extract(path, tmp_path, max_bytes=1000)
    many = _tar(tmp_path / "many.tar", [(f"d{i}", b"5", b"") for i in range(40)], mode="w")
    with pytest.raises(InvalidArgument, match="more than 16 members"):
        extract(many, tmp_path)
    many_zip = _zip(tmp_path / "many.zip", [(f"f{i}", b"x", None) for i in range(17)])
    with pytest.raises(InvalidArgument, match="more than 16 members"):
        extract(many_zip, tmp_path)


@pytest.mark.parametrize("name", ["a.tar.gz", "a.zip", "a.tar"])
def test_garbage_that_claims_to_be_an_archive_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x1f\x8b this is no archive" * 40)
    with pytest.raises(InvalidArgument, match="is not a readable"):
        extract(path, tmp_path)


def test_archive_names_are_accepted_only_where_archives_are(tmp_path):
    assert validation.check_file_name("support-bot.tar.gz", archives=True) == "support-bot.tar.gz"
    with pytest.raises(InvalidArgument, match="not an allowed file"):
        validation.check_file_name("support-bot.tar.gz")
    with pytest.raises(InvalidArgument, match="not a plain file name"):
        validation.check_file_name("../x.zip", archives=True)

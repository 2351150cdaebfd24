"""Validation of adapter files before anything becomes visible (pure logic on local files).

An adapter version is exactly two files: ``adapter_config.json`` (a peft LoRA config) and
``adapter_model.safetensors``. The safetensors header is parsed by hand, so nothing is ever
unpickled; the header must describe exactly the LoRA pairs of the config's target modules with the
shapes the base model implies, and every tensor value must be finite (read in bounded chunks).

An upload may instead carry the two files in one archive (``.tar``, ``.tar.gz``/``.tgz``,
``.zip``). Every member is checked from the archive's headers before anything is extracted
(member count, plain names, regular files only, declared sizes and compression ratio), and the
extraction itself stops at the declared sizes.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from lorag.adapters.settings import BaseModelSpec
from lorag.common.errors import FailedPrecondition, InvalidArgument
from lorag.common.safeload import PICKLE_SUFFIXES

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
#: The only files a version may hold, with their size limits (weights: the adapter limit).
ALLOWED_FILES = (CONFIG_FILE, WEIGHTS_FILE)
MAX_CONFIG_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_TENSORS = 100_000
MAX_TARGET_MODULES = 64
#: Archives an upload may carry the adapter files in (as its only file).
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
MAX_ARCHIVE_MEMBERS = 16
#: Largest ratio of the members' total size to the archive's size (a LoRA compresses ~1-3x).
MAX_ARCHIVE_RATIO = 100
_DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
#: dtype -> (unsigned view, exponent mask): a value is NaN or infinite when all exponent bits are set.
_EXPONENT_MASKS = {
    "F16": (np.uint16, 0x7C00),
    "BF16": (np.uint16, 0x7F80),
    "F32": (np.uint32, 0x7F800000),
    "F64": (np.uint64, 0x7FF0000000000000),
}
_FINITE_CHECK_BYTES = 1024 * 1024
_MODULE_NAME_RE = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_LORA_KEY_RE = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[A-Za-z0-9_]+)?\.weight$")


@dataclass(frozen=True)
class LoraInfo:
    """What validation learnt about a version (stored with it)."""

    rank: int
    alpha: float
    target_modules: tuple[str, ...]
    base_model_name: str
    tensor_count: int


# -- names ------------------------------------------------------------------------------------


def check_file_name(name: str, *, field: str = "file_name", archives: bool = False) -> str:
    """A path-safe, allowed file name (``archives``: an archive name is allowed too); raises
    InvalidArgument saying what is wrong."""
    if not name:
        raise InvalidArgument("is required", field=field)
    if len(name) > 255 or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidArgument("must be a file name of at most 255 printable characters", field=field)
    if "/" in name or "\\" in name or name in (".", "..") or ":" in name:
        raise InvalidArgument(
            f"{name!r} is not a plain file name (no directories, '..', absolute paths or drives)",
            field=field,
        )
    if name.lower().endswith(PICKLE_SUFFIXES):
        raise InvalidArgument(
            f"{name!r} is a pickle-based checkpoint; only safetensors are accepted "
            f"(save with safe_serialization=True)",
            field=field,
        )
    if archives and is_archive(name):
        return name
    if name not in ALLOWED_FILES:
        allowed = ", ".join(ALLOWED_FILES) + (
            " or one archive (.tar, .tar.gz, .tgz, .zip)" if archives else ""
        )
        raise InvalidArgument(f"{name!r} is not an allowed file; allowed: {allowed}", field=field)
    return name


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def check_directory(path: Path) -> dict[str, Path]:
    """The allowed files of a local adapter directory, refusing anything unsafe in it."""
    found: dict[str, Path] = {}
    for entry in sorted(Path(path).iterdir()):
        if entry.is_symlink():
            raise InvalidArgument(f"{entry.name!r} is a symbolic link; links are not accepted", field="files")
        if entry.is_dir():
            raise InvalidArgument(f"{entry.name!r} is a directory; an adapter is flat", field="files")
        found[check_file_name(entry.name, field="files")] = entry
    return found


def require_files(names: set[str] | list[str]) -> None:
    missing = [n for n in ALLOWED_FILES if n not in names]
    if missing:
        raise InvalidArgument(f"missing {', '.join(missing)}", field="files")


# -- base models ------------------------------------------------------------------------------


def resolve_spec(base_model: str, spec: BaseModelSpec) -> BaseModelSpec:
    """``spec`` with the sizes of ``model_dir/config.json`` when that file exists."""
    if spec.model_dir is not None:
        cfg_path = Path(spec.model_dir) / "config.json"
        if cfg_path.is_file():
            cfg = json.loads(cfg_path.read_text())
            model_type = str(cfg.get("model_type", spec.architecture))
            arch = "bert" if model_type in ("bert", "roberta", "xlm-roberta") else "llama"
            heads = int(cfg.get("num_attention_heads") or 0)
            hidden = int(cfg.get("hidden_size") or 0)
            spec = spec.model_copy(
                update={
                    "architecture": arch,
                    "hidden_size": hidden,
                    "intermediate_size": int(cfg.get("intermediate_size") or 0),
                    "num_hidden_layers": int(cfg.get("num_hidden_layers") or 0),
                    "num_attention_heads": heads,
                    "num_key_value_heads": int(cfg.get("num_key_value_heads") or heads),
                    "head_dim": int(cfg.get("head_dim") or (hidden // heads if heads else 0)),
                }
            )
    if not (spec.hidden_size and spec.intermediate_size and spec.num_hidden_layers):
        raise FailedPrecondition(
            f"base model {base_model!r} has no known sizes (set model_dir or the sizes in "
            "LORAG_ADAPTERS_BASE_MODELS)"
        )
    return spec


def module_shapes(spec: BaseModelSpec) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of every linear module LoRA may target, by path in a layer."""
    h, inter = spec.hidden_size, spec.intermediate_size
    if spec.architecture == "llama":
        heads = spec.num_attention_heads or 1
        head_dim = spec.head_dim or h // heads
        kv = spec.num_key_value_heads or heads
        return {
            "self_attn.q_proj": (h, heads * head_dim),
            "self_attn.k_proj": (h, kv * head_dim),
            "self_attn.v_proj": (h, kv * head_dim),
            "self_attn.o_proj": (heads * head_dim, h),
            "mlp.gate_proj": (h, inter),
            "mlp.up_proj": (h, inter),
            "mlp.down_proj": (inter, h),
        }
    return {
        "attention.self.query": (h, h),
        "attention.self.key": (h, h),
        "attention.self.value": (h, h),
        "attention.output.dense": (h, h),
        "intermediate.dense": (h, inter),
        "output.dense": (inter, h),
    }


def global_module_shapes(spec: BaseModelSpec) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of LoRA-capable modules outside the layers."""
    if spec.architecture == "bert":
        return {"pooler.dense": (spec.hidden_size, spec.hidden_size)}
    return {}


def _layer_container(spec: BaseModelSpec) -> str:
    return "layers" if spec.architecture == "llama" else "layer"


def base_model_matches(declared: str, base_model: str, spec: BaseModelSpec) -> bool:
    """Whether adapter_config.json's ``base_model_name_or_path`` names ``base_model``.

    Accepted: the registry name, one of its aliases, or a path whose last component is one of them
    (adapters trained from a local copy of the model), compared case-insensitively.
    """

    def norm(value: str) -> str:
        return value.strip().rstrip("/").lower()

    names = {norm(n) for n in (base_model, *spec.aliases)}
    names |= {n.rsplit("/", 1)[-1] for n in names}
    if spec.model_dir is not None:
        names.add(norm(str(spec.model_dir)))
    value = norm(declared)
    return value in names or value.rsplit("/", 1)[-1] in names


# -- adapter_config.json ----------------------------------------------------------------------


def _cfg_error(message: str) -> InvalidArgument:
    return InvalidArgument(message, field=CONFIG_FILE)


def parse_config(
    path: Path, *, base_model: str, spec: BaseModelSpec, kind: str, max_rank: int
) -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    """The parsed config and the module shapes it may target; raises on anything wrong."""
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise _cfg_error(f"is {size} bytes; the limit is {MAX_CONFIG_BYTES}")
    try:
        cfg = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _cfg_error(f"is not valid JSON ({exc})") from None
    except RecursionError:
        raise _cfg_error("is not valid JSON (nested too deeply)") from None
    if not isinstance(cfg, dict):
        raise _cfg_error("must be a JSON object")
    peft_type = cfg.get("peft_type")
    if not isinstance(peft_type, str) or peft_type.upper() != "LORA":
        raise _cfg_error(f"peft_type must be LORA (got {peft_type!r})")
    declared = cfg.get("base_model_name_or_path")
    if not isinstance(declared, str) or not declared.strip():
        raise _cfg_error("base_model_name_or_path is missing")
    if not base_model_matches(declared, base_model, spec):
        raise FailedPrecondition(
            f"{CONFIG_FILE}: the adapter was trained for base model {declared!r}, "
            f"but this adapter's base model is {base_model!r}"
        )
    task_type = cfg.get("task_type")
    allowed_tasks = (None, "CAUSAL_LM") if kind == "generation" else (None, "SEQ_CLS", "FEATURE_EXTRACTION")
    if task_type not in allowed_tasks:
        raise _cfg_error(f"task_type {task_type!r} does not fit a {kind} adapter")
    rank = cfg.get("r")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise _cfg_error(f"r must be a positive integer (got {rank!r})")
    if rank > max_rank:
        raise _cfg_error(f"rank r={rank} is above the limit of {max_rank}")
    rank_pattern = cfg.get("rank_pattern") or {}
    if not isinstance(rank_pattern, dict):
        raise _cfg_error("rank_pattern must be an object")
    for key, value in rank_pattern.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= max_rank:
            raise _cfg_error(f"rank_pattern[{key!r}]={value!r} must be an integer in 1..{max_rank}")
    alpha = cfg.get("lora_alpha")
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, int | float)
        or not math.isfinite(alpha)
        or alpha <= 0
    ):
        raise _cfg_error(f"lora_alpha must be a positive number (got {alpha!r})")
    if cfg.get("bias", "none") != "none":
        raise _cfg_error(f"bias must be 'none' (got {cfg.get('bias')!r})")
    if cfg.get("use_dora"):
        raise _cfg_error("use_dora is not supported: DoRA adapters cannot share mixed batches")
    targets = cfg.get("target_modules")
    if isinstance(targets, str):
        raise _cfg_error("target_modules must be a list of module names, not a pattern")
    if not isinstance(targets, list) or not targets or len(targets) > MAX_TARGET_MODULES:
        raise _cfg_error(f"target_modules must be a list of 1-{MAX_TARGET_MODULES} module names")
    shapes = module_shapes(spec)
    every = [*shapes, *global_module_shapes(spec)]
    for target in targets:
        if not isinstance(target, str) or not _MODULE_NAME_RE.fullmatch(target):
            raise _cfg_error(f"target_modules entry {target!r} is not a module name")
        if not any(path == target or path.endswith("." + target) for path in every):
            known = sorted({p.rsplit(".", 1)[-1] for p in every})
            raise _cfg_error(
                f"target module {target!r} does not exist in base model {base_model!r} "
                f"(its LoRA-capable modules: {', '.join(known)})"
            )
    extra = cfg.get("modules_to_save") or []
    if not isinstance(extra, list) or any(m not in spec.modules_to_save for m in extra):
        allowed = ", ".join(spec.modules_to_save) or "none"
        raise _cfg_error(f"modules_to_save {extra!r} not allowed for this base model (allowed: {allowed})")
    return cfg, shapes


# -- adapter_model.safetensors ----------------------------------------------------------------


def _st_error(message: str) -> InvalidArgument:
    return InvalidArgument(message, field=WEIGHTS_FILE)


def read_safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name -> (dtype, shape) from a safetensors header, checking the whole layout.

    Never unpickles anything: a pickle or zip (torch.save) file is recognised and refused.
    """
    return _read_layout(path)[0]


def _read_layout(
    path: Path,
) -> tuple[dict[str, tuple[str, tuple[int, ...]]], list[tuple[int, int, str]], int]:
    """(tensors, their byte spans sorted by offset, where the data starts) of a safetensors file."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise _st_error(f"is {size} bytes: too short to be a safetensors file")
        if head[:1] == b"\x80" or head[:2] == b"PK":
            raise _st_error(
                "is a pickle or torch.save archive, not safetensors; only safetensors are accepted"
            )
        (header_len,) = struct.unpack("<Q", head)
        if header_len < 2 or header_len > min(MAX_HEADER_BYTES, size - 8):
            raise _st_error("is not a safetensors file (bad header length)")
        raw = fh.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _st_error("is not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise _st_error("is not a safetensors file (header is not an object)")
    header.pop("__metadata__", None)
    if len(header) > MAX_TENSORS:
        raise _st_error(f"holds {len(header)} tensors; the limit is {MAX_TENSORS}")
    data_len = size - 8 - header_len
    spans: list[tuple[int, int, str]] = []
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, info in header.items():
        if not isinstance(info, dict):
            raise _st_error(f"tensor {name!r} has a malformed entry")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _DTYPE_BYTES:
            raise _st_error(f"tensor {name!r} has dtype {dtype!r}; allowed: {', '.join(_DTYPE_BYTES)}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise _st_error(f"tensor {name!r} has a malformed shape")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_len
        ):
            raise _st_error(f"tensor {name!r} lies outside the file (truncated or corrupt)")
        if offsets[1] - offsets[0] != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise _st_error(f"tensor {name!r}: its byte size does not match its shape and dtype")
        spans.append((offsets[0], offsets[1], name))
        tensors[name] = (dtype, tuple(shape))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise _st_error(f"tensor {name!r} overlaps another or leaves a gap (corrupt file)")
        position = end
    if position != data_len:
        raise _st_error("has bytes after the last tensor (corrupt file)")
    return tensors, sorted(spans), 8 + header_len


def check_finite(path: Path) -> None:
    """Every value of every tensor is finite (no NaN, no infinity), read in bounded chunks."""
    tensors, spans, data_start = _read_layout(path)
    with open(path, "rb") as fh:
        for begin, end, name in spans:
            view, mask = _EXPONENT_MASKS[tensors[name][0]]
            step = _FINITE_CHECK_BYTES - _FINITE_CHECK_BYTES % np.dtype(view).itemsize
            fh.seek(data_start + begin)
            left = end - begin
            while left > 0:
                data = fh.read(min(step, left))
                if not data:
                    raise _st_error(f"tensor {name!r} lies outside the file (truncated or corrupt)")
                left -= len(data)
                values = np.frombuffer(data, dtype=np.dtype(view).newbyteorder("<"))
                if np.any((values & mask) == mask):
                    raise _st_error(f"tensor {name!r} holds a value that is not finite (NaN or infinity)")


def check_tensors(
    tensors: dict[str, tuple[str, tuple[int, ...]]],
    *,
    cfg: dict[str, Any],
    spec: BaseModelSpec,
    shapes: dict[str, tuple[int, int]],
) -> None:
    """Every tensor is the LoRA A or B of a targeted module (or an allowed saved module), with the
    shapes lora_A [r, in_features] and lora_B [out_features, r]; every A has its B."""
    rank: int = cfg["r"]
    ranks = {rank, *(cfg.get("rank_pattern") or {}).values()}
    targets: list[str] = cfg["target_modules"]
    saved = set(cfg.get("modules_to_save") or [])
    layer_re = re.compile(rf"(?:^|\.){_layer_container(spec)}\.(\d+)\.(.+)$")
    outer = global_module_shapes(spec)
    pairs: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, (_dtype, shape) in tensors.items():
        match = _LORA_KEY_RE.match(name)
        if match is None:
            parts = name.replace(".modules_to_save", "").split(".")
            if len(parts) >= 2 and parts[-2] in saved and parts[-1] in ("weight", "bias"):
                _check_saved_module(name, shape, spec)
                continue
            raise _st_error(f"unexpected tensor {name!r}: not a LoRA weight of a target module")
        module = match.group("module")
        layer = layer_re.search(module)
        if layer is not None:
            index, path = int(layer.group(1)), layer.group(2)
            if path not in shapes:
                raise _st_error(f"tensor {name!r}: module {path!r} does not exist in the base model")
            if index >= spec.num_hidden_layers:
                raise _st_error(
                    f"tensor {name!r}: layer {index} does not exist (the base model has "
                    f"{spec.num_hidden_layers} layers)"
                )
            in_features, out_features = shapes[path]
        else:
            path = next((p for p in outer if module == p or module.endswith("." + p)), "")
            if not path:
                raise _st_error(f"tensor {name!r}: module {module!r} does not exist in the base model")
            in_features, out_features = outer[path]
        if not any(path == t or path.endswith("." + t) for t in targets):
            raise _st_error(f"tensor {name!r}: module {path!r} is not in target_modules")
        if len(shape) != 2:
            raise _st_error(f"tensor {name!r} must be 2-dimensional (got shape {list(shape)})")
        pairs.setdefault(module, {})[match.group("ab")] = shape
        if match.group("ab") == "A" and (shape[1] != in_features or shape[0] not in ranks):
            raise _st_error(
                f"tensor {name!r} has shape {list(shape)}; lora_A must be [r={rank}, {in_features}]"
            )
        if match.group("ab") == "B" and (shape[0] != out_features or shape[1] not in ranks):
            raise _st_error(
                f"tensor {name!r} has shape {list(shape)}; lora_B must be [{out_features}, r={rank}]"
            )
    if not pairs:
        raise _st_error("holds no LoRA weights")
    for module, ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise _st_error(f"module {module!r} has lora_A without lora_B or the reverse")
        if ab["A"][0] != ab["B"][1]:
            raise _st_error(f"module {module!r}: lora_A and lora_B disagree on the rank")


def _check_saved_module(name: str, shape: tuple[int, ...], spec: BaseModelSpec) -> None:
    ok = (
        name.endswith(".weight")
        and len(shape) == 2
        and shape[1] == spec.hidden_size
        and 1 <= shape[0] <= 1024
    ) or (name.endswith(".bias") and len(shape) == 1 and 1 <= shape[0] <= 1024)
    if not ok:
        raise _st_error(f"tensor {name!r} has shape {list(shape)}, which does not fit the base model")


def validate_adapter(
    files: dict[str, Path],
    *,
    base_model: str,
    spec: BaseModelSpec,
    kind: str,
    max_rank: int,
) -> LoraInfo:
    """Validate a staged adapter (file name -> local path); returns what the registry stores."""
    require_files(set(files))
    for name in files:
        check_file_name(name, field="files")
    spec = resolve_spec(base_model, spec)
    cfg, shapes = parse_config(
        files[CONFIG_FILE], base_model=base_model, spec=spec, kind=kind, max_rank=max_rank
    )
    tensors = read_safetensors_header(files[WEIGHTS_FILE])
    check_tensors(tensors, cfg=cfg, spec=spec, shapes=shapes)
    check_finite(files[WEIGHTS_FILE])
    return LoraInfo(
        rank=cfg["r"],
        alpha=float(cfg["lora_alpha"]),
        target_modules=tuple(sorted(cfg["target_modules"])),
        base_model_name=cfg["base_model_name_or_path"],
        tensor_count=len(tensors),
    )


# -- archives ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    name: str  # the adapter file it holds
    size: int


def _archive_error(archive: str, message: str) -> InvalidArgument:
    return InvalidArgument(message, field=archive)


def _member_name(archive: str, raw: str, *, is_dir: bool) -> str | None:
    """The adapter file a member holds (None for a directory entry); refuses unsafe paths."""
    name = raw[2:] if raw.startswith("./") else raw
    parts = name.rstrip("/").split("/") if name else []
    if (
        not parts
        or raw.startswith("/")
        or "\\" in raw
        or ":" in raw
        or any(p in ("", ".", "..") for p in parts)
        or len(parts) > 2
    ):
        raise _archive_error(
            archive,
            f"member {raw!r} is not a plain path (no '..', absolute paths, drives or nested directories)",
        )
    if is_dir:
        if len(parts) > 1:
            raise _archive_error(archive, f"member {raw!r}: only one top-level directory is allowed")
        return None
    return check_file_name(parts[-1], field=f"{archive}: member {raw!r}")


def _check_members(archive: str, members: list[_Member], *, archive_bytes: int, max_bytes: int) -> None:
    _check_expansion(archive, sum(m.size for m in members), archive_bytes=archive_bytes, max_bytes=max_bytes)
    names = [m.name for m in members]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _archive_error(archive, f"holds {', '.join(duplicates)} more than once")
    require_files(names)


def _check_expansion(archive: str, total: int, *, archive_bytes: int, max_bytes: int) -> None:
    if total > max_bytes:
        raise _archive_error(
            archive, f"expands to {total} bytes; the adapter size limit is {max_bytes} bytes"
        )
    if total > MAX_ARCHIVE_RATIO * max(archive_bytes, 1):
        raise _archive_error(
            archive,
            f"expands to {total} bytes from {archive_bytes}: a compression ratio above the limit of "
            f"{MAX_ARCHIVE_RATIO}",
        )


def _count_member(archive: str, count: int) -> None:
    if count > MAX_ARCHIVE_MEMBERS:
        raise _archive_error(archive, f"holds more than {MAX_ARCHIVE_MEMBERS} members")


def _copy_bounded(archive: str, src: BinaryIO, dest: Path, size: int) -> None:
    """Copy exactly ``size`` bytes (what the member's header declared) or refuse."""
    left = size
    with open(dest, "wb") as out:
        while left > 0:
            data = src.read(min(1024 * 1024, left))
            if not data:
                raise _archive_error(archive, f"member {dest.name!r} is shorter than its header says")
            out.write(data)
            left -= len(data)
        if src.read(1):
            raise _archive_error(archive, f"member {dest.name!r} is longer than its header says")


class _BoundedReader:
    """A read-only stream that refuses to deliver more than ``limit`` bytes (decompression bombs
    whose headers under-state what they expand to)."""

    def __init__(self, raw: BinaryIO, limit: int, archive: str) -> None:
        self.raw, self.limit, self.archive, self.count = raw, limit, archive, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(self.limit + 1 - self.count if n is None or n < 0 else n)
        self.count += len(data)
        if self.count > self.limit:
            raise _archive_error(
                self.archive,
                f"expands to more than {self.limit} bytes: over the size limit or the compression "
                f"ratio limit of {MAX_ARCHIVE_RATIO}",
            )
        return data


def extract_archive(path: Path, dest: Path, *, archive: str, max_bytes: int) -> dict[str, Path]:
    """The adapter files of an uploaded archive, extracted into ``dest`` once every member has
    been checked from the headers: at most ``MAX_ARCHIVE_MEMBERS`` members, plain names (at most
    one top-level directory), regular files only (no links, devices or FIFOs), the allowed files
    once each, a total size within ``max_bytes`` and ``MAX_ARCHIVE_RATIO`` × the archive size."""
    archive_bytes = path.stat().st_size
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if archive.lower().endswith(".zip"):
            return _extract_zip(path, dest, archive=archive, archive_bytes=archive_bytes, max_bytes=max_bytes)
        return _extract_tar(path, dest, archive=archive, archive_bytes=archive_bytes, max_bytes=max_bytes)
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError, OSError) as exc:
        kind = "zip" if archive.lower().endswith(".zip") else "tar"
        raise _archive_error(archive, f"is not a readable {kind} archive ({exc})") from None


def _extract_zip(
    path: Path, dest: Path, *, archive: str, archive_bytes: int, max_bytes: int
) -> dict[str, Path]:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        _count_member(archive, len(infos))
        members: list[tuple[zipfile.ZipInfo, _Member]] = []
        for info in infos:
            mode = info.external_attr >> 16  # Unix mode when the archiver recorded one
            if stat.S_ISLNK(mode):
                raise _archive_error(
                    archive, f"member {info.filename!r} is a symbolic link; links are not accepted"
                )
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise _archive_error(archive, f"member {info.filename!r} is a device file or FIFO")
            if info.flag_bits & 0x1:
                raise _archive_error(archive, f"member {info.filename!r} is encrypted")
            name = _member_name(archive, info.filename, is_dir=info.is_dir())
            if name is not None:
                members.append((info, _Member(name, info.file_size)))
        _check_members(archive, [m for _, m in members], archive_bytes=archive_bytes, max_bytes=max_bytes)
        out: dict[str, Path] = {}
        for info, member in members:
            out[member.name] = dest / member.name
            with zf.open(info) as src:
                _copy_bounded(archive, src, out[member.name], member.size)
        return out


def _open_tar(path: Path, archive: str, limit: int) -> tarfile.TarFile:
    """A streaming reader of the (possibly gzipped) tar that never decompresses more than ``limit``."""
    raw: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed with the TarFile
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        raw = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    else:
        raw.seek(0)
    return tarfile.open(fileobj=_BoundedReader(raw, limit, archive), mode="r|")  # type: ignore[arg-type]


def _extract_tar(
    path: Path, dest: Path, *, archive: str, archive_bytes: int, max_bytes: int
) -> dict[str, Path]:
    # Headers (and their padding) add at most a few KiB per member to what a tar stream holds.
    limit = min(max_bytes, MAX_ARCHIVE_RATIO * archive_bytes) + (MAX_ARCHIVE_MEMBERS + 4) * 8192
    infos: list[tarfile.TarInfo] = []
    total = 0
    with _open_tar(path, archive, limit) as tf:  # 1st pass: headers only, nothing written
        for count, info in enumerate(tf, start=1):
            _count_member(archive, count)
            if info.isreg():
                total += info.size  # checked before the stream reads the member's data
                _check_expansion(archive, total, archive_bytes=archive_bytes, max_bytes=max_bytes)
            infos.append(info)
    members: list[_Member] = []
    for info in infos:
        if info.issym() or info.islnk():
            raise _archive_error(archive, f"member {info.name!r} is a link; links are not accepted")
        if info.ischr() or info.isblk() or info.isfifo():
            raise _archive_error(archive, f"member {info.name!r} is a device file or FIFO")
        if not (info.isreg() or info.isdir()) or info.issparse():
            raise _archive_error(archive, f"member {info.name!r} is not a regular file")
        name = _member_name(archive, info.name, is_dir=info.isdir())
        if name is not None:
            members.append(_Member(name, info.size))
    _check_members(archive, members, archive_bytes=archive_bytes, max_bytes=max_bytes)
    out: dict[str, Path] = {}
    with _open_tar(path, archive, limit) as tf:  # 2nd pass: the checked members only
        for info in tf:
            if not info.isreg():
                continue
            name = info.name[2:] if info.name.startswith("./") else info.name
            name = name.rsplit("/", 1)[-1]
            src = tf.extractfile(info)
            assert src is not None
            out[name] = dest / name
            _copy_bounded(archive, src, out[name], info.size)
    return out


def manifest_sha256(file_hashes: dict[str, str]) -> str:
    """SHA-256 of ``<sha256>  <name>\\n`` lines sorted by name (``sha256sum`` output)."""
    import hashlib

    lines = "".join(f"{digest}  {name}\n" for name, digest in sorted(file_hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()

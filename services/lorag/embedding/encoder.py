"""A sentence encoder read from a sentence-transformers folder (or a plain Hugging Face folder).

Supports the module stack such folders describe in ``modules.json``: ``Transformer``, ``Pooling``
(cls / mean / max / mean-sqrt-len / last-token), ``Dense`` and ``Normalize``. Normalization is not
part of the forward pass: the caller applies it when a request asks for it. A folder without
``modules.json`` is a plain transformer with mean pooling.

Implemented on transformers + torch directly so that a replica controls tokenization, batching
and threads itself (and does not import sentence-transformers, which is slow to import).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lorag.common.errors import FailedPrecondition

_ACTIVATIONS = {
    "torch.nn.modules.linear.Identity": nn.Identity,
    "torch.nn.modules.activation.Tanh": nn.Tanh,
    "torch.nn.modules.activation.ReLU": nn.ReLU,
    "torch.nn.modules.activation.GELU": nn.GELU,
}
_POOLING_MODES = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens", "lasttoken")


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


class Pooling(nn.Module):
    def __init__(self, modes: list[str]) -> None:
        super().__init__()
        self.modes = modes

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(tokens.dtype)
        out = []
        for mode in self.modes:
            if mode == "cls_token":
                out.append(tokens[:, 0])
            elif mode == "max_tokens":
                out.append(tokens.masked_fill(m == 0, torch.finfo(tokens.dtype).min).max(dim=1).values)
            elif mode in ("mean_tokens", "mean_sqrt_len_tokens"):
                summed = (tokens * m).sum(dim=1)
                count = m.sum(dim=1).clamp(min=1e-9)
                out.append(summed / (count if mode == "mean_tokens" else count.sqrt()))
            else:  # lasttoken: the last non-padding token of each row (right padding)
                last = mask.sum(dim=1).long() - 1
                out.append(tokens[torch.arange(tokens.shape[0]), last])
        return torch.cat(out, dim=-1)


class Dense(nn.Module):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.linear = nn.Linear(config["in_features"], config["out_features"], bias=config.get("bias", True))
        activation = config.get("activation_function", "torch.nn.modules.linear.Identity")
        if activation not in _ACTIVATIONS:
            raise FailedPrecondition(f"unsupported Dense activation {activation!r}")
        self.activation = _ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


class SentenceEncoder(nn.Module):
    """Transformer -> pooling -> optional Dense layers; ``forward(features)`` -> (batch, dim)."""

    def __init__(self, transformer: nn.Module, tokenizer: Any, pooling: Pooling, dense: list[Dense]) -> None:
        super().__init__()
        self.transformer = transformer
        self.pooling = pooling
        self.dense = nn.ModuleList(dense)
        self.tokenizer = tokenizer
        self.max_seq_length = 512
        self.prompts: dict[str, str] = {}
        self._inputs = {"input_ids", "attention_mask", "token_type_ids"}

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in features.items() if k in self._inputs}
        tokens = self.transformer(**inputs, return_dict=True).last_hidden_state
        x = self.pooling(tokens, features["attention_mask"])
        for layer in self.dense:
            x = layer(x)
        return x

    @classmethod
    def load(cls, path: Path) -> SentenceEncoder:
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        modules = _read_json(path / "modules.json") if (path / "modules.json").exists() else None
        stack = modules if isinstance(modules, list) else [{"type": "Transformer", "path": ""}]
        transformer_dir, pooling, dense = None, None, []
        for entry in stack:
            kind = str(entry.get("type", "")).rsplit(".", 1)[-1]
            sub = path / entry.get("path", "")
            if kind == "Transformer":
                transformer_dir = sub
            elif kind == "Pooling":
                cfg = _read_json(sub / "config.json")
                if cfg.get("pooling_mode_weightedmean_tokens") or cfg.get("include_prompt") is False:
                    raise FailedPrecondition(f"{path}: unsupported pooling configuration {cfg}")
                modes = [m for m in _POOLING_MODES if cfg.get(f"pooling_mode_{m}")]
                pooling = Pooling(modes or ["mean_tokens"])
            elif kind == "Dense":
                layer = Dense(_read_json(sub / "config.json"))
                weights = sub / "model.safetensors"
                if not weights.exists():
                    raise FailedPrecondition(
                        f"{sub}: the Dense module has no model.safetensors; pickle-based weights "
                        "(pytorch_model.bin) are not loaded: convert them to safetensors"
                    )
                layer.load_state_dict(load_file(str(weights)))
                dense.append(layer)
            elif kind == "Normalize":
                continue  # applied on request, outside the forward pass
            else:
                raise FailedPrecondition(f"{path}: unsupported sentence-transformers module {kind!r}")
        if transformer_dir is None:
            raise FailedPrecondition(f"{path}: modules.json names no Transformer module")
        tokenizer = AutoTokenizer.from_pretrained(str(transformer_dir), local_files_only=True)
        transformer = AutoModel.from_pretrained(
            str(transformer_dir), local_files_only=True, use_safetensors=True
        )
        transformer.eval()
        encoder = cls(transformer, tokenizer, pooling or Pooling(["mean_tokens"]), dense)
        st_config = _read_json(transformer_dir / "sentence_bert_config.json")
        limits = [
            st_config.get("max_seq_length"),
            getattr(transformer.config, "max_position_embeddings", None),
            tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None,
        ]
        encoder.max_seq_length = int(min(v for v in limits if v) if any(limits) else 512)
        encoder.prompts = dict(_read_json(path / "config_sentence_transformers.json").get("prompts") or {})
        return encoder.eval()

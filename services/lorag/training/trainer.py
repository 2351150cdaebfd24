"""LoRA training with a plain torch loop (peft), for generation and reranking base models.

* GENERATION: a causal LM; each record is rendered with the model's chat template and the loss is
  taken on the assistant's answer only (prompt tokens are masked).
* RERANKING: a cross-encoder (sequence classification, one logit); each record scores its query
  against the positive and the negatives, with a listwise softmax cross-entropy (the positive
  first). The classification head is trained in full (peft ``modules_to_save``).

Deterministic: the seed fixes LoRA initialisation, dropout and the order of examples (a fixed
permutation per epoch), so step ``k`` always sees the same batch. Every ``checkpoint_every`` steps
the LoRA weights, optimizer state, RNG state and losses are written atomically; a job that was
killed resumes from its last checkpoint. ``should_stop`` is polled every step (cancellation).
QLoRA (4-bit base through bitsandbytes) is used only when a CUDA GPU and bitsandbytes exist.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from lorag.common.errors import Cancelled, FailedPrecondition, InvalidArgument
from lorag.common.safeload import require_safetensors_adapter
from lorag.training.validation import Record

log = logging.getLogger("lorag.training.trainer")

CHECKPOINT = "checkpoint.pt"
DEFAULT_TARGETS = {
    "generation": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "reranking": ("query", "key", "value"),
}
ALLOWED_TARGETS = {
    "generation": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "reranking": ("query", "key", "value", "dense"),
}
MAX_NEGATIVES = 7


@dataclass(frozen=True)
class Hyperparameters:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ()
    learning_rate: float = 2e-4
    epochs: int = 3
    batch_size: int = 8
    max_steps: int = 0
    general_data_ratio: float = 0.2
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hyperparameters:
        d = dict(d)
        d["target_modules"] = tuple(d.get("target_modules") or ())
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def check_hyperparameters(
    kind: str,
    *,
    rank: int = 0,
    alpha: float = 0.0,
    dropout: float | None = None,
    target_modules: Sequence[str] = (),
    learning_rate: float = 0.0,
    epochs: int = 0,
    batch_size: int = 0,
    max_steps: int = 0,
    general_data_ratio: float | None = None,
    seed: int | None = None,
    max_rank: int = 64,
) -> Hyperparameters:
    """Defaults filled in and ranges checked (InvalidArgument naming the field)."""
    f = "hyperparameters."
    if rank < 0 or rank > max_rank:
        raise InvalidArgument(f"must be 1-{max_rank} (0 means 8), got {rank}", field=f + "rank")
    rank = rank or 8
    if alpha < 0 or not math.isfinite(alpha) or alpha > 1024:
        raise InvalidArgument(
            f"must be > 0 and at most 1024 (0 means twice the rank), got {alpha}", field=f + "alpha"
        )
    alpha = float(alpha or 2 * rank)
    dropout = 0.05 if dropout is None else float(dropout)
    if not 0.0 <= dropout <= 0.5:
        raise InvalidArgument(f"must be in [0, 0.5], got {dropout}", field=f + "dropout")
    allowed = ALLOWED_TARGETS[kind]
    targets = tuple(dict.fromkeys(target_modules)) or DEFAULT_TARGETS[kind]
    unknown = [t for t in targets if t not in allowed]
    if unknown:
        raise InvalidArgument(
            f"{', '.join(unknown)} cannot be adapted in a {kind} model; allowed: {', '.join(allowed)}",
            field=f + "target_modules",
        )
    if learning_rate < 0 or learning_rate > 0.01 or not math.isfinite(learning_rate):
        raise InvalidArgument(
            f"must be in (0, 0.01] (0 means 2e-4), got {learning_rate}", field=f + "learning_rate"
        )
    learning_rate = float(learning_rate or 2e-4)
    if not 0 <= epochs <= 20:
        raise InvalidArgument(f"must be 1-20 (0 means 3), got {epochs}", field=f + "epochs")
    if not 0 <= batch_size <= 256:
        raise InvalidArgument(f"must be 1-256 (0 means 8), got {batch_size}", field=f + "batch_size")
    if not 0 <= max_steps <= 1_000_000:
        raise InvalidArgument(f"must be 0-1000000 (0: no limit), got {max_steps}", field=f + "max_steps")
    ratio = 0.2 if general_data_ratio is None else float(general_data_ratio)
    if not 0.0 <= ratio <= 0.9:
        raise InvalidArgument(f"must be in [0, 0.9], got {ratio}", field=f + "general_data_ratio")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    if not 0 <= seed < 2**63:
        raise InvalidArgument("must be below 2**63", field=f + "seed")
    return Hyperparameters(
        rank=rank,
        alpha=alpha,
        dropout=dropout,
        target_modules=targets,
        learning_rate=learning_rate,
        epochs=epochs or 3,
        batch_size=batch_size or 8,
        max_steps=max_steps,
        general_data_ratio=ratio,
        seed=int(seed),
    )


def total_steps(n_examples: int, hp: Hyperparameters) -> int:
    per_epoch = max(1, math.ceil(n_examples / hp.batch_size))
    steps = per_epoch * hp.epochs
    return min(steps, hp.max_steps) if hp.max_steps else steps


# -- models ---------------------------------------------------------------------------------------


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a dependency of training
        return False


def qlora_possible(kind: str, enabled: bool) -> bool:
    """4-bit QLoRA only for generation models, with a CUDA GPU and bitsandbytes (untested on CPU)."""
    return (
        enabled
        and kind == "generation"
        and cuda_available()
        and importlib.util.find_spec("bitsandbytes") is not None
    )


def load_base(kind: str, model_dir: Path, *, qlora: bool = False) -> tuple[Any, Any]:
    """(model, tokenizer) of a base model directory, in float32 on CPU (4-bit on GPU for QLoRA)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from lorag.embedding.models import quiet_transformers

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    if kind == "generation":
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if qlora:  # pragma: no cover - needs a CUDA GPU
            from peft import prepare_model_for_kbit_training

            from lorag.generation.models import load_bnb

            model = prepare_model_for_kbit_training(load_bnb(str(model_dir), "nf4"))
        else:
            model = AutoModelForCausalLM.from_pretrained(
                str(model_dir), dtype=torch.float32, local_files_only=True, use_safetensors=True
            )
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), dtype=torch.float32, local_files_only=True, use_safetensors=True
        )
        if model.config.num_labels != 1:
            raise FailedPrecondition(
                f"reranker base {model_dir} must have one output, not {model.config.num_labels}"
            )
    return model, tokenizer


def attach_lora(kind: str, model: Any, hp: Hyperparameters, *, parent_dir: Path | None = None) -> Any:
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    torch.manual_seed(hp.seed)
    if parent_dir is not None:
        return PeftModel.from_pretrained(model, require_safetensors_adapter(parent_dir), is_trainable=True)
    config = LoraConfig(
        r=hp.rank,
        lora_alpha=hp.alpha,
        lora_dropout=hp.dropout,
        target_modules=list(hp.target_modules),
        task_type="CAUSAL_LM" if kind == "generation" else "SEQ_CLS",
        modules_to_save=["classifier"] if kind == "reranking" else None,
    )
    return get_peft_model(model, config)


# -- examples -------------------------------------------------------------------------------------


def _chat(tokenizer: Any, messages: Sequence[tuple[str, str]], *, generation_prompt: bool) -> str:
    msgs = [{"role": r, "content": c} for r, c in messages]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=generation_prompt)
    text = "\n".join(f"{m['role']}: {m['content']}" for m in msgs)
    return text + ("\nassistant:" if generation_prompt else "")


def encode_generation(tokenizer: Any, record: Record, max_length: int) -> tuple[list[int], list[int]]:
    """(input ids, labels) with the prompt masked (-100): the loss is on the answer only."""
    prompt = _chat(tokenizer, record.messages[:-1], generation_prompt=True)
    full = _chat(tokenizer, record.messages, generation_prompt=False)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    f_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    if f_ids[: len(p_ids)] != p_ids:  # template renders the prompt differently inside the chat
        answer = tokenizer(record.messages[-1][1], add_special_tokens=False)["input_ids"]
        f_ids = p_ids + answer + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])
    labels = [-100] * len(p_ids) + f_ids[len(p_ids) :]
    if len(f_ids) > max_length:  # keep the answer: cut the prompt from the left
        cut = len(f_ids) - max_length
        f_ids, labels = f_ids[cut:], labels[cut:]
    return f_ids, labels


def generation_batch(tokenizer: Any, examples: Sequence[tuple[list[int], list[int]]]) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in examples)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(examples), width), pad, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def reranking_batch(
    tokenizer: Any, records: Sequence[Record], max_length: int
) -> tuple[dict[str, Any], list[int]]:
    """Tokenized (query, passage) pairs, positive first per record, and the group sizes."""
    queries, passages, sizes = [], [], []
    for r in records:
        group = (r.positive, *r.negatives[:MAX_NEGATIVES])
        queries.extend([r.query] * len(group))
        passages.extend(group)
        sizes.append(len(group))
    enc = tokenizer(
        queries,
        passages,
        truncation="longest_first",
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )
    return dict(enc), sizes


def listwise_logits(logits: Any, sizes: Sequence[int]) -> Any:
    """[records, max group] logits padded with -inf; column 0 is the positive."""
    import torch

    out = torch.full((len(sizes), max(sizes)), float("-inf"), dtype=logits.dtype)
    start = 0
    for i, n in enumerate(sizes):
        out[i, :n] = logits[start : start + n]
        start += n
    return out


def batch_loss(kind: str, model: Any, tokenizer: Any, records: Sequence[Record], max_length: int) -> Any:
    import torch

    if kind == "generation":
        batch = generation_batch(tokenizer, [encode_generation(tokenizer, r, max_length) for r in records])
        batch = {k: v.to(model.device) for k, v in batch.items()}
        return model(**batch).loss
    enc, sizes = reranking_batch(tokenizer, records, max_length)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    logits = model(**enc).logits[:, 0].float().cpu()
    grouped = listwise_logits(logits, sizes)
    return torch.nn.functional.cross_entropy(grouped, torch.zeros(len(sizes), dtype=torch.long))


# -- the loop -------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    model: Any  # the peft model (adapter attached), for evaluation
    tokenizer: Any
    steps: int
    losses: list[float]
    seconds: float
    resumed_from: int
    qlora: bool

    @property
    def first_loss(self) -> float:
        head = self.losses[: max(1, min(3, len(self.losses)))]
        return sum(head) / len(head)

    @property
    def last_loss(self) -> float:
        tail = self.losses[-max(1, min(3, len(self.losses))) :]
        return sum(tail) / len(tail)


ProgressFn = Callable[[int, int, float, float], None]  # step, total, loss, seconds per step
StopFn = Callable[[], bool]


def _lr(step: int, total: int, peak: float) -> float:
    warmup = max(1, total // 10)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _batch_indices(step: int, n: int, hp: Hyperparameters) -> list[int]:
    per_epoch = max(1, math.ceil(n / hp.batch_size))
    epoch, position = divmod(step, per_epoch)
    order = list(range(n))
    random.Random(hp.seed * 1000 + epoch).shuffle(order)
    return order[position * hp.batch_size : (position + 1) * hp.batch_size]


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def train(
    kind: str,
    *,
    model_dir: Path,
    records: Sequence[Record],
    hp: Hyperparameters,
    workdir: Path,
    max_length: int = 256,
    checkpoint_every: int = 10,
    parent_dir: Path | None = None,
    qlora: bool = False,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> TrainResult:
    """Train a LoRA adapter on ``records``; resumes from ``workdir/checkpoint.pt`` when present.

    Raises :class:`lorag.common.errors.Cancelled` when ``should_stop`` turns true (the checkpoint
    stays, so nothing of the job's progress is lost before the job row records the cancel).
    """
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    if not records:
        raise FailedPrecondition("no training records")
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = workdir / CHECKPOINT
    model, tokenizer = load_base(kind, model_dir, qlora=qlora)
    model = attach_lora(kind, model, hp, parent_dir=parent_dir)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=0.0)
    total = total_steps(len(records), hp)
    step, losses = 0, []
    if ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=True)
        if state.get("total") == total and state.get("seed") == hp.seed:
            set_peft_model_state_dict(model, state["adapter"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"])
            step, losses = int(state["step"]), list(state["losses"])
            log.info("resuming training at step %d of %d", step, total)
        else:
            log.warning("ignoring a checkpoint of another plan (%s)", ckpt_path)
    resumed_from = step
    started = time.perf_counter()
    model.train()
    while step < total:
        if should_stop is not None and should_stop():
            raise Cancelled("the job was cancelled")
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, total, hp.learning_rate)
        batch = [records[i] for i in _batch_indices(step, len(records), hp)]
        loss = batch_loss(kind, model, tokenizer, batch, max_length)
        if not torch.isfinite(loss):
            raise FailedPrecondition(
                f"the training loss became {float(loss)} at step {step + 1}; lower the learning rate"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        losses.append(float(loss.detach()))
        if step % checkpoint_every == 0 and step < total:
            _save_checkpoint(
                ckpt_path,
                {
                    "step": step,
                    "total": total,
                    "seed": hp.seed,
                    "adapter": get_peft_model_state_dict(model),
                    "optimizer": optimizer.state_dict(),
                    "rng": torch.get_rng_state(),
                    "losses": losses,
                },
            )
        if progress is not None:
            progress(step, total, losses[-1], time.perf_counter() - t0)
    model.eval()
    return TrainResult(
        model=model,
        tokenizer=tokenizer,
        steps=step,
        losses=losses,
        seconds=time.perf_counter() - started,
        resumed_from=resumed_from,
        qlora=qlora,
    )


def save_adapter(result: TrainResult, out: Path, *, base_model: str) -> dict[str, Path]:
    """Write the adapter (safetensors + config naming the registry base model); file -> path."""
    out.mkdir(parents=True, exist_ok=True)
    result.model.save_pretrained(str(out), safe_serialization=True)
    (out / "README.md").unlink(missing_ok=True)
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = base_model
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True))
    return {"adapter_config.json": cfg_path, "adapter_model.safetensors": out / "adapter_model.safetensors"}


def effective(hp: Hyperparameters, parent_config: dict[str, Any] | None) -> Hyperparameters:
    """Hyperparameters as trained: a parent's LoRA shape wins over the requested one."""
    if not parent_config:
        return hp
    return replace(
        hp,
        rank=int(parent_config.get("r", hp.rank)),
        alpha=float(parent_config.get("lora_alpha", hp.alpha)),
        target_modules=tuple(sorted(parent_config.get("target_modules") or hp.target_modules)),
    )

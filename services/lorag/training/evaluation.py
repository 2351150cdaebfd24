"""Model validation: the candidate adapter AND the base model on task and general data, and the gates.

GENERATION: mean token loss on the answers (and its perplexity) of the held-out task records and
of the general set. RERANKING: MRR and nDCG@10 of the positive among its negatives, plus the
listwise loss. Both models are the same peft model, with the adapter enabled and disabled.

Gates (a candidate must pass both):

* task: better than the base — lower loss (by ``min_task_improvement``, relative) for generation;
  higher nDCG@10 for reranking, or an equal nDCG@10 with a lower listwise loss (a base that already
  ranks every positive first can only be matched);
* forgetting: the general metric may not degrade beyond the tolerance — general loss at most
  ``(1 + tolerance)`` times the base's, or general nDCG@10 at most ``tolerance`` below the base's.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lorag.training import trainer
from lorag.training.validation import Record


@dataclass(frozen=True)
class Gate:
    passed: bool
    reason: str


def _adapter_off(model: Any):
    disable = getattr(model, "disable_adapter", None)
    return disable() if disable is not None else contextlib.nullcontext()


def generation_loss(
    model: Any, tokenizer: Any, records: Sequence[Record], *, max_length: int, batch_size: int = 8
) -> float:
    """Mean loss per answer token over ``records``."""
    import torch

    total, tokens = 0.0, 0
    with torch.inference_mode():
        for s in range(0, len(records), batch_size):
            examples = [
                trainer.encode_generation(tokenizer, r, max_length) for r in records[s : s + batch_size]
            ]
            batch = trainer.generation_batch(tokenizer, examples)
            batch = {k: v.to(model.device) for k, v in batch.items()}
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits.float()
            shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
            shift_labels = batch["labels"][:, 1:].reshape(-1)
            loss = torch.nn.functional.cross_entropy(
                shift_logits, shift_labels, ignore_index=-100, reduction="sum"
            )
            total += float(loss)
            tokens += int((shift_labels != -100).sum())
    return total / max(1, tokens)


def ranking_metrics(
    model: Any, tokenizer: Any, records: Sequence[Record], *, max_length: int, batch_size: int = 8
) -> dict[str, float]:
    """MRR, nDCG@10 (one relevant passage per record) and the listwise loss."""
    import torch

    rr, ndcg, loss_sum = 0.0, 0.0, 0.0
    with torch.inference_mode():
        for s in range(0, len(records), batch_size):
            chunk = records[s : s + batch_size]
            enc, sizes = trainer.reranking_batch(tokenizer, chunk, max_length)
            enc = {k: v.to(model.device) for k, v in enc.items()}
            logits = model(**enc).logits[:, 0].float().cpu()
            grouped = trainer.listwise_logits(logits, sizes)
            loss_sum += float(
                torch.nn.functional.cross_entropy(
                    grouped, torch.zeros(len(sizes), dtype=torch.long), reduction="sum"
                )
            )
            for row, n in zip(grouped, sizes, strict=True):
                positive = float(row[0])
                rank = 1 + sum(1 for j in range(1, n) if float(row[j]) >= positive)  # ties count against
                rr += 1.0 / rank
                ndcg += 1.0 / math.log2(rank + 1) if rank <= 10 else 0.0
    n = max(1, len(records))
    return {"mrr": rr / n, "ndcg_at_10": ndcg / n, "loss": loss_sum / n}


def evaluate(
    kind: str,
    model: Any,
    tokenizer: Any,
    *,
    task: Sequence[Record],
    general: Sequence[Record],
    max_length: int,
) -> dict[str, float]:
    """Metrics of the adapter and of the base (``base_`` prefix) on task and general records."""
    model.eval()
    out: dict[str, float] = {}
    for prefix, ctx in (("", contextlib.nullcontext()), ("base_", _adapter_off(model))):
        with ctx:
            if kind == "generation":
                task_loss = generation_loss(model, tokenizer, task, max_length=max_length)
                out[prefix + "task_loss"] = task_loss
                out[prefix + "task_perplexity"] = math.exp(min(task_loss, 50.0))
                if general:
                    g = generation_loss(model, tokenizer, general, max_length=max_length)
                    out[prefix + "general_loss"] = g
                    out[prefix + "general_perplexity"] = math.exp(min(g, 50.0))
            else:
                m = ranking_metrics(model, tokenizer, task, max_length=max_length)
                out[prefix + "task_mrr"] = m["mrr"]
                out[prefix + "task_ndcg_at_10"] = m["ndcg_at_10"]
                out[prefix + "task_loss"] = m["loss"]
                if general:
                    g = ranking_metrics(model, tokenizer, general, max_length=max_length)
                    out[prefix + "general_mrr"] = g["mrr"]
                    out[prefix + "general_ndcg_at_10"] = g["ndcg_at_10"]
                    out[prefix + "general_loss"] = g["loss"]
    return out


def gate(
    kind: str,
    metrics: dict[str, float],
    *,
    min_task_improvement: float,
    generation_tolerance: float,
    reranking_tolerance: float,
) -> Gate:
    """Whether the candidate beats the base on the task and keeps the general metric."""
    if kind == "generation":
        cand, base = metrics["task_loss"], metrics["base_task_loss"]
        if not cand < base * (1.0 - min_task_improvement):
            return Gate(False, f"task loss {cand:.4f} does not beat the base model's {base:.4f}")
        if "general_loss" in metrics:
            g, gb = metrics["general_loss"], metrics["base_general_loss"]
            if g > gb * (1.0 + generation_tolerance):
                return Gate(
                    False,
                    f"general loss {g:.4f} is more than {generation_tolerance:.0%} above the base "
                    f"model's {gb:.4f} (forgetting)",
                )
        return Gate(True, f"task loss {cand:.4f} < base {base:.4f}")
    cand, base = metrics["task_ndcg_at_10"], metrics["base_task_ndcg_at_10"]
    better = cand > base + min_task_improvement or (
        math.isclose(cand, base) and metrics["task_loss"] < metrics["base_task_loss"]
    )
    if not better:
        return Gate(False, f"task nDCG@10 {cand:.4f} does not beat the base model's {base:.4f}")
    if "general_ndcg_at_10" in metrics:
        g, gb = metrics["general_ndcg_at_10"], metrics["base_general_ndcg_at_10"]
        if g < gb - reranking_tolerance:
            return Gate(
                False,
                f"general nDCG@10 {g:.4f} is more than {reranking_tolerance} below the base model's "
                f"{gb:.4f} (forgetting)",
            )
    return Gate(True, f"task nDCG@10 {cand:.4f} vs base {base:.4f}")

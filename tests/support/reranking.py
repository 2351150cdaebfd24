"""A small build of the default reranker for tests, made once and cached across runs and tiers.

The recipe of ``lorag prepare-models`` made cheap (about a minute on 2 cores): fewer steps,
shorter inputs, most layers frozen, negatives from other articles only, the lexical-match weight
fitted on few validation questions. Good enough to tell a
relevant passage from unrelated ones, not for quality figures. Tiers share it through
``LORAG_RERANKING_*`` settings (``QUICK_ENV``); a file lock serialises concurrent builds.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.models import CACHE

ROOT = CACHE / "reranking-test"
QUICK = {
    "steps": 60,
    "questions_per_step": 8,
    "hard_negatives": 0,
    "dense_hard_negatives": 0,
    "random_negatives": 1,
    "train_max_length": 128,
    "train_batch_pairs": 16,  # one forward pass per step: the pairs are short
    "frozen_layers": 2,
    "lr": 2e-4,
    "head_lr": 2e-3,
    "eval_questions": 10,
    "validation_questions": 20,
}
QUICK_ENV = {"LORAG_RERANKING_ARTIFACTS_DIR": str(ROOT), "LORAG_RERANKING_BUILD_RECIPE": json.dumps(QUICK)}


def quick_settings(**overrides):
    from lorag.reranking.settings import RerankingSettings

    return RerankingSettings(**{"artifacts_dir": ROOT, "build_recipe": QUICK, **overrides})


def quick_reranker() -> Path:
    """Directory of the quick build (built on first use)."""
    from lorag.reranking.prepare import Recipe, build

    return build(Recipe.from_settings(quick_settings()), root=ROOT, progress=False)


#: Real questions with their gold paragraph (SQuAD v1.1 dev, CC BY-SA 4.0, held-out articles are
#: not needed: these pairs only check that relevance beats unrelated topics).
def real_pairs(count: int = 5) -> list[tuple[str, str, list[str]]]:
    """(question, gold paragraph, paragraphs of other articles) from held-out SQuAD articles."""
    from lorag.datasets import squad

    _, heldout = squad.split_articles(squad.load_dev())
    out = []
    for i in range(count):
        article = heldout[i]
        paragraph = article.paragraphs[0]
        others = [heldout[(i + k) % len(heldout)].paragraphs[1].context for k in range(1, 4)]
        out.append((paragraph.questions[0].text, paragraph.context, others))
    return out


def quick_reranker_adapter(out: Path, *, seed: int, rank: int = 4) -> Path:
    """A reranking LoRA adapter of the quick build in ``out``: random LoRA weights and head.

    Different seeds give adapters that score differently from each other and from the base, which
    is what per-request adapter tests need (quality comes from the training pipeline).
    """
    import warnings

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForSequenceClassification.from_pretrained(
            str(quick_reranker()), local_files_only=True
        )
        model.name_or_path = "sentence-transformers/all-MiniLM-L6-v2"  # peft's base_model_name_or_path
        torch.manual_seed(seed)
        lora = LoraConfig(
            task_type="SEQ_CLS",
            r=rank,
            lora_alpha=2 * rank,
            target_modules=["query", "key", "value"],
            init_lora_weights=False,
        )
        peft_model = get_peft_model(model, lora)
        with torch.no_grad():
            for p in peft_model.base_model.model.classifier.modules_to_save.default.parameters():
                p.add_(0.5 * torch.randn_like(p))
        peft_model.save_pretrained(str(out))
    (out / "README.md").unlink(missing_ok=True)
    return out

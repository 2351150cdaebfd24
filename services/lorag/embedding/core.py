"""Sentence embeddings: model registry, validation, tokenization and batched inference.

Pure logic on plain Python types (no grpc, no ray). Models load lazily, once per process, from
local directories (see :mod:`lorag.embedding.models`). ``embed`` and ``embed_many`` are
thread-safe; the services call them from a worker thread so the event loop stays responsive.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lorag.common.errors import InvalidArgument, LoragError, NotFound
from lorag.embedding import models as model_files
from lorag.embedding.settings import EmbeddingModelSpec, EmbeddingSettings

if TYPE_CHECKING:
    from lorag.embedding.encoder import SentenceEncoder

INPUT_TYPES = ("query", "passage")


@dataclass(frozen=True)
class EmbedResult:
    vectors: np.ndarray  # float32, shape (n, dim); L2-normalised when normalize=True
    token_counts: list[int]  # tokens per text after truncation (incl. special tokens)
    truncated: list[bool]  # True where the text was cut at the model's max length
    model: str  # registry name of the model used
    dimension: int


@dataclass(frozen=True)
class ModelInfo:
    """What ``ListModels`` reports about one registered model."""

    name: str
    dimension: int
    max_seq_length: int
    weights_sha256: str
    is_default: bool
    quantized: bool
    query_prefix: str
    passage_prefix: str


@dataclass(frozen=True)
class EmbedJob:
    """One validated request: what ``embed_many`` merges with other requests into one batch."""

    texts: list[str]
    model: str
    input_type: str = "passage"
    normalize: bool = True
    truncate: bool = True


@dataclass
class _Model:
    name: str
    encoder: SentenceEncoder
    tokenizer: Any
    max_seq_length: int
    dimension: int
    weights_sha256: str
    quantized: bool
    prefixes: dict[str, str]
    lock: threading.Lock = field(default_factory=threading.Lock)


def _prompt(prompts: dict[str, str], *names: str) -> str:
    for name in names:
        if prompts.get(name):
            return prompts[name]
    return ""


class EmbeddingCore:
    def __init__(self, settings: EmbeddingSettings) -> None:
        self.settings = settings
        self._models: dict[str, _Model] = {}
        self._load_lock = threading.Lock()
        self._threads = 0

    # -- registry --------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        return sorted(self.settings.models)

    def default_model(self) -> str:
        return self.settings.default_model

    def resolve(self, model: str | None) -> str:
        """Registry name of ``model`` (None or empty: the default); NotFound when unknown."""
        name = model or self.settings.default_model
        if name not in self.settings.models:
            raise NotFound(
                f"model: unknown embedding model {name!r}; served: {', '.join(self.model_names())}"
            )
        return name

    def dimension(self, model: str | None = None) -> int:
        return self._load(self.resolve(model)).dimension

    def tokenizer(self, model: str | None = None):
        return self._load(self.resolve(model)).tokenizer

    def info(self, model: str | None = None) -> ModelInfo:
        m = self._load(self.resolve(model))
        return ModelInfo(
            name=m.name,
            dimension=m.dimension,
            max_seq_length=m.max_seq_length,
            weights_sha256=m.weights_sha256,
            is_default=m.name == self.settings.default_model,
            quantized=m.quantized,
            query_prefix=m.prefixes["query"],
            passage_prefix=m.prefixes["passage"],
        )

    def list_models(self) -> list[ModelInfo]:
        return [self.info(name) for name in self.model_names()]

    def _load(self, name: str) -> _Model:
        loaded = self._models.get(name)
        if loaded is not None:
            return loaded
        with self._load_lock:
            if name not in self._models:
                self._models[name] = self._load_model(name, self.settings.models[name])
            return self._models[name]

    def _load_model(self, name: str, spec: EmbeddingModelSpec) -> _Model:
        import torch

        from lorag.embedding.encoder import SentenceEncoder

        model_files.quiet_transformers()
        self._threads = model_files.configure_torch_threads(self.settings.num_threads)
        path: Path = model_files.resolve_model_path(spec.path)
        encoder = SentenceEncoder.load(path)
        if spec.max_seq_length:
            encoder.max_seq_length = spec.max_seq_length
        sha = model_files.weights_sha256(path)
        quantized = False
        if self.settings.quantize:
            encoder, quantized = model_files.quantize_int8(encoder)
            sha = model_files.variant_sha256(sha, "int8-dynamic" if quantized else None)
        prompts = encoder.prompts
        prefixes = {
            "query": spec.query_prefix if spec.query_prefix is not None else _prompt(prompts, "query"),
            "passage": (
                spec.passage_prefix
                if spec.passage_prefix is not None
                else _prompt(prompts, "passage", "document")
            ),
        }
        model = _Model(
            name=name,
            encoder=encoder,
            tokenizer=encoder.tokenizer,
            max_seq_length=encoder.max_seq_length,
            dimension=0,
            weights_sha256=sha,
            quantized=quantized,
            prefixes=prefixes,
        )
        with torch.inference_mode():
            model.dimension = int(self._forward(model, ["dimension probe"]).shape[-1])
        return model

    # -- validation ------------------------------------------------------------------------
    def prepare(
        self,
        texts: list[str],
        *,
        model: str | None = None,
        input_type: str = "passage",
        normalize: bool = True,
        truncate: bool = True,
    ) -> EmbedJob:
        """Check a request against the limits; the job to run. Raises InvalidArgument / NotFound."""
        s = self.settings
        if not texts:
            raise InvalidArgument(f"must contain 1-{s.max_texts} texts (got none)", field="texts")
        if len(texts) > s.max_texts:
            raise InvalidArgument(
                f"at most {s.max_texts} texts per request (got {len(texts)})", field="texts"
            )
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise InvalidArgument("must not be empty", field=f"texts[{i}]")
            if len(text) > s.max_text_chars:
                raise InvalidArgument(
                    f"at most {s.max_text_chars} characters (got {len(text)})", field=f"texts[{i}]"
                )
        if input_type not in INPUT_TYPES:
            raise InvalidArgument(f"must be one of {', '.join(INPUT_TYPES)}", field="input_type")
        return EmbedJob(
            texts=list(texts),
            model=self.resolve(model),
            input_type=input_type,
            normalize=normalize,
            truncate=truncate,
        )

    # -- inference -------------------------------------------------------------------------
    def embed(
        self,
        texts: list[str],
        *,
        model: str | None = None,
        input_type: str = "passage",
        normalize: bool = True,
        truncate: bool = True,
    ) -> EmbedResult:
        job = self.prepare(texts, model=model, input_type=input_type, normalize=normalize, truncate=truncate)
        (result,) = self.embed_many([job])
        if isinstance(result, LoragError):
            raise result
        return result

    def embed_many(self, jobs: list[EmbedJob]) -> list[EmbedResult | LoragError]:
        """Run validated jobs of possibly different models and options as few forward passes.

        Texts of all jobs that use the same model share forward passes. A job that fails on its
        own (a text too long for ``truncate=False``) gets its error in its slot; the others succeed.
        """
        out: list[EmbedResult | LoragError | None] = [None] * len(jobs)
        by_model: dict[str, list[int]] = {}
        for j, job in enumerate(jobs):
            by_model.setdefault(job.model, []).append(j)
        for name, members in by_model.items():
            m = self._load(name)
            texts = [m.prefixes[jobs[j].input_type] + t for j in members for t in jobs[j].texts]
            with m.lock:
                vectors, counts, cut = self._encode(m, texts)
            start = 0
            for j in members:
                job = jobs[j]
                end = start + len(job.texts)
                out[j] = self._result(m, job, vectors[start:end], counts[start:end], cut[start:end])
                start = end
        return out  # type: ignore[return-value]

    def _result(self, m: _Model, job: EmbedJob, vectors, counts, cut) -> EmbedResult | LoragError:
        if not job.truncate:
            for i, was_cut in enumerate(cut):
                if was_cut:
                    return InvalidArgument(
                        f"is longer than the {m.max_seq_length}-token limit of model {m.name!r}; "
                        "shorten it or allow truncation",
                        field=f"texts[{i}]",
                    )
        vectors = np.array(vectors, dtype=np.float32, copy=True)
        if job.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors /= np.maximum(norms, 1e-12)
        return EmbedResult(
            vectors=vectors,
            token_counts=[int(c) for c in counts],
            truncated=[bool(c) for c in cut],
            model=m.name,
            dimension=m.dimension,
        )

    def _tokenize(self, m: _Model, texts: list[str]) -> tuple[dict[str, list], list[bool]]:
        enc = m.tokenizer(texts, truncation=True, max_length=m.max_seq_length)
        encodings = getattr(enc, "encodings", None)
        if encodings:
            cut = [bool(e.overflowing) for e in encodings]
        else:  # a slow (Python) tokenizer: measure the untruncated lengths
            full = m.tokenizer(texts, truncation=False)["input_ids"]
            cut = [len(ids) > m.max_seq_length for ids in full]
        return {k: list(v) for k, v in enc.items()}, cut

    def _encode(self, m: _Model, texts: list[str]) -> tuple[np.ndarray, list[int], list[bool]]:
        """Raw (unnormalised) vectors, token counts and truncation flags, in input order."""
        import torch

        enc, cut = self._tokenize(m, texts)
        counts = [len(ids) for ids in enc["input_ids"]]
        # Similar lengths share a forward pass: less padding, same result per text.
        order = sorted(range(len(texts)), key=lambda i: counts[i])
        vectors = np.empty((len(texts), m.dimension or 1), dtype=np.float32)
        step = self.settings.inference_batch_size
        with torch.inference_mode():
            for s in range(0, len(order), step):
                idx = order[s : s + step]
                batch = m.tokenizer.pad({k: [v[i] for i in idx] for k, v in enc.items()}, return_tensors="pt")
                out = self._run_modules(m, dict(batch))
                if vectors.shape[1] != out.shape[1]:
                    vectors = np.empty((len(texts), out.shape[1]), dtype=np.float32)
                vectors[idx] = out
        return vectors, counts, cut

    def _forward(self, m: _Model, texts: list[str]) -> np.ndarray:
        enc, _ = self._tokenize(m, texts)
        batch = m.tokenizer.pad(enc, return_tensors="pt")
        return self._run_modules(m, dict(batch))

    @staticmethod
    def _run_modules(m: _Model, features: dict[str, Any]) -> np.ndarray:
        return m.encoder(features).float().cpu().numpy()

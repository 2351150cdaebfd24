"""Settings of the reranking application (environment prefix ``LORAG_RERANKING_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Registry name of the default reranker, built locally by ``lorag prepare-models``.
DEFAULT_MODEL = "minilm-l6-squad"
#: ``path`` prefix of models built by lorag itself (see :mod:`lorag.reranking.prepare`).
BUILT_PREFIX = "built:"


class RerankerModelSpec(BaseModel):
    """One entry of the reranker registry.

    ``path``: ``built:<name>`` for a model lorag builds under the data dir, a local directory of a
    Hugging Face sequence-classification model with one output (a cross-encoder), or a Hugging Face
    id already in the local Hugging Face cache (never downloaded).
    """

    model_config = {"extra": "forbid", "frozen": True}

    path: str = Field(min_length=1)
    max_seq_length: int | None = Field(
        None, ge=16, le=8192, description="Token limit of query + passage; default 256 or the model's."
    )
    adapter_base_model: str = Field(
        "ms-marco-minilm-l6",
        min_length=1,
        description="Adapter registry base model whose reranking adapters this model serves.",
    )


class RerankingSettings(BaseSettings):
    """Read once at start-up. ``RerankingSettings()`` works with no environment set."""

    model_config = SettingsConfigDict(env_prefix="LORAG_RERANKING_", extra="ignore", frozen=True)

    models: dict[str, RerankerModelSpec] = Field(
        default_factory=lambda: {DEFAULT_MODEL: RerankerModelSpec(path=BUILT_PREFIX + DEFAULT_MODEL)},
        description="Registry: name -> model (JSON in LORAG_RERANKING_MODELS).",
    )
    default_model: str = Field(DEFAULT_MODEL, description="Model used when a request names none.")
    max_passages: int = Field(1000, ge=1, le=100_000, description="Most passages in one request.")
    max_query_chars: int = Field(4096, ge=1, description="Most characters in the query.")
    max_passage_chars: int = Field(16_384, ge=1, description="Most characters in one passage.")
    max_passage_id_chars: int = Field(256, ge=0, description="Most characters in a passage id.")
    batch_max_size: int = Field(
        8, ge=1, le=1024, description="Most requests merged into one dynamic batch (@serve.batch)."
    )
    batch_wait_s: float = Field(0.005, ge=0, le=1, description="Longest wait for a batch to fill (s).")
    inference_batch_size: int = Field(32, ge=1, le=4096, description="Query-passage pairs per forward pass.")
    num_threads: int = Field(
        0, ge=0, le=512, description="torch threads; 0 = every CPU this process may use but one."
    )
    quantize: bool = Field(False, description="int8 dynamic quantization (faster on CPU, approximate).")
    adapter_cache_bytes: int = Field(
        256 << 20, ge=1 << 20, description="Memory budget of loaded LoRA adapters per reranker model."
    )
    artifacts_dir: Path | None = Field(
        None, description="Where built models live; default <LORAG_DATA_DIR>/models."
    )
    build_recipe: dict[str, float | int] = Field(
        default_factory=dict,
        description=(
            "Overrides of the built default reranker's recipe (JSON in LORAG_RERANKING_BUILD_RECIPE, "
            'e.g. {"steps": 400}); a changed recipe is a new version, built on first use.'
        ),
    )

    @field_validator("artifacts_dir")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return Path(value).expanduser() if value else None

    @model_validator(mode="after")
    def _default_is_registered(self) -> RerankingSettings:
        if self.default_model not in self.models:
            raise ValueError(
                f"default_model {self.default_model!r} is not one of models {sorted(self.models)}"
            )
        for name in self.models:
            if not 1 <= len(name) <= 128:
                raise ValueError(f"model name {name!r} must be 1-128 characters")
        return self

    def resolved_artifacts_dir(self, data_dir: Path) -> Path:
        return self.artifacts_dir or Path(data_dir) / "models"

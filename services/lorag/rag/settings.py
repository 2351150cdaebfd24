"""Settings of the RAG orchestrator (environment prefix ``LORAG_RAG_``), with per-tenant overrides."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Best rerank score below which an answer is rejected ("not found in your documents"), on the
#: default reranker's sigmoid scale (its scores crowd towards 1). Chosen by ``lorag eval rag`` on
#: SQuAD dev with the built ``minilm-l6-squad``: answers 92.5 % of 120 answerable questions and
#: rejects 58.3 % of 72 unanswerable ones (the previous 0.3 rejected 11.1 %;
#: benchmarks/results/eval/rag.json). Another reranker needs its own run.
DEFAULT_MIN_RELEVANCE = 0.994
#: The same for the bi-encoder stand-in used until the cross-encoder is built: (1 + cos) / 2.
#: Chosen by ``lorag eval rag`` on held-out SQuAD dev questions with and without their supporting
#: paragraph: answers 90.8 % of answerable questions, rejects 33.3 % of unanswerable ones
#: (benchmarks/results/eval/cosine-stand-in/rag.json).
DEFAULT_MIN_RELEVANCE_COSINE = 0.71


class TenantRagConfig(BaseModel):
    """What one tenant may change about Ask; unset fields keep the service defaults."""

    model_config = {"extra": "forbid", "frozen": True}

    min_relevance: float | None = Field(None, ge=0.0, le=1.0, description="negative-rejection threshold")
    routing: str | None = Field(None, pattern="^(auto|always|never)$", description="default routing")
    template: str | None = Field(None, min_length=1, description="default prompt template")
    templates: dict[str, str] = Field(
        default_factory=dict, description="extra templates of this tenant: name -> template text"
    )
    top_k: int | None = Field(None, ge=1, le=200)
    rerank_top_n: int | None = Field(None, ge=1, le=200)


class RagSettings(BaseSettings):
    """Read once at start-up. ``RagSettings()`` works with no environment set."""

    model_config = SettingsConfigDict(env_prefix="LORAG_RAG_", extra="ignore", frozen=True)

    min_relevance: float = Field(
        DEFAULT_MIN_RELEVANCE, ge=0.0, le=1.0, description="default negative-rejection threshold"
    )
    min_relevance_cosine: float = Field(
        DEFAULT_MIN_RELEVANCE_COSINE,
        ge=0.0,
        le=1.0,
        description="threshold while the reranker falls back to bi-encoder cosine ((1 + cos) / 2)",
    )
    repetition_penalty: float = Field(1.15, gt=0.0, le=2.0, description="of answers when none is given")
    routing: str = Field("always", pattern="^(auto|always|never)$", description="default routing")
    template: str = Field("default", min_length=1, description="default prompt template")
    top_k: int = Field(20, ge=1, le=200, description="chunks retrieved per query")
    rerank_top_n: int = Field(5, ge=1, le=200, description="chunks kept after reranking")
    max_question_chars: int = Field(4096, ge=1)
    max_question_tokens: int = Field(512, ge=8, description="longest question, in generation tokens")
    max_history_turns: int = Field(20, ge=0)
    answer_tokens: int = Field(160, ge=1, description="max_new_tokens of answers when none is given")
    context_token_budget: int = Field(
        0, ge=0, description="tokens of passages in the prompt; 0 = what the generation model leaves"
    )
    answer_retention_days: int = Field(30, ge=1, description="how long answers accept feedback")
    max_ingest_documents: int = Field(10_000, ge=1, description="documents per Ingest stream")
    tenants: dict[str, TenantRagConfig] = Field(
        default_factory=dict, description="per-tenant overrides (JSON in LORAG_RAG_TENANTS)"
    )
    # Applications the orchestrator calls through DeploymentHandles under Ray Serve.
    embedding_app: str = "embedding"
    retrieval_app: str = "retrieval"
    reranking_app: str = "reranking"
    generation_app: str = "generation"

    def for_tenant(self, tenant_id: str) -> TenantRagConfig:
        return self.tenants.get(tenant_id) or TenantRagConfig()

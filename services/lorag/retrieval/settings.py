"""Settings of the retrieval service, environment prefix ``LORAG_RETRIEVAL_``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from lorag.common.settings import LoragSettings, RedactedRepr


class RetrievalSettings(RedactedRepr, BaseSettings):
    """Where the vectors live and the limits of the retrieval API.

    Read once at start-up (``RetrievalSettings()``); ``data_dir`` defaults to the platform's
    ``LORAG_DATA_DIR``.
    """

    model_config = SettingsConfigDict(env_prefix="LORAG_RETRIEVAL_", extra="ignore", frozen=True)
    _redacted_urls: ClassVar[tuple[str, ...]] = ("milvus_uri",)

    data_dir: Path | None = Field(None, description="Embedded state; default: LORAG_DATA_DIR.")
    milvus_uri: str = Field(
        "",
        description="Milvus URI (http://host:19530, a Zilliz endpoint, or a Milvus Lite path ending "
        "in .db). Empty: Milvus Lite under the data dir, per `lite_mode`.",
    )
    milvus_token: SecretStr | None = Field(None, description="Milvus token (`user:password` or API key).")
    milvus_db_name: str = Field("", description="Milvus database; empty means the server default.")
    lite_mode: Literal["embedded", "server"] = Field(
        "embedded",
        description="Without milvus_uri: `embedded` opens the Milvus Lite file in this process (one "
        "process only); `server` shares one managed `milvus-lite server` subprocess on 127.0.0.1 "
        "between every process of this host using the same data dir.",
    )
    lite_server_port: int = Field(0, ge=0, le=65535, description="Port of the managed server; 0: free port.")
    collection_prefix: str = Field("lorag", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
    num_partitions: int = Field(64, ge=1, le=1024, description="Partition-key buckets per collection.")
    index_type: Literal["HNSW", "FLAT", "IVF_FLAT"] = Field("HNSW", description="Dense vector index.")
    hnsw_m: int = Field(16, ge=4, le=64)
    hnsw_ef_construction: int = Field(200, ge=8, le=2048)
    hnsw_ef_search: int = Field(128, ge=1, le=32768, description="ef at search time (at least top_k).")
    bm25_k1: float = Field(1.2, ge=0, le=3)
    bm25_b: float = Field(0.75, ge=0, le=1)
    max_top_k: int = Field(1000, ge=1, le=16384)
    default_top_k: int = Field(10, ge=1)
    hybrid_candidates: int = Field(
        100, ge=1, le=16384, description="Candidates per signal before fusion (at least top_k)."
    )
    max_documents_per_request: int = Field(100, ge=1)
    max_chunks_per_document: int = Field(1000, ge=1)
    max_chunk_chars: int = Field(32768, ge=1, le=65535)
    max_content_bytes: int = Field(8 * 1024 * 1024, ge=1)
    max_query_chars: int = Field(4096, ge=1)
    max_metadata_bytes: int = Field(16 * 1024, ge=2)
    chunk_tokens: int = Field(200, ge=16, le=8192, description="Default chunk size in tokens.")
    chunk_overlap_tokens: int = Field(32, ge=0, description="Default overlap in tokens.")
    default_embedding_model: str = Field(
        "", description="Model used when a request names none; empty: the embedding service's default."
    )
    model_dimensions: dict[str, int] = Field(
        default_factory=dict,
        description="Dimensions of models whose vectors callers compute themselves (JSON object); "
        "models served by the embedding service need no entry.",
    )
    filter_metadata_keys: list[str] = Field(
        default_factory=list,
        description="If set, the only top-level metadata keys filters may use (JSON list).",
    )
    embedder: Literal["auto", "local", "serve", "none"] = Field(
        "auto",
        description="How texts are embedded: `local` (in this process), `serve` (the embedding "
        "application through a Ray Serve handle), `auto` (serve inside Ray Serve, else local), "
        "`none` (callers must send vectors).",
    )
    embedding_app: str = Field("embedding", description="Ray Serve application of the embedding service.")

    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else LoragSettings().data_dir

    def lite_path(self) -> Path:
        """The Milvus Lite data directory (pymilvus calls it a ``.db`` file)."""
        return self.resolved_data_dir() / "milvus" / "lorag.db"

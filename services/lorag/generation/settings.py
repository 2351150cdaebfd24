"""Generation settings (environment prefix ``LORAG_GENERATION_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from lorag.common.settings import LoragSettings

DEFAULT_MODEL = "smollm2-135m-instruct"


class GenerationSettings(LoragSettings):
    model_config = SettingsConfigDict(env_prefix="LORAG_GENERATION_", extra="ignore", frozen=True)

    backend: str = Field("local", pattern="^(local|tgi)$", description="local (transformers) or tgi")
    models: dict[str, str] = Field(
        default_factory=dict,
        description="name -> local model directory or HF id; the built-in default needs no entry",
    )
    default_model: str = Field(DEFAULT_MODEL, description="model used when a request names none")
    max_batch_size: int = Field(8, ge=1, le=256, description="rows decoded together per step")
    max_prompt_tokens: int = Field(1536, ge=16, description="longest prompt accepted, in tokens")
    max_new_tokens: int = Field(512, ge=1, description="upper bound of sampling.max_new_tokens")
    default_new_tokens: int = Field(128, ge=1, description="max_new_tokens when a request sets none")
    max_concurrent_per_tenant: int = Field(16, ge=1, description="in-flight requests per tenant")
    max_loaded_adapters: int = Field(
        32, ge=1, description="adapter versions a replica advertises to Ray Serve's router"
    )
    adapter_cache_bytes: int = Field(
        512 * 1024 * 1024, ge=1024 * 1024, description="memory budget of loaded adapters (LRU)"
    )
    quantize_int8: bool = Field(
        False, description="int8 dynamic quantization of the base (CPU; serves no adapters)"
    )
    bnb_quantization: str = Field(
        "none",
        pattern="^(none|int8|nf4|fp4)$",
        description="bitsandbytes 8/4-bit base: CUDA GPU, else CPU (extra `quant`); none = full precision",
    )
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads; 0 = number of cores")
    tgi_url: str = Field("http://127.0.0.1:8080", description="base URL of the TGI/LoRAX server")
    tgi_timeout_s: float = Field(120.0, gt=0, description="HTTP timeout towards TGI")

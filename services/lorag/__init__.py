"""lorag: multi-tenant retrieval-augmented generation with per-tenant LoRA adapters."""

__version__ = "0.1.0"

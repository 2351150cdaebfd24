"""Generation service with multi-LoRA serving (lorag.generation.v1)."""

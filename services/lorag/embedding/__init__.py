"""Embedding service (lorag.embedding.v1)."""

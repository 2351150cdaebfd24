"""Reranking service (lorag.reranking.v1)."""

"""Retrieval service on Milvus (lorag.retrieval.v1)."""

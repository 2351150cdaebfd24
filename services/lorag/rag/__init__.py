"""RAG orchestrator (lorag.rag.v1)."""

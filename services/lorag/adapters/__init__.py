"""Adapter registry, admin and training APIs (lorag.adapters.v1, lorag.admin.v1)."""

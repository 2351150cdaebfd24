"""Tenants, API keys and quotas (lorag.admin.v1), hosted by the `adapters` application."""

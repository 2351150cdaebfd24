"""Helpers shared by test tiers: locally built adapters, a throw-away Postgres, an S3-compatible server."""

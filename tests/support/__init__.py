"""Helpers shared by the test tiers: locally built models and adapters, throw-away local servers."""

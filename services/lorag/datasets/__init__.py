"""Public data sets that lorag builds and evaluates models with (read from PyPI packages, offline)."""

"""Structured logging: one JSON object per line with service, method, tenant and trace id."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

#: Fields of the RPC being handled, added to every log line written while it runs.
log_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "lorag_log_context", default=None
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **(log_context.get() or {}),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Configure the ``lorag`` logger once per process."""
    logger = logging.getLogger("lorag")
    if getattr(logger, "_lorag_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    logger._lorag_configured = True  # type: ignore[attr-defined]

"""Structured logging: one JSON object per line with service, method, tenant and trace id.

The trace id is the current OpenTelemetry span's (see :mod:`lorag.common.telemetry`), so a log line
and the trace of the request it belongs to share one id.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

from opentelemetry import trace

#: Fields of the RPC being handled, added to every log line written while it runs.
log_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "lorag_log_context", default=None
)


def current_fields() -> dict[str, str]:
    """The RPC's fields; the trace id is the current span's when one exists."""
    fields = dict(log_context.get() or {})
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        fields["trace_id"] = format(ctx.trace_id, "032x")
        fields["span_id"] = format(ctx.span_id, "016x")
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **current_fields(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``LEVEL logger [trace=<id>] message`` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        trace_id = current_fields().get("trace_id", "")
        line = f"{record.levelname} {record.name} [trace={trace_id or '-'}] {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Configure the ``lorag`` logger once per process."""
    logger = logging.getLogger("lorag")
    if getattr(logger, "_lorag_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    logger._lorag_configured = True  # type: ignore[attr-defined]

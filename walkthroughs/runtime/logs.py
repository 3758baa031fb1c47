"""Structured logs: one JSON object per line, with the event name and its fields.

Log with an event name and fields, never with values pasted into sentences::

    log.warning("mongo_retry", extra={"fields": {"what": "write", "attempt": 3}})

prints ``{"ts": "...", "level": "WARNING", "logger": "...", "event": "mongo_retry",
"what": "write", "attempt": 3}``. Nothing secret is ever passed as a field: settings are logged
through ``Settings.describe()``, which redacts them. Every line is also scrubbed of the
process's known secrets (``redaction.scrub``) on its way out, so a library's own log record or
an exception text that quotes a credential is cut as well.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from walkthroughs.runtime.redaction import scrub


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line (orjson: fast, and safe on any value via ``default``)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record's event, level, origin and fields."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return scrub(orjson.dumps(entry, default=str).decode())


class PlainFormatter(logging.Formatter):
    """Format a record as one line for a person at a terminal (the CLI): level, event, fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``level: event key=value ...``."""
        fields = getattr(record, "fields", None)
        pairs = " ".join(f"{k}={v}" for k, v in fields.items()) if isinstance(fields, dict) else ""
        return scrub(f"{record.levelname.lower()}: {record.getMessage()} {pairs}".rstrip())


def configure(level: str, formatter: logging.Formatter | None = None) -> None:
    """Send every logger's records to stderr, one line each (JSON unless told), at ``level``."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter or JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

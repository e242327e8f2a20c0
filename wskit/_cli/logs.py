"""How ``wskit serve`` / ``echo`` / ``dev`` log: text for people, JSON for machines.

``--log-format text`` (the default) is one human line per record.
``--log-format json`` is one JSON object per line: ``time`` (UTC, ISO
8601), ``level``, ``logger``, ``message``, then every ``extra=`` field the
record carries (``connection_id``, ``event``, ``peer``, ``remote``,
``path``, ``close_code``, ``duration``, ``messages_in``... see the logging
guide), and ``exc`` with the traceback when there is one.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

__all__ = ["FORMATS", "JsonFormatter", "setup_logging"]

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What every LogRecord has; anything else on a record came from extra=.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(level: str, fmt: str = "text", text_format: str = TEXT_FORMAT) -> None:
    """Log to stderr at ``level`` (``wskit`` loggers and the application's);
    ``text_format`` is the line of ``--log-format text`` (a worker's names it)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(text_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())

"""The server's log lines: JSON objects, one per line (``GEOTARGET_LOG_FORMAT=json``, the default), or uvicorn's
text. A request's line carries its route template, status, latency and key id, never a raw path, device id or
key (see api/access_log.py)."""

from __future__ import annotations

import logging
from copy import deepcopy
from datetime import UTC, datetime
from typing import Any

import orjson

REQUEST_FIELDS = ("method", "route", "status", "latency_ms", "key_id")


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({name: getattr(record, name) for name in REQUEST_FIELDS if hasattr(record, name)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's logging config with geotarget's loggers on the same handler, as JSON lines or as text."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = deepcopy(LOGGING_CONFIG)
    config["loggers"]["geotarget"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    if log_format == "json":
        for name in ("default", "access"):
            config["formatters"][name] = {"()": f"{__name__}.JsonLines"}
    return config

"""Log records as plain text or JSON lines (DOCENT_LOG_FORMAT), each with the id of the request or
question it belongs to, so that one answer's or upload's lines can be found together."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# The address the request came from (REMOTE_ADDR), for the audit log.
client_address: contextvars.ContextVar[str | None] = contextvars.ContextVar("client_address", default=None)

_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def usable_id(value: str | None) -> str:
    """The caller's id when it is safe to log and echo (a proxy's X-Request-ID), else a new one."""
    return value if value and _SAFE_ID.fullmatch(value) else uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid and rid != "-":
            entry["request_id"] = rid
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)

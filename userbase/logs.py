"""Logging: JSON lines or readable text, each line carrying the request id it belongs to.

What never reaches a log: request bodies, query strings, headers and SQL parameters are not logged
at all (the access line names the route template, and the engine hides parameters). As a second
line of defence, every formatted line is scrubbed of anything shaped like an email address, a
password hash or a bearer token.
"""

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

from userbase.config import Settings

# Set by the request middleware (observe.py) for the task serving one request; each request runs
# in its own task, so the value never leaks to another request.
request_id_var: ContextVar[str | None] = ContextVar("userbase_request_id", default=None)

# The attributes every LogRecord has; anything else on a record came from `extra=` (except
# uvicorn's color_message, the same message with terminal colours).
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}

_SECRETS = re.compile(
    r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+\.[A-Za-z0-9-]+"  # an email address
    r"|\$argon2(?:id|i|d)\$[^\s'\"]+"  # an argon2 hash
    r"|\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}"  # a bcrypt hash
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+",  # an Authorization header's credentials
)


def scrub(text: str) -> str:
    """`text` with email addresses, password hashes and bearer tokens replaced by a marker."""
    # Each secret above has an "@", a "$" or the word bearer. A line with none (an access line)
    # skips the pattern, which costs ~25 µs on a 250-character JSON line; these tests ~1 µs
    # (bench/observe_cost.py: the JSON access line went from +57 to +32 µs a request).
    if "@" not in text and "$" not in text and "bearer" not in text.lower():
        return text
    return _SECRETS.sub("[redacted]", text)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return scrub(orjson.dumps(entry, default=str).decode())


class TextFormatter(logging.Formatter):
    """`time level logger message [request_id=...]`, with a traceback below when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name} {record.getMessage()}"
        request_id = request_id_var.get()
        if request_id is not None:
            line += f" request_id={request_id}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return scrub(line)


def configure_logging(settings: Settings) -> None:
    """Send userbase's and uvicorn's logs to stderr in the configured format (idempotent)."""
    # What no line of ours prints, and every record would otherwise gather (the logging HOWTO,
    # "Optimization"): the caller's file and line (a walk up the stack), thread and process.
    # The access line is written once per request: this took ~15% off its cost.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter() if settings.log_format == "json" else TextFormatter()
    handler.setFormatter(formatter)
    # userbase keeps propagating (so test tools that listen on the root logger still see it);
    # nothing configures the root logger under uvicorn, so each line is written once.
    userbase_logger = logging.getLogger("userbase")
    userbase_logger.handlers = [handler]
    userbase_logger.setLevel(settings.log_level.upper())
    # uvicorn's start-up, shutdown and error lines (tracebacks included) get the same format and
    # the same scrubbing; its access log is replaced by ours (`userbase serve` turns it off).
    logging.getLogger("uvicorn").handlers = [handler]

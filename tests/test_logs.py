"""Log formats: JSON lines or text, with the request id, scrubbed of secrets."""

import logging
import sys

import orjson
import pytest

from userbase.config import Settings
from userbase.logs import JsonFormatter, TextFormatter, configure_logging, request_id_var, scrub


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord(
        {"name": "userbase.test", "levelname": "INFO", "msg": message, "args": args}
    )
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_json_lines_carry_time_level_logger_message_and_extras() -> None:
    token = request_id_var.set("req-1")
    try:
        line = JsonFormatter().format(record("GET %s", "/users/", status=200))
    finally:
        request_id_var.reset(token)
    entry = orjson.loads(line)
    assert "\n" not in line
    assert entry["level"] == "info"
    assert entry["logger"] == "userbase.test"
    assert entry["message"] == "GET /users/"
    assert entry["status"] == 200
    assert entry["request_id"] == "req-1"
    assert entry["time"].endswith("+00:00")


def test_json_lines_put_a_traceback_in_one_field() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        made = record("failed")
        made.exc_info = sys.exc_info()
    entry = orjson.loads(JsonFormatter().format(made))
    assert "ValueError: broken" in entry["exception"]


def test_text_lines_are_readable_and_name_the_request() -> None:
    token = request_id_var.set("req-2")
    try:
        line = TextFormatter().format(record("GET /users/ 200 1.0 ms"))
    finally:
        request_id_var.reset(token)
    assert line.endswith("INFO    userbase.test GET /users/ 200 1.0 ms request_id=req-2")


@pytest.mark.parametrize(
    "secret",
    [
        "ada@example.com",
        "Ada.Lovelace+tag@mail.example.co.uk",
        "$argon2id$v=19$m=19456,t=2,p=1$K71nmMEbIeX8oXIGQgFVqg$iHNl4N37Zhi9zfebPV4Rff",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        "Bearer abc.def-ghi_jkl",
    ],
)
def test_scrub_removes_secrets_wherever_they_appear(secret: str) -> None:
    text = f"Key (email_key)=({secret}) already exists: {secret!r}"
    assert secret not in scrub(text)
    assert "[redacted]" in scrub(text)


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "GET /users/{user_id} 404 1.2 ms request_id=abc-123 at 2026-11-27T21:00:00+00:00"
    assert scrub(text) == text


def test_both_formatters_scrub() -> None:
    made = record("duplicate %s", "ada@example.com")
    assert "ada@example.com" not in JsonFormatter().format(made)
    assert "ada@example.com" not in TextFormatter().format(made)


def test_configure_logging_is_idempotent() -> None:
    settings = Settings(log_format="json")
    configure_logging(settings)
    configure_logging(settings)
    handlers = logging.getLogger("userbase").handlers
    assert len(handlers) == 1
    assert isinstance(handlers[0].formatter, JsonFormatter)
    configure_logging(Settings())
    assert isinstance(logging.getLogger("userbase").handlers[0].formatter, TextFormatter)

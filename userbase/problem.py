"""RFC 9457 problem details: the body of every error userbase answers, and its OpenAPI shape.

It imports nothing of userbase's but the JSON encoder, so that every layer (middleware,
admission, routers, the exception handlers in errors.py) can answer with it.
"""

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from pydantic import BaseModel, Field
from starlette.responses import Response

PROBLEM_MEDIA_TYPE = "application/problem+json"
# How long a client should wait before retrying when the database (or a slot) is unavailable.
RETRY_AFTER_SECONDS = "2"


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error."""

    type: str = Field(default="about:blank", examples=["about:blank"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["No user with id 42."])
    instance: str | None = Field(default=None, examples=["/users/42"])
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For validation errors: one entry per bad field."
    )


# For the OpenAPI document: routes list the problems they can answer with.
PROBLEM_RESPONSE: dict[str, Any] = {
    "model": Problem,
    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


class ProblemResponse(Response):
    media_type = PROBLEM_MEDIA_TYPE


def problem(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> ProblemResponse:
    """A problem+json response; `title` is the status phrase, as RFC 9457 asks for about:blank.
    `extensions`: members of the problem type's own (RFC 9457 section 3.2)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = list(errors)
    if extensions is not None:
        body.update(extensions)
    # A problem holds strings, numbers and lists of them: plain orjson, no options needed.
    return ProblemResponse(orjson.dumps(body), status_code=status, headers=headers)

"""JSON encoding for responses: orjson, once, straight from rows (no re-validation)."""

from typing import Any

import orjson
from starlette.responses import Response

# "Z" for UTC, as pydantic writes it; the OpenAPI schemas describe the same shapes.
_OPTIONS = orjson.OPT_UTC_Z


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=_OPTIONS)


class JSONBytes(Response):
    """A JSON response whose body is already encoded (or encoded here with orjson)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return dumps(content)

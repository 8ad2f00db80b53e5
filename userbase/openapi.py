"""The OpenAPI document lists the statuses that the layers in front of every route can answer."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from userbase.problem import PROBLEM_RESPONSE

_PROBLEM = PROBLEM_RESPONSE["content"]

# Any operation: header_limits.py (400, 431) and admission.py's request deadline (504).
_EVERY_OPERATION = {
    "400": "A header value is not UTF-8, or the body cannot be decoded.",
    "431": "The request headers are too large.",
    "504": "The request did not complete within USERBASE_REQUEST_TIMEOUT.",
}
# Operations with a body: body_limit.py (413) and the JSON parser (415, 422).
_WITH_BODY = {
    "413": "The body is too large.",
    "415": "The body is not application/json.",
    "422": "Validation error.",
}


def document_common_responses(app: FastAPI) -> None:
    """Build the document once, adding those statuses where the route did not list them."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    common = dict(_EVERY_OPERATION)
                    if "requestBody" in operation:
                        common |= _WITH_BODY
                    responses = operation.setdefault("responses", {})
                    if "422" in responses:
                        # FastAPI documents its own JSON shape; errors.py answers problem+json.
                        responses["422"]["content"] = _PROBLEM
                    for status, description in common.items():
                        responses.setdefault(
                            status, {"description": description, "content": _PROBLEM}
                        )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

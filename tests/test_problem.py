"""problem(): the RFC 9457 document every error is answered with, importable by any layer."""

import subprocess
import sys
from typing import Any

import orjson

from userbase.problem import PROBLEM_MEDIA_TYPE, problem


def test_a_problem_is_rfc_9457_json_titled_by_its_status() -> None:
    response = problem(404, "No user with id 42.")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json" == PROBLEM_MEDIA_TYPE
    assert orjson.loads(response.body) == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "No user with id 42.",
    }


def test_a_problem_names_its_instance_headers_and_field_errors_when_given() -> None:
    errors = [{"loc": ["body", "email"], "field": "email", "type": "value_error", "msg": "bad"}]
    response = problem(
        400,
        "Invalid request: check email.",
        instance="/users/",
        headers={"Retry-After": "2"},
        errors=errors,
    )
    body: dict[str, Any] = orjson.loads(response.body)
    assert body["title"] == "Bad Request"
    assert body["instance"] == "/users/"
    assert body["errors"] == errors
    assert response.headers["retry-after"] == "2"


def test_importing_problem_loads_no_other_userbase_module() -> None:
    # Middleware, admission and routers answer with it; were it to import the domain (as
    # errors.py does), those imports would go round in a circle.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, userbase.problem; "
            "print(sorted(m for m in sys.modules if m.startswith('userbase')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert loaded.strip() == "['userbase', 'userbase.problem']"


def test_the_openapi_document_describes_the_problem_shape(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    problem_schema = spec["components"]["schemas"]["Problem"]
    assert set(problem_schema["properties"]) == {
        "type",
        "title",
        "status",
        "detail",
        "instance",
        "errors",
    }
    assert set(problem_schema["required"]) == {"title", "status", "detail"}
    not_found = spec["paths"]["/users/{user_id}"]["get"]["responses"]["404"]
    assert not_found["content"][PROBLEM_MEDIA_TYPE] == {
        "schema": {"$ref": "#/components/schemas/Problem"}
    }

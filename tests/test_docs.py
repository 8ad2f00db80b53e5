"""/docs and /redoc work offline: their assets come from the installed package, Swagger UI 5."""

import re
from typing import Any


def test_docs_page_loads_its_assets_from_the_service(client: Any) -> None:
    page = client.get("/docs").text
    assert "cdn." not in page
    scripts = re.findall(r'src="([^"]+)"', page) + re.findall(r'href="([^"]+\.css)"', page)
    assert scripts
    for asset in scripts:
        assert asset.startswith("/docs-assets/")
        assert client.get(asset).status_code == 200


def test_bundled_swagger_ui_reads_openapi_3_1(client: Any) -> None:
    bundle = client.get("/docs-assets/swagger-ui-bundle.js").text
    versions = re.findall(r'"(\d+)\.(\d+)\.(\d+)"', bundle[:5_000_000])
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    # Swagger UI announces itself in the bundle; 5.x is the first line that renders OpenAPI 3.1.
    assert re.search(r"swagger-ui.{0,40}5\.\d+\.\d+|5\.\d+\.\d+.{0,40}swagger", bundle) or any(
        v[0] == "5" for v in versions
    )


def test_redoc_page_is_offline_too(client: Any) -> None:
    page = client.get("/redoc").text
    assert "/docs-assets/redoc.standalone.js" in page
    assert "fonts.googleapis" not in page
    assert client.get("/docs-assets/redoc.standalone.js").status_code == 200


def test_openapi_lists_the_users_routes(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/users/", "/users/{user_id}", "/healthz", "/readyz"} <= set(paths)

"""What every console page is checked for in Chromium: axe-core's accessibility rules, requests
that leave the server's origin, and errors in the browser console.

axe-core comes from its npm package (e2e/package.json, installed by `make test-e2e` with
`npm ci`): it is evaluated in the page through the DevTools protocol, so the pages' CSP (no
script but their own) stays as it is served.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations of the page as it is now (WCAG 2.x A and AA
    rules and best practices), one line each: rule, impact, the first elements concerned."""
    if not AXE.is_file():
        raise RuntimeError(f"{AXE} is missing: run `npm ci --prefix e2e` (make test-e2e does)")
    page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{violation['id']} ({violation['impact']}): "
        + ", ".join(str(node["target"]) for node in violation["nodes"][:3])
        for violation in result["violations"]
        if violation["impact"] in SERIOUS
    ]


@dataclass
class PageWatch:
    """Requests to any origin but the server's, and console errors, seen since `watch`."""

    origin: str
    off_origin: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [f"request off origin: {url}" for url in self.off_origin] + [
            f"console error: {text}" for text in self.console_errors
        ]


def watch(page: Any, origin: str) -> PageWatch:
    """Start recording what the page asks of other origins and what it logs as an error."""
    seen = PageWatch(origin.rstrip("/"))

    def on_request(request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob", "about"):
            return
        if f"{parts.scheme}://{parts.netloc}" != seen.origin:
            seen.off_origin.append(request.url)

    def on_console(message: Any) -> None:
        if message.type == "error":
            seen.console_errors.append(message.text)

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.console_errors.append(str(error)))
    return seen

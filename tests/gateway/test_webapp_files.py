"""The gateway serves the web app at `/` and its files under `/app`, each with a strict CSP,
and leaves the API, docs and metrics paths as they were."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from services.gateway.spa import CONTENT_SECURITY_POLICY

WEBAPP = Path(__file__).parents[2] / "services" / "gateway" / "webapp"


async def test_root_serves_the_app_with_a_strict_csp(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "connect-src 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    html = response.text
    # No inline script or style: every script and stylesheet is a file of this origin.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "style=" not in html
    assert "<style" not in html


async def test_every_app_file_is_served_with_the_csp(client: httpx.AsyncClient) -> None:
    files = [p for p in WEBAPP.rglob("*") if p.is_file()]
    assert files
    for path in files:
        url = "/app/" + path.relative_to(WEBAPP).as_posix()
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, url
        if path.suffix in {".js", ".mjs"}:
            assert "javascript" in response.headers["content-type"], url


async def test_app_scripts_name_no_other_host(client: httpx.AsyncClient) -> None:
    for path in (WEBAPP / "static").rglob("*"):
        if path.suffix in {".js", ".css", ".html"}:
            text = path.read_text()
            assert not re.findall(r"(?i)\b(?:https?:)?//[a-z0-9][a-z0-9.-]*\.[a-z]", text), path
            assert "innerHTML" not in text, f"{path} writes HTML"


async def test_api_and_docs_paths_are_unchanged(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/healthz")).status_code == 200
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    assert (await client.get("/app/nothing.js")).status_code == 404

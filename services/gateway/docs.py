"""Swagger UI (`/docs`) and ReDoc (`/redoc`) for the merged document, served from local files.

FastAPI's pages load their scripts, styles, favicon and fonts from CDNs, so on an offline or
air-gapped deployment they render blank. The `fastapi-offline` wheel ships the built
swagger-ui-dist and ReDoc bundles; the gateway serves them under `/docs/static/`, the pages
name only those URLs, and a Content-Security-Policy keeps the browser from fetching anything
else (ReDoc's bundle would otherwise fetch its vendor's logo from a CDN).
tests/gateway/test_docs_browser.py proves it in a browser refused every request off the
machine.

Exports: install_docs, DOCS_STATIC_URL.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_oauth2_redirect_html,
    swagger_ui_default_parameters,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from services.gateway.openapi import SECURITY_SCHEMES

DOCS_STATIC_URL = "/docs/static"
_OPENAPI_URL = "/openapi.json"
_OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
_TITLE = "llmnet API"
_ASSETS = Path(str(files("fastapi_offline") / "static"))
_FAVICON = f"{DOCS_STATIC_URL}/favicon.png"
_TOKEN_PATH: str = SECURITY_SCHEMES["OAuth2Password"]["flows"]["password"]["tokenUrl"]

_SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    **swagger_ui_default_parameters,
    "url": _OPENAPI_URL,
    # Logging in once (Authorize) survives reloads of the page.
    "persistAuthorization": True,
    # Swagger UI otherwise sends the document's URL to validator.swagger.io for a badge.
    "validatorUrl": None,
}

# Our own page rather than FastAPI's: its configuration is JSON only, and the token request
# needs an interceptor. Swagger UI's password flow sends the (empty) OAuth2 client credentials
# as `Authorization: Basic` unless the user picks "Request body"; the platform has no OAuth2
# clients and the gateway refuses any scheme but Bearer, so Authorize would fail with 401.
_SWAGGER_SCRIPT = """
const config = %(config)s;
SwaggerUIBundle({
  ...config,
  oauth2RedirectUrl: window.location.origin + %(redirect)s,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  requestInterceptor: (request) => {
    if (new URL(request.url, window.location.href).pathname === %(token_path)s) {
      delete request.headers.Authorization;
    }
    return request;
  },
});
"""
_SWAGGER_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%(title)s</title>
<link rel="stylesheet" href="%(static)s/swagger-ui.css">
<link rel="icon" href="%(favicon)s">
</head>
<body>
<div id="swagger-ui"></div>
<script src="%(static)s/swagger-ui-bundle.js"></script>
<script>%(script)s</script>
</body>
</html>
"""
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _script_json(value: Any) -> str:
    # JSON inside <script>: no "</script>" or "<!--" can end or bend the element.
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


def _swagger_ui_html() -> str:
    script = _SWAGGER_SCRIPT % {
        "config": _script_json(_SWAGGER_UI_PARAMETERS),
        "redirect": _script_json(_OAUTH2_REDIRECT_URL),
        "token_path": _script_json(_TOKEN_PATH),
    }
    return _SWAGGER_HTML % {
        "title": _TITLE,
        "static": DOCS_STATIC_URL,
        "favicon": _FAVICON,
        "script": script,
    }


def _content_security_policy(html: str) -> str:
    """Only this origin's files, plus the page's own inline scripts (by hash) and styles."""
    digests = (hashlib.sha256(body.encode()).digest() for body in _INLINE_SCRIPT.findall(html))
    hashes = " ".join(f"'sha256-{base64.b64encode(digest).decode()}'" for digest in digests)
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' {hashes}".rstrip(),
            # Both bundles inject their styles at run time (style elements and attributes).
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            # ReDoc runs its search index in a worker built from a blob.
            "worker-src 'self' blob:",
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )


def _add_page(app: FastAPI, path: str, html: str) -> None:
    headers = {"Content-Security-Policy": _content_security_policy(html)}

    async def page() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    app.add_api_route(path, page, methods=["GET"], include_in_schema=False)


def install_docs(app: FastAPI) -> None:
    """Add the asset mount and the three pages; call before any catch-all route."""
    app.mount(DOCS_STATIC_URL, StaticFiles(directory=_ASSETS), name="docs-static")
    redoc = get_redoc_html(
        openapi_url=_OPENAPI_URL,
        title=_TITLE,
        redoc_js_url=f"{DOCS_STATIC_URL}/redoc.standalone.js",
        redoc_favicon_url=_FAVICON,
        with_google_fonts=False,
    )
    # The pages never change while the process runs: rendered once.
    _add_page(app, "/docs", _swagger_ui_html())
    _add_page(app, _OAUTH2_REDIRECT_URL, bytes(get_swagger_ui_oauth2_redirect_html().body).decode())
    _add_page(app, "/redoc", bytes(redoc.body).decode())

"""The web app: `/` serves its page, `/app/` its ES modules, styles and vendored libraries.

Plain files, no build step (services/gateway/webapp/; README "Web app" says why). The app uses
the public API only; the page and every asset carry a strict Content-Security-Policy: scripts
and styles from this origin only (no inline script or style), requests to this origin only,
no frames. The app routes on the URL's fragment (`/#/chat/...`), so `/` is its only page and
the gateway's API and docs paths stay exactly as they were.

Exports: install_webapp, WEBAPP_URL, CONTENT_SECURITY_POLICY.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEBAPP_URL = "/app"
_ROOT = Path(__file__).parent / "webapp"
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Revalidated on every load (ETag): a new deployment is picked up at once.
    "Cache-Control": "no-cache",
}


class _AppFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_HEADERS)
        return response


def install_webapp(app: FastAPI) -> None:
    """Add `/` and the `/app` mount; call before any catch-all route."""
    index = _ROOT / "index.html"

    async def page() -> FileResponse:
        return FileResponse(index, media_type="text/html; charset=utf-8", headers=_HEADERS)

    app.add_api_route("/", page, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount(WEBAPP_URL, _AppFiles(directory=_ROOT), name="webapp")

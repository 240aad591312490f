"""Log in, refresh and log out with the refresh token in a cookie (the web app's way).

A browser app must not keep a refresh token where scripts can read it. These routes set it as
an `HttpOnly`, `SameSite=Strict` cookie (`Secure` when the request came over TLS) scoped to
`/api/v1/auth/cookie`, so it travels with these three requests only, and answer the access
token in the body (kept in memory by the app). The JSON routes (`/login`, `/refresh`,
`/logout`) stay as they are for every other client.

CSRF: a cookie the browser sends by itself must not let another site refresh or log out.
Besides `SameSite=Strict`, refresh and logout need a double-submit token: login also sets a
readable `llmnet_csrf` cookie (path `/`), and the request must repeat its value in the
`X-CSRF-Token` header, which another origin can neither read nor send without a preflight that
names this origin. All three refuse an `Origin` whose host is not the one the request came to.

Exports: router, REFRESH_COOKIE, CSRF_COOKIE, CSRF_HEADER, COOKIE_PATH.
"""

from __future__ import annotations

import secrets
import uuid
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from services.accounts.auth.schemas import LoginRequest, TokenPair
from services.accounts.auth.service import auth_service
from services.accounts.deps import ContextDep
from shared.auth.identity import client_ip
from shared.auth.tokens import InvalidToken, TokenType
from shared.db import SessionDep
from shared.errors import Forbidden, Unauthorized

COOKIE_PATH = "/api/v1/auth/cookie"
REFRESH_COOKIE = "llmnet_refresh"
CSRF_COOKIE = "llmnet_csrf"
CSRF_HEADER = "X-CSRF-Token"

router = APIRouter(prefix="/cookie")


class CookieSession(BaseModel):
    """An access token; the refresh token went into an HttpOnly cookie."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    csrf_token: str = Field(
        description=f"Also set as the `{CSRF_COOKIE}` cookie: send it as `{CSRF_HEADER}` "
        "to refresh and log out."
    )


class CsrfRefused(Forbidden):
    code = "csrf_refused"


def _is_tls(request: Request) -> bool:
    # The gateway terminates the client's connection and says how it came.
    proto = request.headers.get("x-forwarded-proto") or request.url.scheme
    return proto.split(",")[0].strip() == "https"


def _check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser's cross-site form or fetch: those always send Origin on POST
    host = request.headers.get("x-forwarded-host") or request.headers.get("host", "")
    # The host only: behind a TLS terminator that does not say so, the scheme seen here is
    # http while the page's is https; another site differs in its host.
    if urlsplit(origin).netloc.lower() != host.lower():
        raise CsrfRefused(f"Requests from {origin} may not use the login cookie.")


def _check_csrf(request: Request) -> None:
    _check_origin(request)
    expected = request.cookies.get(CSRF_COOKIE)
    sent = request.headers.get(CSRF_HEADER)
    if not expected or not sent or not secrets.compare_digest(expected, sent):
        raise CsrfRefused(
            f"Send the value of the {CSRF_COOKIE} cookie in the {CSRF_HEADER} header."
        )


def _refresh_cookie(request: Request) -> str:
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        raise Unauthorized("Not logged in: no login cookie.", code="not_logged_in")
    return token


def _session(response: Response, request: Request, pair: TokenPair, ttl: int) -> CookieSession:
    csrf = secrets.token_urlsafe(32)
    secure = _is_tls(request)
    response.set_cookie(
        REFRESH_COOKIE,
        pair.refresh_token,
        max_age=ttl,
        path=COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=ttl, path="/", secure=secure, httponly=False, samesite="strict"
    )
    response.headers["Cache-Control"] = "no-store"
    return CookieSession(
        access_token=pair.access_token, expires_in=pair.expires_in, csrf_token=csrf
    )


@router.post(
    "/login",
    response_model=CookieSession,
    summary="Log in; the refresh token is set as an HttpOnly cookie",
)
async def cookie_login(
    body: LoginRequest, request: Request, response: Response, session: SessionDep, ctx: ContextDep
) -> CookieSession:
    _check_origin(request)
    pair = await auth_service.login(session, ctx, body.username, body.password, client_ip(request))
    return _session(response, request, pair, ctx.settings.refresh_token_ttl_seconds)


@router.post(
    "/refresh",
    response_model=CookieSession,
    summary="Rotate the login cookie and get a new access token",
    description=f"Needs the `{REFRESH_COOKIE}` cookie and the `{CSRF_HEADER}` header.",
)
async def cookie_refresh(
    request: Request, response: Response, session: SessionDep, ctx: ContextDep
) -> CookieSession:
    _check_csrf(request)
    pair = await auth_service.refresh(session, ctx, _refresh_cookie(request), client_ip(request))
    return _session(response, request, pair, ctx.settings.refresh_token_ttl_seconds)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke the cookie's login and clear the cookies",
    description=f"Needs the `{CSRF_HEADER}` header; answers 204 even when already logged out.",
)
async def cookie_logout(
    request: Request, response: Response, session: SessionDep, ctx: ContextDep
) -> None:
    _check_csrf(request)
    token = request.cookies.get(REFRESH_COOKIE)
    if token:
        try:
            claims = ctx.signer.verifier().verify(token, TokenType.REFRESH)
        except InvalidToken:
            claims = None  # expired or spent already: nothing left to revoke
        if claims is not None:
            await auth_service.logout(
                session, ctx, uuid.UUID(claims.subject), token, client_ip(request)
            )
    secure = _is_tls(request)
    response.delete_cookie(
        REFRESH_COOKIE, path=COOKIE_PATH, secure=secure, httponly=True, samesite="strict"
    )
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure, samesite="strict")

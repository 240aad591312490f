"""Registration, login (JSON or OAuth2 password form), refresh, logout, JWKS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from services.accounts.auth.cookie import router as cookie_router
from services.accounts.auth.schemas import (
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisteredUser,
    RegisterRequest,
    TokenPair,
)
from services.accounts.auth.service import auth_service
from services.accounts.deps import ContextDep
from shared.auth.identity import CurrentUser, client_ip
from shared.db import SessionDep

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# The form carries the same fields as the JSON body, with the same rules (it is validated by the
# same model), plus OAuth2's grant_type.
_LOGIN_FIELDS = LoginRequest.model_json_schema()["properties"]
_LOGIN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password"]},
                        "username": _LOGIN_FIELDS["username"],
                        "password": {**_LOGIN_FIELDS["password"], "format": "password"},
                    },
                }
            },
        },
    }
}


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=RegisteredUser,
    summary="Create an account",
)
async def register(
    body: RegisterRequest, request: Request, session: SessionDep, ctx: ContextDep
) -> RegisteredUser:
    return await auth_service.register(session, ctx, body, client_ip(request))


async def _login_body(request: Request) -> LoginRequest:
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith(_FORM_TYPES):
            form = await request.form()
            return LoginRequest.model_validate(
                {"username": form.get("username"), "password": form.get("password")}
            )
        return LoginRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc


@router.post(
    "/login",
    response_model=TokenPair,
    summary="Log in with username (or email) and password",
    description="JSON `{username, password}` or the OAuth2 password form (Swagger's Authorize).",
    openapi_extra=_LOGIN_BODY,
)
async def login(request: Request, session: SessionDep, ctx: ContextDep) -> TokenPair:
    body = await _login_body(request)
    return await auth_service.login(session, ctx, body.username, body.password, client_ip(request))


@router.post("/refresh", response_model=TokenPair, summary="Rotate a refresh token")
async def refresh(
    body: RefreshRequest, request: Request, session: SessionDep, ctx: ContextDep
) -> TokenPair:
    return await auth_service.refresh(session, ctx, body.refresh_token, client_ip(request))


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke this login: its refresh tokens and access tokens stop working",
)
async def logout(
    body: LogoutRequest,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    ctx: ContextDep,
) -> None:
    await auth_service.logout(session, ctx, user.user_id, body.refresh_token, client_ip(request))


@router.get("/jwks", summary="Public keys that verify access tokens (JWKS)")
async def jwks(ctx: ContextDep) -> dict[str, list[dict[str, str]]]:
    return ctx.signer.jwks()


# The web app's variants (refresh token in an HttpOnly cookie): /api/v1/auth/cookie/...
router.include_router(cookie_router)

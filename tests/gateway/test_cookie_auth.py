"""The web app's login cookie, through the gateway: log in, refresh and log out with the refresh
token in an HttpOnly cookie, CSRF-checked; the JSON token API is unchanged beside it."""

from __future__ import annotations

import httpx

from shared.auth.identity import INTERNAL_TOKEN_HEADER
from tests.conftest import INTERNAL_TOKEN, Platform
from tests.factories import PASSWORD, login, register

COOKIE = "/api/v1/auth/cookie"


async def cookie_login(client: httpx.AsyncClient, username: str) -> httpx.Response:
    response = await client.post(
        f"{COOKIE}/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return response


async def post_with_cookies(
    client: httpx.AsyncClient, path: str, cookies: dict[str, str], csrf: str
) -> httpx.Response:
    """A POST from another cookie jar holding just `cookies`."""
    async with httpx.AsyncClient(base_url=client.base_url, cookies=cookies) as other:
        return await other.post(path, headers={"X-CSRF-Token": csrf})


def set_cookies(response: httpx.Response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


async def test_login_sets_an_httponly_strict_cookie_and_answers_an_access_token(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)
    response = await cookie_login(client, user["username"])
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "csrf_token"}
    cookies = set_cookies(response)
    refresh = cookies["llmnet_refresh"].lower()
    assert "httponly" in refresh
    assert "samesite=strict" in refresh
    assert "path=/api/v1/auth/cookie" in refresh
    assert "secure" not in refresh  # plain HTTP here; Secure when the request came over TLS
    csrf = cookies["llmnet_csrf"].lower()
    assert "httponly" not in csrf
    assert "samesite=strict" in csrf
    assert "path=/" in csrf
    assert client.cookies["llmnet_csrf"] == body["csrf_token"]
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["username"] == user["username"]


async def test_the_cookies_are_secure_behind_tls(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await register(client)
    # As the gateway forwards a request that reached it over TLS.
    async with httpx.AsyncClient(base_url=platform.service_urls["accounts"]) as accounts:
        response = await accounts.post(
            f"{COOKIE}/login",
            json={"username": user["username"], "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https", INTERNAL_TOKEN_HEADER: INTERNAL_TOKEN},
        )
    assert response.status_code == 200, response.text
    for header in set_cookies(response).values():
        assert "secure" in header.lower(), header


async def test_refresh_rotates_with_the_csrf_header(client: httpx.AsyncClient) -> None:
    user = await register(client)
    first = (await cookie_login(client, user["username"])).json()
    old_cookie = client.cookies["llmnet_refresh"]
    refreshed = await client.post(
        f"{COOKIE}/refresh", headers={"X-CSRF-Token": first["csrf_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    assert body["access_token"] != first["access_token"]
    assert client.cookies["llmnet_refresh"] != old_cookie
    assert client.cookies["llmnet_csrf"] == body["csrf_token"]
    # The spent cookie, replayed, ends the whole login (as the JSON refresh does).
    replay = await post_with_cookies(
        client,
        f"{COOKIE}/refresh",
        {"llmnet_refresh": old_cookie, "llmnet_csrf": body["csrf_token"]},
        body["csrf_token"],
    )
    assert replay.status_code == 401
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 401


async def test_refresh_without_the_csrf_header_or_from_another_origin_is_refused(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)
    session = (await cookie_login(client, user["username"])).json()
    missing = await client.post(f"{COOKIE}/refresh")
    assert missing.status_code == 403
    assert missing.json()["code"] == "csrf_refused"
    wrong = await client.post(f"{COOKIE}/refresh", headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    elsewhere = await client.post(
        f"{COOKIE}/refresh",
        headers={"X-CSRF-Token": session["csrf_token"], "Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403
    assert "evil.example" in elsewhere.json()["detail"]
    same_origin = await client.post(
        f"{COOKIE}/refresh",
        headers={"X-CSRF-Token": session["csrf_token"], "Origin": str(client.base_url)},
    )
    assert same_origin.status_code == 200, same_origin.text
    # Behind a TLS terminator the page is https while the gateway sees http: the host decides.
    behind_tls = await client.post(
        f"{COOKIE}/refresh",
        headers={
            "X-CSRF-Token": same_origin.json()["csrf_token"],
            "Origin": f"https://{client.base_url.netloc.decode()}",
        },
    )
    assert behind_tls.status_code == 200, behind_tls.text


async def test_refresh_without_the_cookie_is_401(client: httpx.AsyncClient) -> None:
    response = await post_with_cookies(client, f"{COOKIE}/refresh", {"llmnet_csrf": "abc"}, "abc")
    assert response.status_code == 401
    assert response.json()["code"] == "not_logged_in"


async def test_a_bad_login_is_401_and_sets_no_cookie(client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await client.post(
        f"{COOKIE}/login", json={"username": user["username"], "password": "wrong-pass-1"}
    )
    assert response.status_code == 401
    assert response.headers.get_list("set-cookie") == []


async def test_logout_revokes_the_login_and_clears_the_cookies(client: httpx.AsyncClient) -> None:
    user = await register(client)
    session = (await cookie_login(client, user["username"])).json()
    refused = await client.post(f"{COOKIE}/logout")
    assert refused.status_code == 403
    response = await client.post(
        f"{COOKIE}/logout", headers={"X-CSRF-Token": session["csrf_token"]}
    )
    assert response.status_code == 204
    assert "llmnet_refresh" not in client.cookies
    assert "llmnet_csrf" not in client.cookies
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert me.status_code == 401
    again = await post_with_cookies(client, f"{COOKIE}/logout", {"llmnet_csrf": "x"}, "x")
    assert again.status_code == 204


async def test_the_json_token_api_is_unchanged(client: httpx.AsyncClient) -> None:
    user = await register(client)
    tokens = await login(client, user["username"])
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    assert refreshed.headers.get_list("set-cookie") == []

"""Registration, login, refresh rotation, logout, and rejection of bad tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from cryptography.hazmat.primitives import serialization

from shared.auth.tokens import TokenSigner, TokenType
from shared.testing import generate_rsa_key
from tests.factories import PASSWORD, login, register, user_session


async def test_register_login_refresh_logout_round_trip(client):
    user = await register(client, "ada")
    assert user["username"] == "ada"
    assert "password" not in json.dumps(user)

    tokens = await login(client, "ada")
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] > 0
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["email"] == "ada@example.com"

    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    headers = {"Authorization": f"Bearer {new['access_token']}"}
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200

    out = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": new["refresh_token"]}, headers=headers
    )
    assert out.status_code == 204
    after = await client.get("/api/v1/users/me", headers=headers)
    assert after.status_code == 401
    assert after.json()["code"] == "token_revoked"
    again = await client.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert again.status_code == 401


async def test_login_accepts_the_oauth2_password_form_and_email(client):
    await register(client, "formy")
    response = await client.post(
        "/api/v1/auth/login",
        data={"grant_type": "password", "username": "formy@example.com", "password": PASSWORD},
    )
    assert response.status_code == 200
    assert response.json()["access_token"]


async def test_wrong_password_is_401_without_revealing_which_part(client):
    await register(client, "guarded")
    for username in ("guarded", "nobody_here"):
        response = await client.post(
            "/api/v1/auth/login", json={"username": username, "password": "wrong-password-1"}
        )
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_credentials"


async def test_login_with_missing_fields_names_them(client):
    response = await client.post("/api/v1/auth/login", json={"username": "x"})
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["password"]


async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(client):
    await register(client, "victim")
    first = await login(client, "victim")
    rotated = (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()

    replay = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 401
    assert replay.json()["code"] == "refresh_token_reused"

    # The legitimate holder's newer tokens of that login are dead too.
    newer = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert newer.status_code == 401
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {rotated['access_token']}"}
    )
    assert me.status_code == 401
    assert me.json()["code"] == "token_revoked"
    # Another login of the same user is untouched.
    other = await login(client, "victim")
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {other['access_token']}"}
    )
    assert me.status_code == 200


async def test_duplicate_username_and_email_are_409(client):
    await register(client, "taken")
    same_name = await client.post(
        "/api/v1/auth/register",
        json={"username": "TAKEN", "email": "other@example.com", "password": PASSWORD},
    )
    assert same_name.status_code == 409
    assert same_name.json()["code"] == "username_taken"
    same_email = await client.post(
        "/api/v1/auth/register",
        json={"username": "fresh", "email": "Taken@Example.com", "password": PASSWORD},
    )
    assert same_email.status_code == 409
    assert same_email.json()["code"] == "email_taken"


async def test_weak_password_is_422_naming_the_field(client):
    for weak in ("short1", "onlyletterslong", "1234567890123"):
        response = await client.post(
            "/api/v1/auth/register",
            json={"username": "weakling", "email": "weak@example.com", "password": weak},
        )
        assert response.status_code == 422, weak
        body = response.json()
        assert body["fields"][0]["field"] == "password"
        assert body["request_id"]


async def test_password_over_the_cap_is_refused(client):
    response = await client.post(
        "/api/v1/auth/register",
        json={"username": "longpw", "email": "long@example.com", "password": "a1" * 600},
    )
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "password"


async def test_malformed_email_and_reserved_username_are_422(client):
    response = await client.post(
        "/api/v1/auth/register",
        json={"username": "me", "email": "not-an-email", "password": PASSWORD},
    )
    assert response.status_code == 422
    fields = {f["field"] for f in response.json()["fields"]}
    assert fields == {"username", "email"}


def _signer(platform) -> TokenSigner:
    return TokenSigner(platform.jwt_key_file.read_bytes(), issuer="llmnet", audience="llmnet")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _rejected(client, token: str) -> dict:
    response = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    return response.json()


async def test_expired_token_is_rejected(client, platform):
    user = await user_session(client)
    token, _ = _signer(platform).issue(user.id, TokenType.ACCESS, -10, extra={"role": "user"})
    assert (await _rejected(client, token))["code"] == "token_expired"


async def test_tampered_token_is_rejected(client, platform):
    user = await user_session(client)
    header, payload, signature = user.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    forged = ".".join([header, _b64(claims), signature])
    assert (await _rejected(client, forged))["code"] == "invalid_token"


async def test_alg_none_token_is_rejected(client, platform):
    user = await user_session(client)
    kid = _signer(platform).jwk["kid"]
    now = int(time.time())
    claims = {
        "sub": user.id,
        "typ": "access",
        "iat": now,
        "exp": now + 600,
        "iss": "llmnet",
        "aud": "llmnet",
        "jti": "x",
        "role": "admin",
    }
    token = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_b64(claims)}."
    await _rejected(client, token)


async def test_hs256_signed_with_the_public_key_is_rejected(client, platform):
    """Key confusion: an HMAC token keyed with the (public) RSA key must not verify."""
    user = await user_session(client)
    signer = _signer(platform)
    public_pem = (
        serialization.load_pem_private_key(platform.jwt_key_file.read_bytes(), None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    now = int(time.time())
    claims = {
        "sub": user.id,
        "typ": "access",
        "iat": now,
        "exp": now + 600,
        "iss": "llmnet",
        "aud": "llmnet",
        "jti": "y",
    }
    signing_input = (
        f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': signer.jwk['kid']})}.{_b64(claims)}"
    )
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    await _rejected(client, token)


async def test_token_signed_by_another_key_is_rejected(client, platform, tmp_path):
    user = await user_session(client)
    other = TokenSigner(
        generate_rsa_key(tmp_path / "other.pem").read_bytes(), issuer="llmnet", audience="llmnet"
    )
    token, _ = other.issue(user.id, TokenType.ACCESS, 600)
    assert (await _rejected(client, token))["code"] == "invalid_token"
    # Same key id as the real key, different key: the signature check must fail.
    other.jwk = {**other.jwk, "kid": _signer(platform).jwk["kid"]}
    token, _ = other.issue(user.id, TokenType.ACCESS, 600)
    assert (await _rejected(client, token))["code"] == "invalid_token"


async def test_refresh_token_used_as_access_token_is_rejected(client):
    user = await user_session(client)
    assert (await _rejected(client, user.refresh_token))["code"] == "wrong_token_type"


async def test_access_token_used_as_refresh_token_is_rejected(client):
    user = await user_session(client)
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.access_token})
    assert response.status_code == 401
    assert response.json()["code"] == "wrong_token_type"


async def test_garbage_authorization_header_is_401(client):
    for value in ("Bearer", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt"):
        response = await client.get("/api/v1/users/me", headers={"Authorization": value})
        assert response.status_code == 401, value


async def test_jwks_serves_the_public_key_only(client):
    response = await client.get("/api/v1/auth/jwks")
    assert response.status_code == 200
    (key,) = response.json()["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert "d" not in key  # no private exponent

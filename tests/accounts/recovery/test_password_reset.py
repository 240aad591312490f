"""Password reset: a mailed link sets a new password once and ends every login; unknown
accounts get the same answer and no mail."""

from __future__ import annotations

import asyncio

from services.accounts.recovery.service import FORGOT_ACCEPTED
from tests.factories import PASSWORD, login, register

from .conftest import token_of

NEW_PASSWORD = "a-much-better-one-77"


async def _forgot(accounts, login_name):
    return await accounts.post("/api/v1/auth/password/forgot", json={"login": login_name})


async def test_a_reset_link_works_once_and_ends_every_login(client, accounts, mailbox, mail_worker):
    await register(client, "resa")
    await mailbox.wait_for(1)  # the verification mail of the registration
    first = await login(client, "resa")
    second = await login(client, "resa")

    asked = await _forgot(accounts, "Resa@Example.com")
    assert asked.status_code == 202
    assert asked.json() == {"detail": FORGOT_ACCEPTED}
    mail = (await mailbox.wait_for(2))[1]
    assert mail["To"] == "resa@example.com"
    assert mail["Subject"] == "Reset your llmnet password"
    token = token_of(mail)
    assert "/#/reset-password?token=" in mail.get_body(("plain",)).get_content()

    weak = await accounts.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": "short"}
    )
    assert weak.status_code == 422
    assert weak.json()["code"] == "weak_password"

    reset = await accounts.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD}
    )
    assert reset.status_code == 204
    again = await accounts.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD + "x"}
    )
    assert again.status_code == 400
    assert again.json()["code"] == "token_used"

    for tokens in (first, second):
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 401
        me = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert me.status_code == 401
        assert me.json()["code"] == "token_revoked"

    old = await client.post("/api/v1/auth/login", json={"username": "resa", "password": PASSWORD})
    assert old.status_code == 401
    fresh = await login(client, "resa", NEW_PASSWORD)
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {fresh['access_token']}"}
    )
    # The link reached the mailbox: that verifies the address too.
    assert me.json()["email_verified"] is True


async def test_unknown_accounts_get_the_same_answer_and_no_mail(
    client, accounts, mailbox, mail_worker
):
    await register(client, "known")
    await mailbox.wait_for(1)
    unknown = await _forgot(accounts, "nobody@example.com")
    by_name = await _forgot(accounts, "nobody")
    known = await _forgot(accounts, "known")
    for response in (unknown, by_name, known):
        assert response.status_code == 202
        assert response.json() == {"detail": FORGOT_ACCEPTED}

    await mailbox.wait_for(2)
    await asyncio.sleep(1)  # time enough for any mail the unknown ones might have caused
    assert [m["To"] for m in mailbox.messages] == ["known@example.com", "known@example.com"]


async def test_forgot_password_is_rate_limited_per_address_alike_for_unknown_ones(
    accounts, accounts_settings, monkeypatch
):
    monkeypatch.setattr(accounts_settings, "recovery_mails_per_hour", 2)
    for address in ("someone@example.com", "ghost@example.com"):
        for _ in range(2):
            assert (await _forgot(accounts, address)).status_code == 202
        limited = await _forgot(accounts, address.upper())
        assert limited.status_code == 429
        assert limited.json()["code"] == "recovery_rate_limited"


async def test_forgot_password_is_rate_limited_per_ip(accounts, accounts_settings, monkeypatch):
    monkeypatch.setattr(accounts_settings, "recovery_requests_per_ip_per_hour", 3)
    for n in range(3):
        assert (await _forgot(accounts, f"someone{n}@example.com")).status_code == 202
    limited = await _forgot(accounts, "someone-else@example.com")
    assert limited.status_code == 429
    assert "from this address" in limited.json()["detail"]


async def test_a_reset_with_an_unknown_token_is_refused(accounts):
    response = await accounts.post(
        "/api/v1/auth/password/reset", json={"token": "forged", "password": NEW_PASSWORD}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_token"


async def test_the_mailed_links_work_through_the_gateway_without_a_login(client) -> None:  # type: ignore[no-untyped-def]
    forgot = await client.post("/api/v1/auth/password/forgot", json={"login": "nobody_here"})
    assert forgot.status_code == 202
    for path, body in (
        ("/api/v1/auth/password/reset", {"token": "x" * 43, "password": "n3w-Passw0rd!"}),
        ("/api/v1/auth/email/verify", {"token": "x" * 43}),
    ):
        response = await client.post(path, json=body)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["code"] == "invalid_token"

"""Email verification: registration mails a link through SMTP; its token verifies once."""

from __future__ import annotations

from sqlalchemy import update

from services.accounts.models import AccountToken
from shared.db import session_scope, utcnow
from tests.factories import user_session

from .conftest import token_of


async def _me(client, session):
    response = await client.get("/api/v1/users/me", headers=session.headers)
    assert response.status_code == 200
    return response.json()


async def test_registration_mails_a_link_whose_token_verifies_once(
    client, accounts, mailbox, mail_worker
):
    user = await user_session(client, "vera")
    assert (await _me(client, user))["email_verified"] is False

    (mail,) = await mailbox.wait_for(1)
    assert mail["To"] == "vera@example.com"
    assert mail["Subject"] == "Verify your email address on llmnet"
    body = mail.get_body(("plain",)).get_content()
    assert "http://127.0.0.1:8000/#/verify-email?token=" in body

    token = token_of(mail)
    verified = await accounts.post("/api/v1/auth/email/verify", json={"token": token})
    assert verified.status_code == 200
    assert verified.json()["email"] == "vera@example.com"
    assert verified.json()["email_verified_at"]
    assert (await _me(client, user))["email_verified"] is True

    again = await accounts.post("/api/v1/auth/email/verify", json={"token": token})
    assert again.status_code == 400
    assert again.json()["code"] == "token_used"


async def test_an_expired_token_is_refused(client, accounts, platform, mailbox, mail_worker):
    user = await user_session(client, "late")
    token = token_of((await mailbox.wait_for(1))[0])
    async with session_scope(platform.sessionmaker) as session:
        await session.execute(update(AccountToken).values(expires_at=utcnow()))

    response = await accounts.post("/api/v1/auth/email/verify", json={"token": token})
    assert response.status_code == 400
    assert response.json()["code"] == "token_expired"
    assert (await _me(client, user))["email_verified"] is False


async def test_an_unknown_token_is_refused(accounts):
    response = await accounts.post("/api/v1/auth/email/verify", json={"token": "nope"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_token"


async def test_a_new_link_can_be_asked_for_and_one_use_spends_every_link(
    client, accounts, mailbox, mail_worker
):
    user = await user_session(client, "twice")
    await mailbox.wait_for(1)
    asked = await client.post("/api/v1/auth/email/verification", headers=user.headers)
    assert asked.status_code == 202
    assert "twice@example.com" in asked.json()["detail"]
    first, second = await mailbox.wait_for(2)
    assert token_of(first) != token_of(second)

    assert (
        await accounts.post("/api/v1/auth/email/verify", json={"token": token_of(second)})
    ).status_code == 200
    stale = await accounts.post("/api/v1/auth/email/verify", json={"token": token_of(first)})
    assert stale.status_code == 400
    assert stale.json()["code"] == "token_used"

    done = await client.post("/api/v1/auth/email/verification", headers=user.headers)
    assert done.status_code == 409
    assert done.json()["code"] == "email_already_verified"


async def test_asking_for_verification_needs_a_login(client):
    response = await client.post("/api/v1/auth/email/verification")
    assert response.status_code == 401


async def test_verification_mails_are_rate_limited_per_address(
    client, accounts_settings, monkeypatch
):
    monkeypatch.setattr(accounts_settings, "recovery_mails_per_hour", 2)
    user = await user_session(client)
    for _ in range(2):
        ok = await client.post("/api/v1/auth/email/verification", headers=user.headers)
        assert ok.status_code == 202
    limited = await client.post("/api/v1/auth/email/verification", headers=user.headers)
    assert limited.status_code == 429
    assert limited.json()["code"] == "recovery_rate_limited"
    assert int(limited.headers["Retry-After"]) > 0

"""How mails leave: a folder of .eml files without SMTP, retries while the relay is away, and
no retry once it refused a recipient for good."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from email import message_from_bytes, policy

from sqlalchemy import func, select

from services.accounts.mail import Mailer
from services.accounts.models import AccountToken
from services.accounts.recovery.consumer import GROUP
from services.accounts.recovery.service import MailContext, MailOutcome, recovery_service
from services.accounts.worker import accounts_worker_settings
from shared.db import session_scope, utcnow
from shared.events import Event, stream_for
from tests.factories import register, user_session

from .conftest import (
    Mailbox,
    eventually,
    free_port,
    running_mail_worker,
    smtp_server,
    token_of,
    worker_settings,
)


async def _tokens(platform) -> int:
    async with session_scope(platform.sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(AccountToken)) or 0)


async def _has_token(platform) -> bool:
    return await _tokens(platform) > 0


async def test_without_smtp_mails_are_written_to_the_data_dir_and_the_link_logged(
    client, accounts, platform, tmp_path, caplog
):
    settings = worker_settings(platform, data_dir=tmp_path)
    assert settings.smtp_host == ""
    caplog.set_level(logging.WARNING, logger="llmnet.accounts.mail")
    async with running_mail_worker(platform, settings):
        user = await user_session(client, "offline")
        await eventually(lambda: any((tmp_path / "mail").glob("*.eml")))

    (path,) = (tmp_path / "mail").glob("*.eml")
    mail = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert mail["To"] == "offline@example.com"
    token = token_of(mail)  # type: ignore[arg-type]
    assert any(token in record.getMessage() for record in caplog.records)
    assert (
        await accounts.post("/api/v1/auth/email/verify", json={"token": token})
    ).status_code == 200
    me = await client.get("/api/v1/users/me", headers=user.headers)
    assert me.json()["email_verified"] is True


async def test_a_mail_the_relay_could_not_take_is_sent_once_it_is_back(client, platform):
    port = free_port()  # nothing listens there yet
    settings = worker_settings(
        platform, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none"
    )
    mailbox = Mailbox()
    async with running_mail_worker(platform, settings, retry_after_ms=300):
        await register(client, "patient")
        await asyncio.sleep(1.5)
        assert await _tokens(platform) == 0  # no token without its mail
        with smtp_server(mailbox, port):
            (mail,) = await mailbox.wait_for(1)
    assert mail["To"] == "patient@example.com"
    assert await _tokens(platform) == 1


async def test_a_recipient_refused_for_good_is_not_retried(client, platform, smtp_port):
    settings = worker_settings(
        platform, smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_security="none"
    )
    mailbox = Mailbox(refuse={"bounce@example.com"})
    with smtp_server(mailbox, smtp_port):
        async with running_mail_worker(platform, settings, retry_after_ms=300):
            await register(client, "bounce")
            await eventually(lambda: _has_token(platform))
            await asyncio.sleep(1)
            pending = await platform.redis.xpending(stream_for("user.registered"), GROUP)
    assert pending["pending"] == 0
    assert mailbox.messages == []
    assert await _tokens(platform) == 1


async def test_the_accounts_worker_runs_the_mail_consumer(client, platform, smtp_port, mailbox):
    settings = worker_settings(
        platform, smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_security="none"
    )
    worker = accounts_worker_settings(settings)
    ctx: dict[str, object] = {}
    await worker["on_startup"](ctx)
    try:
        await register(client, "working")
        (mail,) = await mailbox.wait_for(1)
    finally:
        await worker["on_shutdown"](ctx)
    assert mail["To"] == "working@example.com"


def _event(user_id: str, *, occurred_at: datetime) -> Event:
    return Event(
        id="1-0",
        stream=stream_for("user.password_reset_requested"),
        type="user.password_reset_requested",
        event_id=str(uuid.uuid4()),
        source="accounts",
        occurred_at=occurred_at.isoformat(),
        payload={"user_id": user_id},
    )


async def test_a_redelivered_event_mails_once_and_a_stale_one_not_at_all(
    client, platform, smtp_port, mailbox
):
    settings = worker_settings(
        platform, smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_security="none"
    )
    mail = MailContext(settings, platform.sessionmaker, Mailer(settings))
    user = await register(client, "once")

    event = _event(user["id"], occurred_at=utcnow())
    assert await recovery_service.deliver(mail, event) is MailOutcome.SENT
    assert await recovery_service.deliver(mail, event) is MailOutcome.DUPLICATE
    old = _event(user["id"], occurred_at=utcnow() - timedelta(hours=2))
    assert await recovery_service.deliver(mail, old) is MailOutcome.STALE
    assert len(await mailbox.wait_for(1)) == 1
    assert await _tokens(platform) == 1

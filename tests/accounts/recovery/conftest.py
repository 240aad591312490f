"""A real SMTP server on loopback (aiosmtpd) and the accounts worker's mail consumer, run
in-process against the test platform."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.accounts.config import AccountsSettings
from services.accounts.mail import Mailer
from services.accounts.models import AccountToken
from services.accounts.recovery.consumer import mail_consumer
from services.accounts.recovery.service import MailContext
from shared.auth.api_keys import hash_secret
from shared.redis_client import create_redis
from tests.conftest import Platform

_TOKEN = re.compile(r"token=([A-Za-z0-9_-]+)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Mailbox:
    """What the SMTP server received, in order."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # recipients answered 550
    # Where the worker keeps the tokens it mails, when a test's mails carry links.
    sessionmaker: async_sessionmaker[AsyncSession] | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    async def wait_for(self, count: int) -> list[EmailMessage]:
        """The messages once `count` have arrived (the server's thread appends them) and
        their links work: the worker commits a token only after the relay took its mail, so
        a link followed at once could otherwise beat the commit."""
        await eventually(lambda: len(self.messages) >= count)
        await eventually(self._tokens_committed)
        return self.messages

    async def _tokens_committed(self) -> bool:
        hashes = {hash_secret(token) for token in map(_token_in, self.messages) if token}
        if self.sessionmaker is None or not hashes:
            return True
        async with self.sessionmaker() as session:
            found = await session.scalar(
                select(func.count())
                .select_from(AccountToken)
                .where(AccountToken.token_hash.in_(hashes))
            )
        return found == len(hashes)


async def eventually(condition: Callable[[], bool | Awaitable[bool]], seconds: float = 15) -> None:
    """Wait until `condition` holds, polling; fail after `seconds`."""
    for _ in range(int(seconds / 0.05)):
        result = condition()
        if await result if inspect.isawaitable(result) else result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still not true after {seconds} s")


def _token_in(message: EmailMessage) -> str | None:
    body = message.get_body(("plain",))
    found = _TOKEN.search(body.get_content()) if body is not None else None
    return found.group(1) if found else None


def token_of(message: EmailMessage) -> str:
    token = _token_in(message)
    assert token, message.as_string()
    return token


@contextlib.contextmanager
def smtp_server(mailbox: Mailbox, port: int) -> Iterator[None]:
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield
    finally:
        controller.stop()


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def mailbox(smtp_port: int, platform: Platform) -> Iterator[Mailbox]:
    box = Mailbox(sessionmaker=platform.sessionmaker)
    with smtp_server(box, smtp_port):
        yield box


def worker_settings(platform: Platform, **overrides: Any) -> AccountsSettings:
    values = {**platform.common, "jwt_private_key_file": platform.jwt_key_file, **overrides}
    return AccountsSettings(**values)


@contextlib.asynccontextmanager
async def running_mail_worker(
    platform: Platform, settings: AccountsSettings, *, retry_after_ms: int = 60_000
) -> AsyncIterator[None]:
    """The accounts worker's mail consumer, as `services.accounts.worker` starts it."""
    ctx: dict[str, Any] = {
        "events_redis": create_redis(settings.redis_url),
        "mail": MailContext(settings, platform.sessionmaker, Mailer(settings)),
    }
    consumer = mail_consumer(ctx, block_ms=200, retry_after_ms=retry_after_ms)
    task = asyncio.create_task(consumer.run())
    try:
        yield
    finally:
        await consumer.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await ctx["events_redis"].aclose()


@pytest.fixture
async def mail_worker(platform: Platform, smtp_port: int, mailbox: Mailbox) -> AsyncIterator[None]:
    settings = worker_settings(
        platform, smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_security="none"
    )
    async with running_mail_worker(platform, settings):
        yield


@pytest.fixture
async def accounts(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """The accounts service itself, for the endpoints a caller reaches without credentials
    (the gateway lists which paths it lets through anonymously)."""
    async with httpx.AsyncClient(base_url=platform.service_urls["accounts"], timeout=30) as c:
        yield c


@pytest.fixture
def accounts_settings(platform: Platform) -> AccountsSettings:
    """The running accounts app's settings (tests monkeypatch them)."""
    settings: AccountsSettings = platform.apps["accounts"].state.settings
    return settings

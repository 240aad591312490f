"""Email verification and password reset by mail.

A request never talks to the mail relay. It records an outbox event in its own transaction
(`user.registered`, `user.email_verification_requested`, `user.password_reset_requested`);
the accounts worker consumes them (recovery/consumer.py) and `deliver` mints the token and
sends the mail. So a slow or absent relay costs the request nothing, and a mail the relay
could not take stays pending and is retried until it goes out or its link would have expired.

Tokens are 256-bit secrets mailed once; only their SHA-256 is stored (as API keys are), each
works once and until it expires, and using one spends every other link of its kind mailed to
that user. The plain token exists only in the mail: it is minted when the mail is composed,
and its row commits only once the relay has taken the mail.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.accounts.audit import record_audit
from services.accounts.auth.revocation import revocation_service
from services.accounts.auth.service import auth_service
from services.accounts.config import AccountsSettings
from services.accounts.deps import AccountsContext
from services.accounts.mail import Mailer, MailRefused, compose
from services.accounts.models import AccountToken, AuditAction, TokenPurpose, User
from services.accounts.recovery import repository
from services.accounts.recovery.schemas import EmailVerified, MailAccepted
from services.accounts.users import repository as users
from shared.auth.api_keys import hash_secret
from shared.db import session_scope, utcnow
from shared.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from shared.events import Event, record_event

logger = logging.getLogger("llmnet.accounts.recovery")

VERIFICATION_REQUESTED = "user.email_verification_requested"
RESET_REQUESTED = "user.password_reset_requested"
# The events that ask for a mail, and the token each mail carries.
MAIL_EVENTS = {
    "user.registered": TokenPurpose.EMAIL_VERIFICATION,
    VERIFICATION_REQUESTED: TokenPurpose.EMAIL_VERIFICATION,
    RESET_REQUESTED: TokenPurpose.PASSWORD_RESET,
}
# The web app's pages for the links (it routes on the fragment, which browsers never send to a
# server: the token stays out of access logs and Referer headers).
LINK_PATHS = {
    TokenPurpose.EMAIL_VERIFICATION: "/#/verify-email?token=",
    TokenPurpose.PASSWORD_RESET: "/#/reset-password?token=",
}
FORGOT_ACCEPTED = (
    "If an account matches, a link to reset its password is on its way to its email address."
)
_HOUR = 3600


class InvalidAccountToken(BadRequest):
    code = "invalid_token"


class AccountTokenUsed(BadRequest):
    code = "token_used"


class AccountTokenExpired(BadRequest):
    code = "token_expired"


class EmailAlreadyVerified(Conflict):
    code = "email_already_verified"


class EmailNotVerified(Forbidden):
    code = "email_not_verified"


class MailOutcome(StrEnum):
    """What `deliver` did with one event (logged, and returned for tests)."""

    SENT = "sent"
    REFUSED = "refused"  # the relay refused it for good; not retried
    DUPLICATE = "duplicate"  # a redelivered event whose mail already went out
    STALE = "stale"  # older than the link's lifetime: the link would be dead on arrival
    SKIPPED = "skipped"  # no such user, banned, or already verified


@dataclass(frozen=True, slots=True)
class MailContext:
    """What the worker's mail consumer needs."""

    settings: AccountsSettings
    sessionmaker: async_sessionmaker[AsyncSession]
    mailer: Mailer


def token_lifetime(settings: AccountsSettings, purpose: TokenPurpose) -> timedelta:
    if purpose is TokenPurpose.PASSWORD_RESET:
        return timedelta(seconds=settings.password_reset_ttl_seconds)
    return timedelta(seconds=settings.email_verification_ttl_seconds)


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % _HOUR == 0:
        hours = seconds // _HOUR
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


async def _admit(redis: Redis, key: str, limit: int, what: str) -> None:
    """At most `limit` per fixed one-hour window under `key` (the gateway's scheme, hourly)."""
    window_key = f"llmnet:accounts:recovery:{key}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(window_key, 0, ex=_HOUR, nx=True)  # the window starts with its first request
        pipe.incr(window_key)
        pipe.ttl(window_key)
        _, count, ttl = await pipe.execute()
    if int(count) > limit:
        retry_after = int(ttl) if int(ttl) > 0 else _HOUR
        raise TooManyRequests(
            f"Too many {what} in the last hour; try again in {max(1, retry_after // 60)} min.",
            retry_after=retry_after,
            code="recovery_rate_limited",
        )


def _address_key(login: str) -> str:
    # Hashed: the Redis keyspace does not list people's addresses.
    return hashlib.sha256(login.strip().lower().encode()).hexdigest()


class RecoveryService:
    # -- requests (the API) ---------------------------------------------------------------
    async def request_verification(
        self, session: AsyncSession, ctx: AccountsContext, user_id: uuid.UUID
    ) -> MailAccepted:
        user = await users.get_by_id(session, user_id)
        if user is None:
            raise NotFound("No such user.", code="user_not_found")
        if user.email_verified:
            raise EmailAlreadyVerified(f"{user.email} is verified already.")
        await _admit(
            ctx.redis,
            f"mail:{_address_key(user.email)}",
            ctx.settings.recovery_mails_per_hour,
            "verification mails for this address",
        )
        record_event(session, VERIFICATION_REQUESTED, {"user_id": str(user.id)}, source="accounts")
        return MailAccepted(detail=f"A verification link is on its way to {user.email}.")

    async def confirm_verification(
        self, session: AsyncSession, ctx: AccountsContext, token: str, ip: str | None
    ) -> EmailVerified:
        row = await self._spend(session, token, TokenPurpose.EMAIL_VERIFICATION)
        user = await users.get_by_id(session, row.user_id)
        if user is None or user.email != row.email:
            raise InvalidAccountToken(
                "This link was sent to an address the account no longer has; ask for a new one."
            )
        now = utcnow()
        await repository.use_all(session, user.id, TokenPurpose.EMAIL_VERIFICATION, now)
        if user.email_verified_at is None:
            user.email_verified_at = now
            record_audit(
                session,
                AuditAction.EMAIL_VERIFIED,
                user.id,
                actor_id=user.id,
                ip=ip,
                details={"email": user.email},
            )
        await session.flush()
        return EmailVerified(email=user.email, email_verified_at=user.email_verified_at)

    async def forgot_password(
        self, session: AsyncSession, ctx: AccountsContext, login: str, ip: str | None
    ) -> MailAccepted:
        """The same answer whether or not an account matches: nobody learns who has one."""
        settings = ctx.settings
        if ip:
            await _admit(
                ctx.redis,
                f"ip:{ip}",
                settings.recovery_requests_per_ip_per_hour,
                "password reset requests from this address",
            )
        # Keyed on what was typed, account or not, so the limit reveals nothing either.
        await _admit(
            ctx.redis,
            f"mail:{_address_key(login)}",
            settings.recovery_mails_per_hour,
            "password reset requests for this account",
        )
        user = await users.get_by_login(session, login.strip())
        if user is not None and not user.is_banned:
            record_event(session, RESET_REQUESTED, {"user_id": str(user.id)}, source="accounts")
        return MailAccepted(detail=FORGOT_ACCEPTED)

    async def reset_password(
        self,
        session: AsyncSession,
        ctx: AccountsContext,
        token: str,
        password: str,
        ip: str | None,
    ) -> None:
        """Set a new password and end every login of the account (its refresh tokens now, its
        access tokens once this commits)."""
        if ip:
            await _admit(
                ctx.redis,
                f"ip:{ip}",
                ctx.settings.recovery_requests_per_ip_per_hour,
                "password reset requests from this address",
            )
        row = await self._spend(session, token, TokenPurpose.PASSWORD_RESET)
        user = await users.get_by_id(session, row.user_id)
        if user is None:
            raise InvalidAccountToken("This link is not valid; ask for a new one.")
        # A weak password is a 422 and the transaction rolls back: the link still works.
        auth_service.check_password(ctx.settings, password, user.username)
        user.password_hash = await ctx.hasher.hash(password)
        now = utcnow()
        await repository.use_all(session, user.id, TokenPurpose.PASSWORD_RESET, now)
        if user.email_verified_at is None and row.email == user.email:
            user.email_verified_at = now  # the link reached that mailbox: that proves it
        families = await repository.live_login_families(session, user.id)
        for family_id in families:
            await revocation_service.revoke_login(session, ctx, family_id)
        record_audit(
            session,
            AuditAction.PASSWORD_RESET,
            user.id,
            actor_id=user.id,
            ip=ip,
            details={"logins_revoked": len(families)},
        )

    async def ensure_verified(self, session: AsyncSession, user_id: uuid.UUID) -> None:
        user = await users.get_by_id(session, user_id)
        if user is not None and not user.email_verified:
            raise EmailNotVerified(
                "Verify your email address first: open the link we mailed you, or ask for a "
                "new one (POST /api/v1/auth/email/verification)."
            )

    async def _spend(
        self, session: AsyncSession, token: str, purpose: TokenPurpose
    ) -> AccountToken:
        row = await repository.get_for_update(session, hash_secret(token), purpose)
        if row is None:
            raise InvalidAccountToken("This link is not valid; ask for a new one.")
        if row.used_at is not None:
            raise AccountTokenUsed("This link was used already; ask for a new one.")
        now = utcnow()
        if row.expires_at <= now:
            raise AccountTokenExpired("This link has expired; ask for a new one.")
        row.used_at = now
        return row

    # -- mails (the worker) ---------------------------------------------------------------
    async def deliver(self, mail: MailContext, event: Event) -> MailOutcome:
        """Mint the token an event asks for and mail it. The token's row commits only after
        the relay took the mail; MailUnavailable (the relay is away) propagates, leaving the
        event pending for a retry."""
        purpose = MAIL_EVENTS[event.type]
        settings = mail.settings
        lifetime = token_lifetime(settings, purpose)
        event_id = uuid.UUID(event.event_id)
        user_id = uuid.UUID(str(event.payload["user_id"]))
        fields = {"event_id": event.event_id, "user_id": str(user_id), "purpose": purpose.value}
        now = utcnow()
        if now - datetime.fromisoformat(event.occurred_at) >= lifetime:
            logger.warning("not mailing a %s link asked for too long ago", purpose.value)
            return MailOutcome.STALE
        async with session_scope(mail.sessionmaker) as session:
            if await repository.event_answered(session, event_id):
                return MailOutcome.DUPLICATE
            user = await users.get_by_id(session, user_id)
            if user is None or user.is_banned:
                return MailOutcome.SKIPPED
            if purpose is TokenPurpose.EMAIL_VERIFICATION and user.email_verified:
                return MailOutcome.SKIPPED
            secret = secrets.token_urlsafe(32)
            repository.add(
                session,
                AccountToken(
                    user_id=user.id,
                    purpose=purpose.value,
                    token_hash=hash_secret(secret),
                    email=user.email,
                    event_id=event_id,
                    expires_at=now + lifetime,
                ),
            )
            # A concurrent delivery of the same event fails here, before a second mail.
            await session.flush()
            base = str(settings.public_base_url).rstrip("/")
            link = f"{base}{LINK_PATHS[purpose]}{secret}"
            message = compose(
                settings,
                to=user.email,
                subject=_SUBJECTS[purpose],
                text=_text(purpose, user, link, lifetime),
            )
            try:
                await mail.mailer.send(message, link=link)
            except MailRefused as exc:
                # Kept (with its event id) so the event is not mailed again; nobody has it.
                logger.error("mail refused for good: %s", exc, extra={"fields": fields})
                return MailOutcome.REFUSED
        logger.info("mailed a %s link", purpose.value, extra={"fields": fields})
        return MailOutcome.SENT


_SUBJECTS = {
    TokenPurpose.EMAIL_VERIFICATION: "Verify your email address on llmnet",
    TokenPurpose.PASSWORD_RESET: "Reset your llmnet password",
}


def _text(purpose: TokenPurpose, user: User, link: str, lifetime: timedelta) -> str:
    name = user.display_name or user.username
    if purpose is TokenPurpose.EMAIL_VERIFICATION:
        return (
            f"Hello {name},\n\n"
            f"Confirm that {user.email} is the address of your llmnet account "
            f"'{user.username}' by opening this link:\n\n{link}\n\n"
            f"The link works once, within {_duration(lifetime)}. If you did not sign up on "
            "llmnet, ignore this mail.\n"
        )
    return (
        f"Hello {name},\n\n"
        f"Someone, hopefully you, asked to reset the password of the llmnet account "
        f"'{user.username}'. Choose a new password here:\n\n{link}\n\n"
        f"The link works once, within {_duration(lifetime)}, and logs the account out "
        "everywhere. If you did not ask, ignore this mail: your password stays as it is.\n"
    )


recovery_service = RecoveryService()

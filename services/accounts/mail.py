"""Outgoing mail of the accounts service: through SMTP, or into a folder when none is set.

Exports: Mailer, MailUnavailable, MailRefused, compose.

`Mailer.send` speaks SMTP with the standard library's client in a worker thread (each call a
connection of its own, with SMTP_TIMEOUT_SECONDS on every step), so a slow relay never holds
the event loop. Without SMTP_HOST (the embedded default) each mail becomes a .eml file under
the mail folder and its link is logged, so `make run` works offline.

Errors are sorted for the caller, which retries: `MailUnavailable` (503) is worth retrying
(the relay is down, slow or answered 4xx); `MailRefused` is not (the relay refused the
recipient or the message for good, 5xx).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from services.accounts.config import AccountsSettings, SmtpSecurity
from shared.db import utcnow
from shared.errors import ServiceUnavailable

logger = logging.getLogger("llmnet.accounts.mail")

_RETRY_AFTER_SECONDS = 60


class MailUnavailable(ServiceUnavailable):
    code = "mail_unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retry_after=_RETRY_AFTER_SECONDS)


class MailRefused(Exception):
    """The relay refused the mail for good (a 5xx reply): sending it again cannot help."""


def compose(settings: AccountsSettings, *, to: str, subject: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    domain = settings.smtp_from.rsplit("@", 1)[-1].strip(" >") or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(text)
    return message


class Mailer:
    def __init__(self, settings: AccountsSettings) -> None:
        self._settings = settings

    @property
    def uses_smtp(self) -> bool:
        return bool(self._settings.smtp_host)

    async def send(self, message: EmailMessage, *, link: str) -> None:
        """Deliver `message`; `link` is what to log when it only goes to the folder."""
        if not self.uses_smtp:
            path = await asyncio.to_thread(self._write, message)
            logger.warning(
                "no SMTP_HOST: mail to %s written to %s; its link: %s",
                message["To"],
                path,
                link,
                extra={"fields": {"path": str(path), "subject": message["Subject"]}},
            )
            return
        await asyncio.to_thread(self._send_smtp, message)
        logger.info("mail to %s sent: %s", message["To"], message["Subject"])

    def _write(self, message: EmailMessage) -> Path:
        folder = self._settings.mail_folder
        folder.mkdir(parents=True, exist_ok=True)
        # Written whole under a temporary name, then renamed: a reader never sees half a mail.
        name = f"{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}.eml"
        partial = folder / f".{name}.partial"
        partial.write_bytes(message.as_bytes())
        path = folder / name
        partial.replace(path)
        return path

    def _send_smtp(self, message: EmailMessage) -> None:
        settings = self._settings
        timeout = settings.smtp_timeout_seconds
        context = ssl.create_default_context()
        try:
            client: smtplib.SMTP
            if settings.smtp_security is SmtpSecurity.TLS:
                client = smtplib.SMTP_SSL(
                    settings.smtp_host, settings.smtp_port, timeout=timeout, context=context
                )
            else:
                client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
            with client:
                if settings.smtp_security is SmtpSecurity.STARTTLS:
                    client.starttls(context=context)
                if settings.smtp_username:
                    client.login(settings.smtp_username, settings.smtp_password.get_secret_value())
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(code >= 500 for code in codes):
                raise MailRefused(f"the relay refused {message['To']}: {exc.recipients}") from exc
            raise MailUnavailable(f"The mail relay deferred the recipient: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            # Authentication failures are 5xx too, yet a fixed password makes them pass: only
            # a refused sender or message is final.
            final = exc.smtp_code >= 500 and isinstance(
                exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError
            )
            if final:
                raise MailRefused(f"the relay refused the mail: {exc}") from exc
            raise MailUnavailable(f"The mail relay answered {exc.smtp_code}: {exc}") from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, TLS
            raise MailUnavailable(f"The mail relay is unreachable: {exc}") from exc

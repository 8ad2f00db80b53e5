"""Outgoing mail: templates, an outbox written in the caller's transaction, and its delivery.

A request never talks to SMTP. It adds a row to the outbox in its own unit of work, so the mail
exists exactly when the change that caused it was committed; a sender delivers the outbox
afterwards, with retries and back-off, so an SMTP outage delays mail but loses none.
"""

import contextlib
import html
import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from functools import lru_cache
from importlib.resources import files
from string import Template
from urllib.parse import unquote, urlsplit

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from userbase.config import Settings, get_settings
from userbase.models import OutboxMail, table_of, utcnow

logger = logging.getLogger("userbase.mail")

# How long a sender owns a mail it is sending; another sender may retry it after that.
LEASE = timedelta(minutes=2)
SMTP_TIMEOUT_SECONDS = 10
BACKOFF_FIRST = timedelta(seconds=5)
BACKOFF_MAX = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@lru_cache
def _template(name: str) -> tuple[Template, Template, Template]:
    """The subject, text and HTML templates of a pair, read once per process."""
    folder = files("userbase") / "mail_templates"
    subject, _, text = (folder / f"{name}.txt").read_text().partition("\n")
    markup = (folder / f"{name}.html").read_text()
    return Template(subject), Template(text), Template(markup)


def render(template: str, **values: str) -> RenderedMail:
    """Fill a template pair from userbase/mail_templates/ (first line of the .txt: subject)."""
    subject, text, markup = _template(template)
    escaped = {key: html.escape(value) for key, value in values.items()}
    return RenderedMail(
        subject=subject.substitute(values).strip(),
        text=text.substitute(values).strip() + "\n",
        html=markup.substitute(escaped),
    )


def enqueue(session: Session, recipient: str, template: str, **values: str) -> None:
    """Add a mail to the outbox; it is sent only if the caller's transaction commits."""
    mail = render(template, **values)
    # A Core INSERT in the caller's transaction: the request never reads the mail back.
    session.connection().execute(
        _INSERT_MAIL,
        {
            "recipient": recipient,
            "subject": mail.subject,
            "text_body": mail.text,
            "html_body": mail.html,
            "next_attempt_at": utcnow(),
            "attempts": 0,
        },
    )


_outbox = table_of(OutboxMail)
_INSERT_MAIL = insert(_outbox)


def backoff(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s, ... up to an hour between attempts."""
    return min(BACKOFF_FIRST * (1 << max(attempts - 1, 0)), BACKOFF_MAX)


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0


# Mails leased per batch by the background sender.
BATCH = 50


def deliver_until_done(session_factory: sessionmaker[Session]) -> DeliveryReport:
    """deliver_due, batch after batch, while batches come back full and all were sent.

    One batch per poll capped the sender at 25 mails a second, so a burst of sign-ups left a
    backlog for minutes. A failure ends the round: when SMTP is down, one batch is enough to
    learn it, and the failed mails are retried after their back-off anyway.
    """
    total = DeliveryReport()
    while True:
        report = deliver_due(session_factory, limit=BATCH)
        total.sent += report.sent
        total.failed += report.failed
        if report.failed or report.sent < BATCH:
            return total


def deliver_due(session_factory: sessionmaker[Session], *, limit: int = BATCH) -> DeliveryReport:
    """Send the mails that are due; never holds a lock while talking to SMTP.

    A batch is leased in one short transaction: its rows are locked with SKIP LOCKED (a
    concurrent sender takes other mails, or none) and given a lease, so no other sender picks
    them up until the lease ends. Each mail is then sent and its outcome recorded in a short
    transaction of its own, so a crash re-sends at most the mail in flight (after the lease).
    """
    settings = get_settings()
    report = DeliveryReport()
    outbound = _Outbound(settings)
    try:
        for mail in _lease_due(session_factory, settings, limit, utcnow()):
            try:
                outbound.send(mail)
            except (OSError, smtplib.SMTPException) as exc:
                report.failed += 1
                logger.warning("mail %s not sent (attempt %s): %s", mail.id, mail.attempts + 1, exc)
                _finish(session_factory, mail, sent_at=None, error=str(exc))
            else:
                report.sent += 1
                _finish(session_factory, mail, sent_at=utcnow(), error=None)
    finally:
        outbound.close()
    return report


def _lease_due(
    session_factory: sessionmaker[Session], settings: Settings, limit: int, now: datetime
) -> list[OutboxMail]:
    with session_factory.begin() as session:
        mails = list(
            session.scalars(
                select(OutboxMail)
                .where(
                    OutboxMail.sent_at.is_(None),
                    OutboxMail.next_attempt_at <= now,
                    OutboxMail.attempts < settings.mail_max_attempts,
                )
                .order_by(OutboxMail.id)
                .limit(limit)
                # SQLite has no row locks: its write transaction (BEGIN IMMEDIATE) serialises.
                .with_for_update(skip_locked=True)
            )
        )
        if mails:
            session.execute(
                update(OutboxMail)
                .where(OutboxMail.id.in_([mail.id for mail in mails]))
                .values(next_attempt_at=now + LEASE)
            )
        session.expunge_all()
        return mails


def _finish(
    session_factory: sessionmaker[Session],
    mail: OutboxMail,
    *,
    sent_at: datetime | None,
    error: str | None,
) -> None:
    attempts = mail.attempts + 1
    values: dict[str, object] = {"attempts": attempts, "last_error": error[:500] if error else None}
    if sent_at is not None:
        values["sent_at"] = sent_at
    else:
        values["next_attempt_at"] = utcnow() + backoff(attempts)
    with session_factory.begin() as session:
        # Core: the ORM's bulk-update path cost ~0.25 ms a mail more than the statement.
        session.connection().execute(
            update(_outbox).where(_outbox.c.id == mail.id).values(**values)
        )


def _message(mail: OutboxMail, settings: Settings) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Message-ID"] = make_msgid(domain="userbase")
    message.set_content(mail.text_body)
    message.add_alternative(mail.html_body, subtype="html")
    return message


class _Outbound:
    """Where a round's mails go: the log in development mode, else one SMTP connection, opened
    for the first mail and reused for the next ones, so a burst of sign-ups costs one TLS
    handshake and login, not one per mail. A connection that failed is dropped: the next mail
    opens a new one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: smtplib.SMTP | None = None

    def send(self, mail: OutboxMail) -> None:
        if not self.settings.smtp_url:
            # Development mode (announced at start-up): the mail, link included, goes to the log.
            logger.info("mail to %s: %s\n%s", mail.recipient, mail.subject, mail.text_body)
            return
        if self.client is None:
            self.client = _connect(self.settings.smtp_url)
        try:
            self.client.send_message(_message(mail, self.settings))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            _hang_up(client)


def _hang_up(client: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError, smtplib.SMTPException):
        client.quit()
    client.close()


def _connect(smtp_url: str) -> smtplib.SMTP:
    """A connection ready to send: TLS (SMTPS, or STARTTLS when offered) and the login."""
    url = urlsplit(smtp_url)
    host = url.hostname or "localhost"
    context = ssl.create_default_context()
    if url.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            host, url.port or 465, timeout=SMTP_TIMEOUT_SECONDS, context=context
        )
    elif url.scheme == "smtp":
        client = smtplib.SMTP(host, url.port or 587, timeout=SMTP_TIMEOUT_SECONDS)
    else:
        raise smtplib.SMTPException(f"unsupported scheme {url.scheme!r} in USERBASE_SMTP_URL")
    try:
        if url.scheme == "smtp":
            client.ehlo()
            if client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
            elif url.username:
                # Never send credentials in clear text.
                raise smtplib.SMTPException("the SMTP server offers no STARTTLS for the login")
        if url.username:
            client.login(unquote(url.username), unquote(url.password or ""))
    except BaseException:
        _hang_up(client)
        raise
    return client

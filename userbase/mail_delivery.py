"""Delivering the outbox: leases, retries with back-off, one SMTP connection per batch.

Delivery is at least once, each mail with the one Message-ID it got when queued (so a copy SMTP
forced can be recognised), and a mail that gives up does so visibly (mail.given_up_count,
`userbase resend-mail`). docs/mail-and-audit.md states the guarantee and how it holds.
"""

import contextlib
import json
import logging
import secrets
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from userbase.config import Settings, get_settings
from userbase.models import OutboxMail, table_of, utcnow
from userbase.sealing import Unsealable, unseal

logger = logging.getLogger("userbase.mail")

# How long a sender holds the mails it leased. It renews the lease every third of it while it
# works, so only a sender that stopped (killed, frozen) loses its mails to another one, at most
# this long after it stopped.
LEASE = timedelta(seconds=60)
SMTP_TIMEOUT_SECONDS = 10
# RFC 5321 section 4.5.4.1 asks for retries at least 30 min apart for a whole queue run; one
# mail every 10 min at most keeps a short outage short, and 150 attempts (the default of
# USERBASE_MAIL_MAX_ATTEMPTS) then span about 24 hours.
BACKOFF_FIRST = timedelta(seconds=5)
BACKOFF_MAX = timedelta(minutes=10)
# Mails leased at once by a sender.
BATCH = 50

_outbox = table_of(OutboxMail)


def backoff(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s, ... up to 10 min between attempts."""
    return min(BACKOFF_FIRST * (1 << min(max(attempts - 1, 0), 20)), BACKOFF_MAX)


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    # Leased but handed back unsent: the sender was stopping, or a failure ended its batch.
    released: int = 0


def deliver_until_done(
    session_factory: sessionmaker[Session], stop: threading.Event | None = None
) -> DeliveryReport:
    """deliver_due, batch after batch, while batches come back full and all were sent.

    One batch per poll capped the sender at 25 mails a second, so a burst of sign-ups left a
    backlog for minutes. A failure ends the round: when SMTP is down, one mail is enough to
    learn it, and the failed mail is retried after its back-off, the others in the next round.
    `stop` (set on shutdown) ends the round after the mail in flight.
    """
    total = DeliveryReport()
    while True:
        report = deliver_due(session_factory, limit=BATCH, stop=stop)
        total.sent += report.sent
        total.failed += report.failed
        total.released += report.released
        leased = report.sent + report.failed + report.released
        if report.failed or leased < BATCH or (stop is not None and stop.is_set()):
            return total


def deliver_due(
    session_factory: sessionmaker[Session],
    *,
    limit: int = BATCH,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Lease up to `limit` due mails and send them; never holds a lock while talking to SMTP.

    The lease is taken in one short transaction: the rows are locked with SKIP LOCKED (a
    concurrent sender takes other mails, or none), given this sender's owner token, and their
    `next_attempt_at` is moved to the lease's end, on the database's clock (clock.py). It is
    renewed while the sender works, and each outcome is recorded only if this sender still holds
    the mail (compare-and-set on the owner token), in a short transaction of its own. A mail
    starts only with half a lease left; a failure, or `stop`, hands the rest back at once.
    """
    settings = get_settings()
    report = DeliveryReport()
    lease = _Lease.take(session_factory, limit)
    if not lease.mails:
        return report
    outbound = _Outbound(settings)
    with lease:
        try:
            for mail in lease.mails:
                if (stop is not None and stop.is_set()) or not lease.has_time_for_a_mail():
                    break
                try:
                    content = _open(mail)
                except Unsealable as exc:
                    report.failed += 1
                    lease.give_up(mail, f"{exc}; `userbase resend-mail` once the key is back")
                    continue
                try:
                    outbound.send(mail, content)
                except (OSError, smtplib.SMTPException) as exc:
                    report.failed += 1
                    lease.record_failure(mail, str(exc), settings.mail_max_attempts)
                    break
                report.sent += 1
                lease.record_sent(mail)
        finally:
            outbound.close()
            report.released = lease.release()
    return report


def _open(mail: OutboxMail) -> dict[str, str]:
    if mail.content is None:
        raise Unsealable("no content")
    content: dict[str, str] = json.loads(unseal(mail.content))
    return content


class _Lease:
    """The mails one sender holds under one owner token; renewed in a thread while it sends."""

    def __init__(self, session_factory: sessionmaker[Session], started: float) -> None:
        self.session_factory = session_factory
        self.mails: list[OutboxMail] = []
        self.owner = secrets.token_hex(16)
        # On this process's monotonic clock, which no clock adjustment moves; the lease's end in
        # the database was computed after `started`, so this end is never the later one.
        self.held_until = started + LEASE.total_seconds()
        self._done = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="mail-lease", daemon=True)

    @classmethod
    def take(cls, session_factory: sessionmaker[Session], limit: int) -> "_Lease":
        started = time.monotonic()
        with session_factory.begin() as session:
            lease = cls(session_factory, started)
            mails = list(
                session.scalars(
                    select(OutboxMail)
                    .where(
                        OutboxMail.sent_at.is_(None),
                        OutboxMail.gave_up_at.is_(None),
                        OutboxMail.next_attempt_at <= utcnow(),
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
                    .values(lease_owner=lease.owner, next_attempt_at=utcnow() + LEASE)
                )
            session.expunge_all()
        lease.mails = mails
        return lease

    def __enter__(self) -> "_Lease":
        self._renewer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        self._renewer.join()

    def has_time_for_a_mail(self) -> bool:
        return time.monotonic() + LEASE.total_seconds() / 2 <= self.held_until

    def _renew(self) -> None:
        while not self._done.wait(LEASE.total_seconds() / 3):
            started = time.monotonic()
            try:
                self._update_held(next_attempt_at=utcnow() + LEASE)
            except Exception as exc:  # the database away: the batch stops when time runs out
                logger.warning("mail sender: could not renew its lease: %s", exc)
            else:
                self.held_until = started + LEASE.total_seconds()

    def release(self) -> int:
        """Hand back the mails still held, unsent, due again at once; how many there were."""
        return self._update_held(lease_owner=None, next_attempt_at=utcnow())

    def _update_held(self, **values: Any) -> int:
        with self.session_factory.begin() as session:
            updated: int = (
                session.connection()
                .execute(
                    update(_outbox)
                    .where(_outbox.c.lease_owner == self.owner, _outbox.c.sent_at.is_(None))
                    .values(**values)
                )
                .rowcount
            )
        return updated

    def record_sent(self, mail: OutboxMail) -> None:
        # The content goes with the lease: a sent mail keeps no link, hence no token.
        self._record(mail, sent_at=utcnow(), content=None, last_error=None)

    def record_failure(self, mail: OutboxMail, error: str, max_attempts: int) -> None:
        attempts = mail.attempts + 1
        logger.warning("mail %s not sent (attempt %s): %s", mail.id, attempts, error)
        if attempts >= max_attempts:
            self.give_up(mail, error)
        else:
            self._record(mail, last_error=error[:500], next_attempt_at=utcnow() + backoff(attempts))

    def give_up(self, mail: OutboxMail, error: str) -> None:
        logger.error(
            "mail %s to %s gave up after %s attempts (%s); `userbase resend-mail` queues it again",
            mail.id,
            mail.recipient,
            mail.attempts + 1,
            error,
        )
        self._record(mail, last_error=error[:500], gave_up_at=utcnow())

    def _record(self, mail: OutboxMail, **values: Any) -> None:
        """Record an attempt's outcome, only if this sender still holds the mail."""
        with self.session_factory.begin() as session:
            # Core: the ORM's bulk-update path cost ~0.25 ms a mail more than the statement.
            recorded = session.connection().execute(
                update(_outbox)
                .where(_outbox.c.id == mail.id, _outbox.c.lease_owner == self.owner)
                .values(attempts=_outbox.c.attempts + 1, lease_owner=None, **values)
            )
        if recorded.rowcount != 1:
            # The lease ran out (this sender froze past it) and another sender took the mail:
            # it may send it again, with the same Message-ID.
            logger.warning("mail %s: lease lost before its outcome was recorded", mail.id)


def _message(mail: OutboxMail, content: dict[str, str], settings: Settings) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Message-ID"] = mail.message_id
    message.set_content(content["text"])
    message.add_alternative(content["html"], subtype="html")
    return message


class _Outbound:
    """Where a round's mails go: the log in development mode, else one SMTP connection, opened
    for the first mail and reused for the next ones, so a burst of sign-ups costs one TLS
    handshake and login, not one per mail. A connection that failed is dropped: the next mail
    opens a new one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: smtplib.SMTP | None = None

    def send(self, mail: OutboxMail, content: dict[str, str]) -> None:
        if not self.settings.smtp_url:
            # Development mode (announced at start-up): the mail, link included, goes to the log.
            logger.info("mail to %s: %s\n%s", mail.recipient, mail.subject, content["text"])
            return
        if self.client is None:
            self.client = _connect(self.settings.smtp_url)
        try:
            self.client.send_message(_message(mail, content, self.settings))
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

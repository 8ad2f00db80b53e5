"""Outgoing mail: templates, and the outbox written in the caller's transaction.

A request never talks to SMTP. It adds a row to the outbox in its own unit of work, so the mail
exists exactly when the change that caused it was committed; a sender (mail_delivery.py)
delivers the outbox afterwards. Here too: what operators ask of the outbox (the mails that gave
up, sending them again, purging sent ones).
"""

import html
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.utils import make_msgid
from functools import cache, lru_cache
from importlib.resources import files
from string import Template
from urllib.parse import urlsplit

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.orm import Session

from userbase.config import Settings, get_settings
from userbase.metrics import REGISTRY
from userbase.models import OutboxMail, table_of, utcnow
from userbase.sealing import seal


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
    """Add a mail to the outbox; it is sent only if the caller's transaction commits.

    Its bodies are stored sealed (their links carry tokens that would open the account to
    anyone reading the database) and wiped once it is sent; its subject stays readable.
    """
    mail = render(template, **values)
    now = utcnow()
    # A Core INSERT in the caller's transaction: the request never reads the mail back.
    session.connection().execute(
        _INSERT_MAIL,
        {
            "recipient": recipient,
            "subject": mail.subject,
            "content": seal(json.dumps({"text": mail.text, "html": mail.html}).encode()),
            "message_id": make_msgid(domain=_message_id_domain(get_settings())),
            "created_at": now,
            "next_attempt_at": now,
            "attempts": 0,
        },
    )


_outbox = table_of(OutboxMail)
_INSERT_MAIL = insert(_outbox)


def _message_id_domain(settings: Settings) -> str:
    # The right-hand side of a Message-ID names whoever made it unique (RFC 5322 section 3.6.4).
    return urlsplit(settings.public_url).hostname or "userbase"


def given_up_count(session: Session | Connection) -> int:
    """Mails that gave up and wait for `userbase resend-mail`: a warning for operators."""
    return (
        session.scalar(
            select(func.count())
            .select_from(_outbox)
            .where(_outbox.c.sent_at.is_(None), _outbox.c.gave_up_at.is_not(None))
        )
        or 0
    )


class _GivenUpGauge(Collector):
    """userbase_mail_given_up, counted in the outbox when scraped: one COUNT on an index range.

    Read from the database, not counted by the process that gave up, so it is right whichever
    worker, instance or `userbase send-mail` run gave up, and after restarts.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        try:
            with self._engine.connect() as connection:
                given_up = given_up_count(connection)
        except Exception:  # the database away: /readyz says so; the scrape goes on without it
            return
        yield GaugeMetricFamily(
            "userbase_mail_given_up",
            "Mails that gave up after USERBASE_MAIL_MAX_ATTEMPTS; `userbase resend-mail` "
            "queues them again.",
            value=given_up,
        )


# Cached like metrics.register_pool: create_app runs once per app, and tests build several.
@cache
def expose_given_up(read_engine: Engine) -> None:
    """Add userbase_mail_given_up to /metrics. A read engine (database.read_engine): on SQLite
    a scrape must not take the write lock."""
    REGISTRY.register(_GivenUpGauge(read_engine))


def resend_given_up(session: Session) -> int:
    """Queue the mails that gave up again, with a fresh count of attempts; how many."""
    queued: int = (
        session.connection()
        .execute(
            update(_outbox)
            .where(_outbox.c.sent_at.is_(None), _outbox.c.gave_up_at.is_not(None))
            .values(gave_up_at=None, attempts=0, next_attempt_at=utcnow())
        )
        .rowcount
    )
    return queued


def purge_sent(session: Session, *, older_than: timedelta, batch_size: int = 1000) -> int:
    """Delete up to batch_size mails sent longer ago than `older_than`; callers commit per batch."""
    cutoff = utcnow() - older_than
    ids = session.scalars(
        select(_outbox.c.id).where(_outbox.c.sent_at < cutoff).limit(batch_size)
    ).all()
    if ids:
        session.execute(delete(_outbox).where(_outbox.c.id.in_(ids)))
    return len(ids)

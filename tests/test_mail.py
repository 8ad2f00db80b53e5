"""Delivering the outbox when things go wrong: what is at rest, slow and dropping SMTP servers,
outages longer than the attempts, concurrent senders, and a server stopped mid-batch.

Each test drives a real SMTP server (tests/smtp.py) that misbehaves on purpose.
"""

import json
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from alembic import command
from pydantic import SecretStr
from sqlalchemy import Engine, func, inspect, select, text, update
from typer.testing import CliRunner

from tests.accounts import sign_up
from tests.conftest import LiveServer, stop_process
from tests.databases import create_database
from tests.smtp import Mailbox, SMTPServer, free_port
from tests.test_clock import userbase_under_skew
from userbase import mail, mail_delivery
from userbase.cli import app
from userbase.config import Settings, get_settings
from userbase.database import SessionLocal, build_engine, engine
from userbase.models import Base, OutboxMail, utcnow
from userbase.schema_revision import SCHEMA_HEAD, alembic_config, current_revision
from userbase.sealing import unseal

runner = CliRunner()


@contextmanager
def smtp_server(monkeypatch: pytest.MonkeyPatch, mailbox: Mailbox | None = None) -> Iterator[Any]:
    server = SMTPServer(mailbox=mailbox).start()
    monkeypatch.setattr(get_settings(), "smtp_url", server.url)
    try:
        yield server.mailbox
    finally:
        server.stop()


def every_value_in_the_database() -> str:
    """Every column of every row of every table, as one text to search."""
    with engine.connect() as connection:
        return "\n".join(
            repr(tuple(row))
            for table in Base.metadata.sorted_tables
            for row in connection.execute(select(table))
        )


def tokens_in(mailbox: Mailbox) -> list[str]:
    found = []
    for message in mailbox.messages:
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        found += re.findall(r"#token=([A-Za-z0-9_-]+)", body.get_content())
    return found


def make_due_now() -> None:
    """As if every back-off had passed."""
    with engine.begin() as connection:
        connection.execute(update(OutboxMail).values(next_attempt_at=utcnow()))


def unsent_and_leased() -> int:
    with SessionLocal() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(OutboxMail)
                .where(OutboxMail.sent_at.is_(None), OutboxMail.lease_owner.is_not(None))
            )
            or 0
        )


# 16.2: no raw token at rest.


def test_no_reset_or_verification_token_is_at_rest_before_or_after_delivery(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_up(client, 1)  # a verification link
    client.post("/auth/forgot-password", json={"email": "user1@example.com"})  # a reset link
    before = every_value_in_the_database()

    with smtp_server(monkeypatch) as mailbox:
        assert mail_delivery.deliver_due(SessionLocal).sent == 2
    after = every_value_in_the_database()

    tokens = tokens_in(mailbox)
    assert len(tokens) == 2
    for token in tokens:
        assert token not in before
        assert token not in after
    with SessionLocal() as session:
        assert session.scalars(select(OutboxMail.content)).all() == [None, None]


def test_a_mail_sealed_under_another_key_gives_up_visibly(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "secret_key", SecretStr("k" * 32))
    sign_up(client, 1)
    monkeypatch.setattr(get_settings(), "secret_key", SecretStr("another key, not the same one"))

    with smtp_server(monkeypatch) as mailbox:
        assert mail_delivery.deliver_due(SessionLocal).failed == 1
    assert mailbox.messages == []
    with SessionLocal() as session:
        assert mail.given_up_count(session) == 1
        [error] = session.scalars(select(OutboxMail.last_error)).all()
    assert "USERBASE_SECRET_KEY" in (error or "")


def test_purge_mail_deletes_only_mails_sent_before_the_retention(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_up(client, 1)
    with smtp_server(monkeypatch):
        mail_delivery.deliver_due(SessionLocal)
    sign_up(client, 2)  # unsent
    with engine.begin() as connection:
        connection.execute(
            update(OutboxMail)
            .where(OutboxMail.sent_at.is_not(None))
            .values(sent_at=utcnow() - timedelta(days=8))
        )

    kept_a_week = runner.invoke(app, ["purge-mail", "--days", "9"])
    assert "purged 0 mails" in kept_a_week.output
    purged = runner.invoke(app, ["purge-mail", "--days", "7"])

    assert purged.exit_code == 0, purged.output
    assert "purged 1 mails" in purged.output
    with SessionLocal() as session:
        assert session.scalars(select(OutboxMail.recipient)).all() == ["user2@example.com"]


# 21.1: never lost silently.


def test_back_off_is_capped_so_a_day_of_outage_does_not_exhaust_the_attempts() -> None:
    attempts = get_settings().mail_max_attempts
    waited = sum((mail_delivery.backoff(n) for n in range(1, attempts)), timedelta())
    assert waited >= timedelta(hours=20)
    assert max(mail_delivery.backoff(n) for n in range(1, 1000)) == timedelta(minutes=10)


def test_a_mail_that_gave_up_is_reported_and_resend_mail_queues_it_again(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "mail_max_attempts", 2)
    port = free_port()
    monkeypatch.setattr(get_settings(), "smtp_url", f"smtp://127.0.0.1:{port}")  # nobody there
    sign_up(client, 1)
    for _ in range(2):
        assert mail_delivery.deliver_due(SessionLocal).failed == 1
        make_due_now()

    assert (
        mail_delivery.deliver_due(SessionLocal) == mail_delivery.DeliveryReport()
    )  # never tried again...
    with SessionLocal() as session:
        assert mail.given_up_count(session) == 1  # ...but never silently
    assert client.get("/readyz").json()["mail"] == {"given_up": 1}
    assert "userbase_mail_given_up 1.0" in client.get("/metrics").text
    checked = runner.invoke(app, ["check"], env={"COLUMNS": "200"})
    [line] = [x for x in checked.output.splitlines() if "mail delivery" in x]
    assert "warn" in line
    assert "1 mail(s) gave up" in line
    sending = runner.invoke(app, ["send-mail"], env={"COLUMNS": "200"})
    assert "1 gave up (`userbase resend-mail` queues them again)" in sending.output

    server = SMTPServer(port).start()
    try:
        resent = runner.invoke(app, ["resend-mail"])
        assert resent.exit_code == 0, resent.output
        assert "queued 1 mails" in resent.output
        assert mail_delivery.deliver_due(SessionLocal).sent == 1
        assert [m["To"] for m in server.mailbox.messages] == ["user1@example.com"]
    finally:
        server.stop()
    assert client.get("/readyz").json()["mail"] == {"given_up": 0}


def test_a_failure_ends_the_batch_and_hands_the_rest_back_due_at_once(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "smtp_url", f"smtp://127.0.0.1:{free_port()}")
    for n in range(5):
        sign_up(client, n)

    report = mail_delivery.deliver_due(SessionLocal)

    assert (report.sent, report.failed, report.released) == (0, 1, 4)
    assert unsent_and_leased() == 0
    with SessionLocal() as session:
        due = session.scalars(
            select(OutboxMail.id).where(
                OutboxMail.attempts == 0, OutboxMail.next_attempt_at <= utcnow()
            )
        ).all()
    assert len(due) == 4


# 21.2: no duplicate from an expired lease.


def two_senders(monkeypatch: pytest.MonkeyPatch, data_delay: float) -> list[str]:
    """One sender delivers the outbox to a slow server while another keeps looking for due
    mail; the Message-IDs the server received."""
    first_done = threading.Event()

    def first_sender() -> None:
        try:
            mail_delivery.deliver_until_done(SessionLocal)
        finally:
            first_done.set()

    with smtp_server(monkeypatch, Mailbox(data_delay=data_delay)) as mailbox:
        first = threading.Thread(target=first_sender)
        first.start()
        assert mailbox.received.wait(10)  # the first sender holds the batch
        while not first_done.wait(0.05):
            mail_delivery.deliver_due(SessionLocal)
        first.join()
    with SessionLocal() as session:
        unsent = select(func.count()).select_from(OutboxMail).where(OutboxMail.sent_at.is_(None))
        assert session.scalar(unsent) == 0
    return mailbox.message_ids()


def test_two_senders_and_a_server_slower_than_the_lease_deliver_each_mail_once(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lease is renewed while its holder works: a mail that takes longer than a lease to be
    # accepted stays with the sender that is sending it.
    monkeypatch.setattr(mail_delivery, "LEASE", timedelta(seconds=1))
    for n in range(3):
        sign_up(client, n)

    ids = two_senders(monkeypatch, data_delay=1.5)

    assert len(ids) == len(set(ids)) == 3


@pytest.mark.engines("postgresql", "mariadb")  # SQLite's clock is the host's, by definition
def test_a_sender_on_a_host_an_hour_behind_sends_each_mail_once_and_at_once(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `userbase send-mail` under libfaketime, its host's clock an hour behind the database's,
    # while this process (on time) keeps looking for due mail.
    for n in range(3):
        sign_up(client, n)
    done: list[subprocess.CompletedProcess[str]] = []
    with smtp_server(monkeypatch, Mailbox(data_delay=0.5)) as mailbox:
        monkeypatch.setenv("USERBASE_SMTP_URL", str(get_settings().smtp_url))
        skewed = threading.Thread(
            target=lambda: done.append(userbase_under_skew("-1h", "send-mail"))
        )
        skewed.start()
        while not mailbox.received.wait(0.05):  # the skewed sender takes the batch first
            assert skewed.is_alive(), "the sender an hour behind found no mail due"
        while skewed.is_alive():
            mail_delivery.deliver_due(SessionLocal)
            skewed.join(0.05)

    [result] = done
    assert result.returncode == 0, result.stderr
    assert "sent 3, failed 0" in result.stdout + result.stderr
    ids = mailbox.message_ids()
    assert len(ids) == len(set(ids)) == 3


def test_an_outcome_is_recorded_only_by_the_sender_that_holds_the_lease(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_up(client, 1)
    monkeypatch.setattr(mail_delivery, "LEASE", timedelta(0))  # leases that have run out at once
    frozen = mail_delivery._Lease.take(SessionLocal, 1)
    current = mail_delivery._Lease.take(SessionLocal, 1)  # took the mail over
    [mail_row] = frozen.mails

    frozen.record_failure(mail_row, "too late", max_attempts=10)

    with SessionLocal() as session:
        stored = session.scalars(select(OutboxMail)).one()
    assert (stored.lease_owner, stored.attempts, stored.last_error) == (current.owner, 0, None)
    current.record_sent(current.mails[0])
    with SessionLocal() as session:
        stored = session.scalars(select(OutboxMail)).one()
    assert stored.sent_at is not None
    assert stored.attempts == 1


# 21.3: copies SMTP forces are recognisable; SIGTERM hands the batch back.


def test_a_mail_resent_after_a_drop_after_data_keeps_its_message_id(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_up(client, 1)
    with smtp_server(monkeypatch, Mailbox(drop_after_data=1)) as mailbox:
        assert (
            mail_delivery.deliver_due(SessionLocal).failed == 1
        )  # no answer: not known to be taken
        make_due_now()
        assert mail_delivery.deliver_due(SessionLocal).sent == 1

    first, second = mailbox.message_ids()
    assert first == second
    assert re.fullmatch(r"<[^<>@\s]+@localhost>", first)


@pytest.mark.live
def test_sigterm_mid_batch_hands_the_rest_of_the_batch_back_at_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SessionLocal.begin() as session:
        for n in range(5):
            mail.enqueue(
                session,
                f"user{n}@example.com",
                "verify_email",
                username=f"user{n}",
                email=f"user{n}@example.com",
                link=f"http://localhost/verify-email#token=t{n}",
                hours="48",
            )
    slow = SMTPServer(mailbox=Mailbox(data_delay=1.0)).start()
    server = LiveServer(
        database_url,
        USERBASE_SMTP_URL=slow.url,
        USERBASE_MAIL_BACKGROUND="true",
        USERBASE_MAIL_POLL_SECONDS="0.2",
    )
    try:
        assert slow.mailbox.received.wait(20)  # the first mail of the batch is in DATA
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=10)  # the mail in flight ends, the rest goes back

        assert unsent_and_leased() == 0
        monkeypatch.setattr(get_settings(), "smtp_url", slow.url)
        report = mail_delivery.deliver_due(SessionLocal)  # another sender, right away
    finally:
        stop_process(server.process)
        slow.stop()
    assert report.sent == 4
    ids = slow.mailbox.message_ids()
    assert len(ids) == len(set(ids)) == 5


# The migration that brought all this (0006).


@contextmanager
def fresh_engine_at(engine_name: str, revision: str) -> Iterator[Engine]:
    fresh = create_database(engine_name)
    fresh_engine = build_engine(Settings(DATABASE_URL=fresh.url))  # type: ignore[call-arg]
    try:
        command.upgrade(alembic_config(fresh_engine), revision)
        yield fresh_engine
    finally:
        fresh_engine.dispose()
        fresh.drop()


def test_the_outbox_migration_seals_unsent_mails_and_runs_again_after_an_interruption(
    db_engine_name: str,
) -> None:
    with fresh_engine_at(db_engine_name, "0005") as fresh:
        old_row = {
            "recipient": "a@example.com",
            "subject": "Reset your password",
            "text_body": "open http://x/reset-password#token=SECRET-TOKEN",
            "html_body": "<a href='http://x/reset-password#token=SECRET-TOKEN'>reset</a>",
            "created_at": "2026-12-01 10:00:00",
            "next_attempt_at": "2026-12-01 10:00:00",
            "attempts": 3,
        }
        with fresh.begin() as connection:
            insert_old = text(
                "INSERT INTO outbox (recipient, subject, text_body, html_body, created_at,"
                " next_attempt_at, attempts, sent_at) VALUES (:recipient, :subject, :text_body,"
                " :html_body, :created_at, :next_attempt_at, :attempts, :sent_at)"
            )
            connection.execute(insert_old, {**old_row, "sent_at": None})
            connection.execute(insert_old, {**old_row, "sent_at": "2026-12-01 10:00:01"})

        command.upgrade(alembic_config(fresh), "head")
        # As if killed before the revision was recorded, with its last steps undone (MariaDB
        # commits each DDL statement as it goes): the next `userbase migrate` finishes it.
        with fresh.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0005'"))
            connection.execute(text("ALTER TABLE outbox ADD COLUMN html_body TEXT"))
        command.upgrade(alembic_config(fresh), "head")

        assert current_revision(fresh) == SCHEMA_HEAD
        with fresh.connect() as connection:
            rows = connection.execute(
                select(OutboxMail.content, OutboxMail.message_id).order_by(OutboxMail.id)
            ).all()
            everything = repr(connection.execute(select(OutboxMail.__table__)).all())
            columns = {c["name"] for c in inspect(connection).get_columns("outbox")}
        assert "SECRET-TOKEN" not in everything
        assert not {"text_body", "html_body"} & columns
        (unsent, unsent_id), (sent, sent_id) = rows
        assert unsent is not None
        assert "SECRET-TOKEN" in json.loads(unseal(unsent))["text"]
        assert sent is None
        assert unsent_id != sent_id

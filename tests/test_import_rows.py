"""Reading and validating import rows: the email-domain memo changes speed, never an answer."""

import sys

import pytest

from userbase.import_rows import ImportRow, Record, Rejected, memoized_email_domains, validate

EMAILS = [
    "ada@example.com",
    "Ada@EXAMPLE.COM",
    "bob@example.com",
    "bob@Example.Com",
    "x@sub.example.co.uk",
    "émile@exämple.com",
    "émile@xn--exmple-cua.com",
    "a@b",
    "a@localhost",
    "a@example.local",
    "a@test",
    "a@example.invalid",
    "a@-example.com",
    "a@exa_mple.com",
    "a@example..com",
    "a@" + "x" * 64 + ".com",
    "a@123.456",
    "first.last+tag@example.org",
    'quoted"@example.com',
    "a@[127.0.0.1]",
    "a@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",  # fullwidth letters
]


def outcome(email: str) -> str:
    result = validate(Record(1, {"username": "someone", "email": email}))
    return result.reason if isinstance(result, Rejected) else f"ok {result.email}"


def test_the_domain_memo_gives_the_same_answer_for_every_address() -> None:
    without = [outcome(email) for email in EMAILS]
    with memoized_email_domains():
        first = [outcome(email) for email in EMAILS]
        again = [outcome(email) for email in EMAILS]  # now answered from the memo
    assert first == again == without
    assert any(o.startswith("ok") for o in without)
    assert any(not o.startswith("ok") for o in without)


def test_the_memo_is_removed_after_the_import() -> None:
    module = sys.modules["email_validator.validate_email"]
    original = module.validate_email_domain_name  # type: ignore[attr-defined]
    with memoized_email_domains():
        assert module.validate_email_domain_name is not original  # type: ignore[attr-defined]
    assert module.validate_email_domain_name is original  # type: ignore[attr-defined]


@pytest.mark.parametrize(("display_name", "expected"), [("", None), (None, None), ("Zoë", "Zoë")])
def test_an_empty_display_name_is_none(display_name: str | None, expected: str | None) -> None:
    row = validate(
        Record(1, {"username": "zoe", "email": "z@example.com", "display_name": display_name})
    )
    assert isinstance(row, ImportRow)
    assert row.display_name == expected

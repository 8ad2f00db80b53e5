"""The console's user search form, read into the admin search of `GET /users/`
(users.search_users: the same query, so the same indexes and the same time on 1,000,000
users, docs/performance.md). No HTTP here: the router passes the query's fields."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from userbase.users import AdminFilters

# The API's own limits on `q` and `email_prefix` (routers/users.py).
USERNAME_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,32}")
EMAIL_MAX = 320
CHOICES = {"": None, "yes": True, "no": False}
FIELDS = ("q", "active", "admin", "created_from", "created_before")


@dataclass(frozen=True, slots=True)
class Search:
    """What the form asked (to show it again), what it means, and its errors by field."""

    values: dict[str, str]
    username_prefix: str | None = None
    filters: AdminFilters = field(default_factory=AdminFilters)
    errors: dict[str, str] = field(default_factory=dict)

    def query(self) -> list[tuple[str, str]]:
        """The fields that were filled in, for the "next" link."""
        return [(name, value) for name, value in self.values.items() if value]


def _day(value: str) -> datetime | None:
    """The start (00:00 UTC) of a yyyy-mm-dd day, as `<input type=date>` sends it."""
    return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)


def read(params: Mapping[str, str]) -> Search:
    """The search box holds an address (with an @: the addresses that start with it, so a
    whole one finds its user) or the start of a username; the other fields are the API's
    is_active, is_admin, created_after and created_before."""
    values = {name: params.get(name, "").strip() for name in FIELDS}
    errors: dict[str, str] = {}
    text = values["q"]
    prefix, email_prefix = None, None
    if "@" in text:
        if len(text) > EMAIL_MAX or not text.isprintable():
            errors["q"] = f"An address is at most {EMAIL_MAX} printable characters."
        email_prefix = text
    elif text:
        if not USERNAME_PREFIX.fullmatch(text):
            errors["q"] = (
                "Type the start of a username (up to 32 letters, digits, dots, dashes or "
                "underscores) or an email address."
            )
        prefix = text
    flags = {}
    for name in ("active", "admin"):
        if values[name] not in CHOICES:
            errors[name] = "Choose any, yes or no."
            values[name] = ""
        flags[name] = CHOICES[values[name]]
    days: dict[str, datetime | None] = {}
    for name in ("created_from", "created_before"):
        try:
            days[name] = _day(values[name]) if values[name] else None
        except ValueError:
            errors[name] = "Enter a date like 2026-01-31."
            days[name] = None
    if errors:
        return Search(values, errors=errors)
    filters = AdminFilters(
        email_prefix=email_prefix,
        is_active=flags["active"],
        is_admin=flags["admin"],
        created_after=days["created_from"],
        created_before=days["created_before"],
    )
    return Search(values, prefix, filters)

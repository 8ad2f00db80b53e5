"""Who may do what to a user account."""

from collections.abc import Iterable

from userbase.users import ADMIN_ONLY_FIELDS, Account


class Forbidden(Exception):
    """Signed in, but not allowed to do this."""


def ensure_admin(actor: Account) -> None:
    if not actor.is_admin:
        raise Forbidden("Only an admin may do this.")


def ensure_can_manage(actor: Account, target_id: int) -> None:
    """Users manage their own account; admins manage every account."""
    if actor.id != target_id and not actor.is_admin:
        raise Forbidden("Only the user themself or an admin may change this account.")


def ensure_may_change(actor: Account, fields: Iterable[str]) -> None:
    """Only admins may change is_active and is_admin (even on their own account)."""
    restricted = sorted(ADMIN_ONLY_FIELDS.intersection(fields))
    if restricted and not actor.is_admin:
        raise Forbidden(f"Only an admin may change {', '.join(restricted)}.")

"""The buttons of the console's user page: each calls the workflow the API's route calls
(accounts.py, mfa/factors.py), so it is checked and audited the same way, and names the
notice the page shows afterwards. No HTTP here: the router reads the form and answers."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from userbase import accounts, sign_ins
from userbase.audit import RequestContext
from userbase.mfa import factors
from userbase.users import Account

# Ids are 63-bit at most (models.MAX_ID's column types): longer digits are no id.
_DIGITS_MAX = 18


def whole_number(value: str | None) -> int | None:
    """A form's or query's field read as an id or a count (ASCII digits only), else None."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > _DIGITS_MAX:
        return None
    return int(value)


@dataclass(frozen=True, slots=True)
class Press:
    """One press of a button: who (the admin and their browser sign-in), on whom, the form."""

    actor: Account
    sign_in_id: int
    user_id: int
    fields: Mapping[str, str]
    context: RequestContext

    def versions(self) -> list[int] | None:
        """The version of the account the page showed: a change made meanwhile is not
        undone by a click on what is no longer there (StaleVersion, as If-Match is)."""
        version = whole_number(self.fields.get("version"))
        return None if version is None else [version]


def _change(field: str, value: bool, done: str) -> Callable[[Session, Press], str]:
    def change(session: Session, asked: Press) -> str:
        accounts.change_account(
            session,
            asked.actor,
            asked.user_id,
            {field: value},
            versions=asked.versions(),
            context=asked.context,
        )
        return done

    return change


def _unlock(session: Session, asked: Press) -> str:
    accounts.unlock(session, asked.actor, asked.user_id, context=asked.context)
    return "unlocked"


def _end_sessions(session: Session, asked: Press) -> str:
    # On their own account an admin stays signed in here; anyone else's sign-ins all end.
    accounts.end_other_sign_ins(
        session,
        asked.actor,
        asked.user_id,
        keep_token_id=asked.sign_in_id,
        context=asked.context,
    )
    return "sessions-ended"


def _end_session(session: Session, asked: Press) -> str:
    token_id = whole_number(asked.fields.get("session_id"))
    if token_id is None:
        raise sign_ins.SignInNotFound(0)
    accounts.end_sign_in(session, asked.actor, asked.user_id, token_id, context=asked.context)
    return "session-ended"


def _reset_second_factors(session: Session, asked: Press) -> str:
    removed = factors.reset(session, asked.actor, asked.user_id, context=asked.context)
    return "mfa-reset" if removed else "mfa-none"


def _send_reset_link(session: Session, asked: Press) -> str:
    accounts.send_reset_link(session, asked.actor, asked.user_id, context=asked.context)
    return "reset-link-sent"


def _delete(session: Session, asked: Press) -> str:
    accounts.delete_account(
        session, asked.actor, asked.user_id, versions=asked.versions(), context=asked.context
    )
    return "deleted"


# By the last segment of the form's path, /console/users/{id}/{action}.
ACTIONS: dict[str, Callable[[Session, Press], str]] = {
    "deactivate": _change("is_active", False, "deactivated"),
    "activate": _change("is_active", True, "activated"),
    "make-admin": _change("is_admin", True, "made-admin"),
    "remove-admin": _change("is_admin", False, "removed-admin"),
    "unlock": _unlock,
    "end-sessions": _end_sessions,
    "end-session": _end_session,
    "reset-mfa": _reset_second_factors,
    "send-reset-link": _send_reset_link,
    "delete": _delete,
}

# What a page says after a form succeeded (POST, then a redirect to it with ?done=...).
NOTICES = {
    "deactivated": "The account is deactivated: its sign-ins ended.",
    "activated": "The account is active again.",
    "made-admin": "The user is an admin now.",
    "removed-admin": "The user is no longer an admin.",
    "unlocked": "Failed sign-ins are forgotten: the account may sign in again.",
    "sessions-ended": "Every sign-in of the account ended.",
    "session-ended": "The sign-in ended.",
    "mfa-reset": "Every second factor of the account was removed, and the user was mailed.",
    "mfa-none": "The account had no second factor to remove.",
    "reset-link-sent": "A link to set a new password is on its way to the user's address.",
    "deleted": "The user was deleted.",
    "client-created": "The client is registered.",
    "client-deleted": "The client was deleted: every sign-in through it ended.",
}

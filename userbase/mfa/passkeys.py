"""Passkeys (WebAuthn Level 3) through py_webauthn: the options a browser (or any WebAuthn
client) needs, the checks of what its authenticator answers, and a user's list of passkeys.

The relying party is USERBASE_PUBLIC_URL: its host is the RP id, its origin the only origin
accepted. User verification and discoverable credentials (resident keys) are required, so a
passkey alone is two factors (the device, and the PIN or biometric that unlocks it) and signs
in without a username. Every challenge is single use, lives CHALLENGE_TTL, serves one purpose
and is bound to what asked for it (the user, the browser's CSRF cookie, or the mfa_token of
a waiting sign-in), so a replayed or relayed answer finds no challenge. No HTTP here; the
workflows that weigh passkeys among the other factors are in factors.py.
"""

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from userbase import audit
from userbase.audit import EventKind, RequestContext
from userbase.config import get_settings
from userbase.mfa import passkey_challenges
from userbase.models import MAX_ID, Passkey
from userbase.refusals import Refusal
from userbase.sealing import derived_key
from userbase.users import Account

KIND = "passkey"
# RFC 8176: `swk`, a proof of possession of a software-secured key. Without attestation
# (none is asked for: it would tie accounts to vendors' certificates) nothing proves the key
# lives in hardware, which `hwk` claims. Verified by the authenticator (UV), it is two
# factors: `mfa`.
AMR = ("swk", "mfa")
NAME_MAX = 100

# What a challenge is for: one purpose's answer serves no other.
REGISTER = "register"
SIGN_IN = "sign_in"
SECOND_FACTOR = "second_factor"

# A credential as the browser's PublicKeyCredential.toJSON() gives it: an object, or its text.
Credential = str | dict[str, Any]
_MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, AttributeError)


class PasskeyRejected(Refusal):
    """The authenticator's answer failed a check (audited by the caller with `reason`). One
    message for every reason: which check failed is for the audit trail only."""

    def __init__(self, reason: str, *, user_id: int | None = None) -> None:
        super().__init__("The passkey was not accepted. Try again.")
        self.reason = reason[:150]
        self.user_id = user_id


class PasskeyExists(Exception):
    def __init__(self) -> None:
        super().__init__("This passkey is registered already.")


class PasskeyNotFound(Exception):
    def __init__(self) -> None:
        super().__init__("No such passkey of yours.")


class InvalidPasskeyName(ValueError):
    def __init__(self) -> None:
        super().__init__(f"A passkey's name is 1 to {NAME_MAX} printable characters.")


@dataclass(frozen=True, slots=True)
class PasskeyView:
    """A passkey as its owner sees it in their list."""

    id: int
    name: str
    transports: list[str]
    created_at: datetime
    last_used_at: datetime | None


def relying_party() -> tuple[str, str]:
    """The RP id (USERBASE_PUBLIC_URL's host) and the one origin accepted (its origin)."""
    parts = urlsplit(get_settings().public_url)
    return parts.hostname or "localhost", f"{parts.scheme}://{parts.netloc}"


def user_handle(user_id: int) -> bytes:
    """WebAuthn's user.id for the account: opaque, stable, no personal data (WebAuthn 14.6.1)."""
    key = derived_key(b"userbase webauthn user handle")
    return hmac.new(key, str(user_id).encode(), hashlib.sha256).digest()


def clean_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise InvalidPasskeyName
    return name


def _key(credential_id: bytes) -> str:
    return hashlib.sha256(credential_id).hexdigest()


def _view(passkey: Passkey) -> PasskeyView:
    transports = passkey.transports.split(",") if passkey.transports else []
    return PasskeyView(
        passkey.id, passkey.name, transports, passkey.created_at, passkey.last_used_at
    )


def _of(session: Session, user_id: int) -> Sequence[Passkey]:
    return session.scalars(
        select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.id)
    ).all()


def list_passkeys(session: Session, user_id: int) -> list[PasskeyView]:
    return [_view(passkey) for passkey in _of(session, user_id)]


def count(session: Session, user_id: int) -> int:
    return session.scalar(select(func.count()).where(Passkey.user_id == user_id)) or 0


def registration_options(
    session: Session, user: Account, *, binding: str | None, now: datetime
) -> str:
    """The options of navigator.credentials.create() for a new passkey of `user` (JSON)."""
    rp_id, _origin = relying_party()
    existing = [PublicKeyCredentialDescriptor(id=p.credential_id) for p in _of(session, user.id)]
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=get_settings().mfa_issuer,
        user_name=user.username,
        user_id=user_handle(user.id),
        user_display_name=user.display_name or user.username,
        challenge=passkey_challenges.issue(session, REGISTER, user.id, binding, now),
        timeout=passkey_challenges.TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=existing,
    )
    return options_to_json(options)


def authentication_options(
    session: Session, *, purpose: str, user_id: int | None, binding: str, now: datetime
) -> str:
    """The options of navigator.credentials.get() (JSON): for a sign-in without a username
    (SIGN_IN: any discoverable credential), or a second factor (one of `user_id`'s)."""
    rp_id, _origin = relying_party()
    allowed = (
        [PublicKeyCredentialDescriptor(id=p.credential_id) for p in _of(session, user_id)]
        if user_id is not None
        else []
    )
    options = generate_authentication_options(
        rp_id=rp_id,
        challenge=passkey_challenges.issue(session, purpose, user_id, binding, now),
        timeout=passkey_challenges.TIMEOUT_MS,
        allow_credentials=allowed,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options)


def register(
    session: Session,
    user: Account,
    credential: Credential,
    *,
    name: str,
    binding: str | None,
    context: RequestContext,
    now: datetime,
) -> PasskeyView:
    """Check the authenticator's answer to registration_options and keep the new passkey.

    Raises PasskeyRejected (audited, mfa_failed) or PasskeyExists."""
    name = clean_name(name)
    try:
        parsed: RegistrationCredential = parse_registration_credential_json(credential)
        challenge = parse_client_data_json(parsed.response.client_data_json).challenge
    except _MALFORMED:
        rejected = PasskeyRejected("enrolment: malformed", user_id=user.id)
        raise _audited(session, rejected, context) from None
    if not passkey_challenges.take(session, challenge, REGISTER, user.id, binding, now):
        raise _audited(
            session, PasskeyRejected("enrolment: unknown challenge", user_id=user.id), context
        )
    rp_id, origin = relying_party()
    try:
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            require_user_verification=True,
        )
    except _MALFORMED as error:
        raise _audited(
            session, PasskeyRejected(f"enrolment: {error}", user_id=user.id), context
        ) from None
    key = _key(verified.credential_id)
    if session.scalar(select(Passkey.id).where(Passkey.credential_key == key)) is not None:
        raise PasskeyExists
    transports = ",".join(t.value for t in parsed.response.transports or [])[:200]
    passkey = Passkey(
        user_id=user.id,
        credential_key=key,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        user_handle=user_handle(user.id),
        sign_count=verified.sign_count,
        name=name,
        transports=transports,
        created_at=now,
    )
    session.add(passkey)
    session.flush()
    audit.record(session, EventKind.MFA_ENABLED, context, user_id=user.id, detail=KIND)
    return _view(passkey)


def _audited(
    session: Session, rejected: PasskeyRejected, context: RequestContext
) -> PasskeyRejected:
    audit.record(
        session,
        EventKind.MFA_FAILED,
        context,
        user_id=rejected.user_id,
        detail=f"{KIND}: {rejected.reason}",
    )
    return rejected


def verify_assertion(
    session: Session,
    credential: Credential,
    *,
    purpose: str,
    user_id: int | None,
    binding: str,
    now: datetime,
) -> Passkey:
    """The passkey whose authenticator signed the challenge of authentication_options (its
    counter and last use updated), or PasskeyRejected, which the caller audits: the answer
    fits no live challenge of this purpose and binding, is another user's than `user_id`, or
    fails py_webauthn's checks (origin, RP id, user verification, signature, counter)."""
    try:
        parsed: AuthenticationCredential = parse_authentication_credential_json(credential)
        challenge = parse_client_data_json(parsed.response.client_data_json).challenge
    except _MALFORMED:
        raise PasskeyRejected("malformed", user_id=user_id) from None
    if not passkey_challenges.take(session, challenge, purpose, user_id, binding, now):
        raise PasskeyRejected("unknown or used challenge", user_id=user_id)
    passkey = session.scalars(
        select(Passkey).where(Passkey.credential_key == _key(parsed.raw_id)).with_for_update()
    ).first()
    if passkey is None:
        raise PasskeyRejected("unknown credential", user_id=user_id)
    if user_id is not None and passkey.user_id != user_id:
        raise PasskeyRejected(f"credential of user {passkey.user_id}", user_id=user_id)
    handle = parsed.response.user_handle
    if (handle is None and user_id is None) or (
        handle is not None and not hmac.compare_digest(handle, passkey.user_handle)
    ):
        raise PasskeyRejected("user handle does not match", user_id=passkey.user_id)
    rp_id, origin = relying_party()
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=True,
        )
    except _MALFORMED as error:
        raise PasskeyRejected(str(error), user_id=passkey.user_id) from None
    passkey.sign_count = verified.new_sign_count
    passkey.last_used_at = now
    return passkey


def rename(session: Session, user_id: int, passkey_id: int, name: str) -> PasskeyView:
    if not 1 <= passkey_id <= MAX_ID:
        raise PasskeyNotFound
    passkey = session.scalars(
        select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id)
    ).first()
    if passkey is None:
        raise PasskeyNotFound
    passkey.name = clean_name(name)
    return _view(passkey)


def delete_one(session: Session, user_id: int, passkey_id: int) -> bool:
    if not 1 <= passkey_id <= MAX_ID:
        return False
    removed = session.execute(
        delete(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id)
    )
    return bool(removed.rowcount)  # type: ignore[attr-defined]


def delete_all(session: Session, user_id: int) -> bool:
    passkey_challenges.delete_all(session, user_id)
    removed = session.execute(delete(Passkey).where(Passkey.user_id == user_id))
    return bool(removed.rowcount)  # type: ignore[attr-defined]

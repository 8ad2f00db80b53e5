"""What crosses the wire: request bodies and response shapes (the problem document: problem.py)."""

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from userbase.models import DISPLAY_NAME_MAX, EMAIL_MAX, USERNAME_MAX
from userbase.problem import PROBLEM_MEDIA_TYPE, Problem

Username = Annotated[
    str, StringConstraints(min_length=3, max_length=USERNAME_MAX, pattern=r"^[A-Za-z0-9_.-]+$")
]
# Characters a display name may not hold: every code point of Unicode's general categories Cc
# (controls: C0, DEL, C1 with the terminal escape introducer U+009B), Cf (format: soft hyphen,
# bidirectional marks, embeddings, overrides and isolates, zero-width spaces and joiners, word
# joiner, BOM, interlinear annotations, tags) and Zl, Zp (line and paragraph separators), as of
# Unicode 14 (tests/test_user_rules.py checks the list against the running Python's Unicode).
# They are invisible or move other text: a name holding them shows something else than it is,
# in a browser, a terminal or a log line. Lone surrogates never get here (pydantic refuses them).
HIDDEN_CHARACTERS = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C),
    (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x13438),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)  # fmt: skip


def _escaped(code_point: int) -> str:
    # \uXXXX and \UXXXXXXXX mean the same to Python's re (which schemathesis generates from)
    # and to the Rust regex crate.
    return f"\\u{code_point:04X}" if code_point <= 0xFFFF else f"\\U{code_point:08X}"


_HIDDEN_CLASS = "".join(
    _escaped(start) if start == end else f"{_escaped(start)}-{_escaped(end)}"
    for start, end in HIDDEN_CHARACTERS
)
_HIDDEN = re.compile(f"[{_HIDDEN_CLASS}]")


def _no_hidden_characters(value: str) -> str:
    found = _HIDDEN.search(value)
    if found is not None:
        # The code point, never the value: problem documents do not echo input.
        raise PydanticCustomError(
            "hidden_character",
            "control, format and invisible characters are not allowed (found U+{code_point})",
            {"code_point": f"{ord(found.group()):04X}"},
        )
    return value


# Checked by a validator rather than `pattern`, for a message that says what is wrong; the
# schema still states the rule as a pattern, for clients and schemathesis.
DisplayName = Annotated[
    str,
    StringConstraints(max_length=DISPLAY_NAME_MAX),
    AfterValidator(_no_hidden_characters),
    Field(json_schema_extra={"pattern": f"^[^{_HIDDEN_CLASS}]*$"}),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


# email-validator refuses addresses at special-use domains (RFC 6761: .test, .localhost, ...),
# which `format: email` alone allows; the schema says so, for clients and for schemathesis.
_SPECIAL_USE_DOMAIN = (
    "[.@](" + "|".join(_any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES) + ")$"
)
Email = Annotated[
    EmailStr,
    StringConstraints(max_length=EMAIL_MAX),
    Field(json_schema_extra={"not": {"pattern": _SPECIAL_USE_DOMAIN}}),
]


class UserCreate(BaseModel):
    """Body of POST /users/. Any other field (is_admin, id, ...) is refused, not ignored."""

    model_config = ConfigDict(extra="forbid")

    username: Username
    email: Email
    password: Password
    display_name: DisplayName | None = None


class BatchUserIn(BaseModel):
    """One user of POST /users/batch: like POST /users/, with a password or a password hash
    brought from another system (argon2, bcrypt, Django pbkdf2_sha256 or scrypt)."""

    model_config = ConfigDict(extra="forbid")

    username: Username
    email: Email
    password: Password | None = None
    password_hash: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    display_name: DisplayName | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> "BatchUserIn":
        if (self.password is None) == (self.password_hash is None):
            raise ValueError("give either password or password_hash")
        return self


class BatchItemOut(BaseModel):
    """The outcome of one user of a batch: its index in the request, a status, and the new
    user's id or the problem."""

    index: int
    status: int
    id: int | None = None
    error: dict[str, Any] | None = None


class UserPublic(BaseModel):
    """What anyone may see of a user."""

    id: int
    username: str
    display_name: str | None
    created_at: datetime


class UserPrivate(BaseModel):
    """What the user themself (and the service's admins) see."""

    id: int
    username: str
    email: str
    display_name: str | None
    is_active: bool
    created_at: datetime


class UserAccount(UserPrivate):
    """The account as its owner and admins see it: the private view plus flags."""

    is_admin: bool
    email_verified: bool


class UserAdminView(UserAccount):
    """One account as an admin reads it (GET /users/{id}): with what its address may hide."""

    email_mixed_script: bool = Field(
        description="The address mixes scripts (a Cyrillic letter among Latin ones, say)."
    )
    email_lookalike_of: int | None = Field(
        description="Another user whose address this one looks like (UTS #39 skeleton), if any."
    )


def shaped(shape: type[BaseModel], obj: object) -> dict[str, Any]:
    """`obj`'s fields named by `shape` (an ORM User, a users.Account...), ready to serialize:
    each shape of a user is stated once, here, and read off whatever holds the values."""
    return {name: getattr(obj, name) for name in shape.model_fields}


class UserUpdate(BaseModel):
    """Body of PATCH /users/{id}. Owners may send display_name and email; admins all four."""

    model_config = ConfigDict(extra="forbid")

    # Only display_name may be null (it clears the name). The others default to None when
    # absent but refuse an explicit null: pydantic does not validate defaults, only input.
    display_name: DisplayName | None = None
    email: Email = None  # type: ignore[assignment]
    # Strict: 0 and "false" are not booleans, whatever pydantic would otherwise accept.
    is_active: StrictBool = None  # type: ignore[assignment]
    is_admin: StrictBool = None  # type: ignore[assignment]
    # Needed when the account's owner changes its email address (not a change itself).
    current_password: str | None = Field(default=None, max_length=128)

    def changes(self) -> dict[str, Any]:
        """The fields actually sent, with their values."""
        return self.model_dump(include=self.model_fields_set - {"current_password"})


class PasswordChange(BaseModel):
    """Body of PUT /users/me/password."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=128)
    new_password: Password


# Tokens we mail are 43 URL-safe characters; anything longer is not one of ours.
ActionTokenText = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class ActionTokenIn(BaseModel):
    """Body of POST /auth/verify."""

    model_config = ConfigDict(extra="forbid")

    token: ActionTokenText


class ForgotPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: ActionTokenText
    new_password: Password


SignInKind = Literal["bearer_token", "browser", "oauth_client"]


class SignIn(BaseModel):
    """A sign-in (a live bearer token) as stored: never the token itself."""

    id: int
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime
    client_address: str | None
    user_agent: str | None


class SignInOut(SignIn):
    """A sign-in as its owner or an admin sees it: whether it is the one asking, too."""

    kind: SignInKind = Field(
        description="bearer_token: an opaque token of POST /auth/token; browser: a browser "
        "signed in on userbase's own pages (docs/oidc.md); oauth_client: an OAuth client's "
        "refresh and JWT access tokens (docs/tokens.md)."
    )
    client: str | None = Field(
        description="The client_id of the OAuth client signed in through (its refresh and JWT "
        "access tokens, docs/tokens.md); null for the other kinds."
    )
    current: bool


class LockoutOut(BaseModel):
    locked: bool
    retry_after: int | None = Field(description="Seconds until sign-in is allowed again.")


class SecurityEventOut(BaseModel):
    """One entry of the audit trail, as admins see it."""

    id: int
    kind: str
    user_id: int | None
    actor_id: int | None
    client_address: str | None
    user_agent: str | None
    request_id: str | None
    channel: str = Field(description='How the action came in: "api" or "cli".')
    detail: str | None
    created_at: datetime


class TokenOut(BaseModel):
    """A bearer token, as OAuth2's password flow answers it."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


# Second factors (userbase/mfa/, docs/mfa.md).
TotpCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
# Recovery codes are 16 characters, typed with or without dashes and spaces between groups.
RecoveryCodeText = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class CurrentPassword(BaseModel):
    """A change to the account's second factors, confirmed with the current password."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=128)


class TotpCodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: TotpCode = Field(description="The 6 digits the authenticator app shows now.")


class SecondFactorSignIn(BaseModel):
    """Body of POST /auth/token/mfa: the mfa_token of the first step and one code."""

    model_config = ConfigDict(extra="forbid")

    mfa_token: ActionTokenText
    code: TotpCode | None = None
    recovery_code: RecoveryCodeText | None = None
    passkey: dict[str, Any] | None = Field(
        default=None,
        description="A passkey's answer (PublicKeyCredential.toJSON()) to the options of "
        "POST /auth/token/mfa/passkey.",
    )

    @model_validator(mode="after")
    def _one_code(self) -> "SecondFactorSignIn":
        given = [self.code, self.recovery_code, self.passkey]
        if sum(value is not None for value in given) != 1:
            raise PydanticCustomError(
                "one_code", "send code, recovery_code or passkey (one of them)"
            )
        return self


class MfaTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mfa_token: ActionTokenText


PasskeyName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class PasskeyIn(BaseModel):
    """A new passkey: the authenticator's answer to the registration options, and a name."""

    model_config = ConfigDict(extra="forbid")

    name: PasskeyName = Field(description="To tell your passkeys apart, e.g. 'Laptop'.")
    credential: dict[str, Any] = Field(
        description="PublicKeyCredential.toJSON() of navigator.credentials.create()."
    )


class PasskeyRename(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PasskeyName


class PasskeyOut(BaseModel):
    id: int
    name: str
    transports: list[str] = Field(description="How the browser reaches it: internal, usb...")
    created_at: datetime
    last_used_at: datetime | None


class PasskeysOut(BaseModel):
    passkeys: list[PasskeyOut]


class TotpEnrolmentOut(BaseModel):
    secret: str = Field(description="Base32; shown once. Type it into the app, or use the URI.")
    otpauth_uri: str = Field(description="For a QR code: otpauth://totp/...")


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Ten single-use codes, shown once.")


class SecondFactorsOut(BaseModel):
    totp: bool = Field(description="An authenticator app is active.")
    passkeys: int = Field(description="How many passkeys the account has.")
    recovery_codes_left: int


class SecondFactorProblem(Problem):
    """A 401 of a sign-in; with `mfa_required` when the password was right and a second
    factor is due: send `mfa_token` and a code to POST /auth/token/mfa."""

    mfa_required: bool | None = None
    mfa_token: str | None = Field(default=None, description="Single use, for that alone.")
    expires_in: int | None = Field(default=None, description="Seconds the mfa_token lives.")
    attempts_left: int | None = Field(default=None, description="Codes the mfa_token takes.")


SECOND_FACTOR_PROBLEM: dict[str, Any] = {
    "model": SecondFactorProblem,
    "content": {
        PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/SecondFactorProblem"}}
    },
}

"""What crosses the wire: request bodies and response shapes (the problem document: problem.py)."""

from datetime import datetime
from typing import Annotated, Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)

from userbase.models import DISPLAY_NAME_MAX, EMAIL_MAX, USERNAME_MAX

Username = Annotated[
    str, StringConstraints(min_length=3, max_length=USERNAME_MAX, pattern=r"^[A-Za-z0-9_.-]+$")
]
# NUL and other control characters are refused: PostgreSQL cannot store NUL in text, and
# nobody's name contains a bell or an escape sequence meant for someone's terminal.
DisplayName = Annotated[
    str, StringConstraints(max_length=DISPLAY_NAME_MAX, pattern=r"^[^\x00-\x1f\x7f]*$")
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

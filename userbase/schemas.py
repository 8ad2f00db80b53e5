"""What crosses the wire: request bodies, response shapes and the problem document."""

from datetime import datetime
from typing import Annotated, Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

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


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error."""

    type: str = Field(default="about:blank", examples=["about:blank"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["No user with id 42."])
    instance: str | None = Field(default=None, examples=["/users/42"])
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For validation errors: one entry per bad field."
    )

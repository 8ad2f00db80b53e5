"""The scopes of OpenID Connect and the claims each one releases (Core 1.0 section 5.4)."""

from typing import Any

from userbase.users import Account

# What the consent page says each scope gives the application.
SCOPES: dict[str, str] = {
    "openid": "Know who you are on userbase (a user number that never changes)",
    "profile": "See your username and display name",
    "email": "See your email address and whether it is verified",
}
CLAIMS_BY_SCOPE: dict[str, tuple[str, ...]] = {
    "profile": ("preferred_username", "name"),
    "email": ("email", "email_verified"),
}
# Every claim an ID token or the UserInfo endpoint may carry (the discovery document's list).
CLAIMS_SUPPORTED = (
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "sid",
    "amr",
    "acr",
    "at_hash",
    *(claim for claims in CLAIMS_BY_SCOPE.values() for claim in claims),
)


def user_claims(user: Account, scope: str) -> dict[str, Any]:
    """`sub` and the claims the scope releases. `sub` is the user's id: it never changes,
    where a username or address may."""
    scopes = scope.split()
    claims: dict[str, Any] = {"sub": str(user.id)}
    if "profile" in scopes:
        claims["preferred_username"] = user.username
        claims["name"] = user.display_name or user.username
    if "email" in scopes:
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified
    return claims


def describe(scope: str) -> list[str]:
    """The consent page's lines for a scope, the application's own scopes named as they are."""
    return [SCOPES.get(token, f"Use userbase's '{token}' permission") for token in scope.split()]

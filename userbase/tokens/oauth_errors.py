"""The refusals of userbase/tokens/: the client registry's, and those of OAuth's endpoints
(RFC 6749 section 5.2, RFC 7009, RFC 7662).

The OAuth ones are answered as OAuth says, `{"error", "error_description"}`, not as
problem+json: that is what OAuth client libraries parse. Each is a Refusal, so what the
refusal recorded (a reused refresh token's revoked family, its audit event) is committed.
"""

from typing import Any

from userbase.refusals import Refusal


class OAuthError(Refusal):
    error = "invalid_request"
    status = 400

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def parameters(self) -> dict[str, Any]:
        """What the error answer carries beside `error` and `error_description`."""
        return {}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """Unknown client, wrong secret, or a client authentication it was not registered for."""

    error = "invalid_client"
    status = 401

    def __init__(self, description: str = "Client authentication failed.") -> None:
        super().__init__(description)


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"


class MfaRequired(OAuthError):
    """The user has a second factor: the client finishes the sign-in with the mfa grant and
    this `mfa_token` (as Auth0's `mfa_required`, which clients know; docs/mfa.md)."""

    error = "mfa_required"
    status = 403

    def __init__(self, mfa_token: str, expires_in: int) -> None:
        super().__init__(
            "A second factor is required: send mfa_token with otp (or recovery_code) "
            "and grant_type urn:userbase:params:oauth:grant-type:mfa."
        )
        self.mfa_token = mfa_token
        self.expires_in = expires_in

    def parameters(self) -> dict[str, Any]:
        return {"mfa_token": self.mfa_token, "expires_in": self.expires_in}


# The client registry's (problem+json, like the rest of the admin API).


class InvalidClientSettings(ValueError):
    """A registration that cannot be made as asked (a bad URI, grant or scope)."""


class PublicClientHasNoSecret(Exception):
    """rotate-secret on a public client: there is nothing to rotate (409)."""

    def __init__(self, client_id: str) -> None:
        super().__init__(f"Client {client_id!r} is public: it has no secret.")


class ClientNotFound(LookupError):
    def __init__(self, client_id: str) -> None:
        super().__init__(f"No client with client_id {client_id!r}.")

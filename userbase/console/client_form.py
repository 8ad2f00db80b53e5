"""The console's form that registers an OpenID Connect client: its fields, read into the
arguments of tokens.clients.create_client (the same as `POST /admin/clients`), and which
field a refused registration is about. No HTTP here."""

from collections.abc import Sequence
from dataclasses import dataclass

from userbase.tokens.oauth_errors import InvalidClientSettings

DEFAULT_GRANTS = ("authorization_code", "refresh_token")


@dataclass(frozen=True, slots=True)
class ClientForm:
    name: str = ""
    redirect_uris: str = ""
    post_logout_redirect_uris: str = ""
    public: bool = False
    first_party: bool = False
    grant_types: tuple[str, ...] = DEFAULT_GRANTS
    scope: str = ""

    def uris(self) -> list[str]:
        return self.redirect_uris.split()

    def logout_uris(self) -> list[str]:
        return self.post_logout_redirect_uris.split()


def read(pairs: Sequence[tuple[str, str]]) -> ClientForm:
    """The form's fields; URIs one a line (or separated by spaces), grants as checkboxes."""
    fields = dict(pairs)
    return ClientForm(
        name=fields.get("name", ""),
        redirect_uris=fields.get("redirect_uris", ""),
        post_logout_redirect_uris=fields.get("post_logout_redirect_uris", ""),
        public=fields.get("public") == "on",
        first_party=fields.get("first_party") == "on",
        grant_types=tuple(value for key, value in pairs if key == "grant_types"),
        scope=fields.get("scope", ""),
    )


def field_of(error: InvalidClientSettings, form: ClientForm) -> str:
    """The form field a refusal of create_client is about (its message names the thing)."""
    message = str(error)
    if message.startswith("a name"):
        return "name"
    if message.startswith("redirect URI"):
        # create_client checks the redirect URIs first, then the logout ones.
        if any(repr(uri) in message for uri in form.uris()):
            return "redirect_uris"
        return "post_logout_redirect_uris"
    if "scope" in message:
        return "scope"
    return "grant_types"

"""Authlib's authorization server, plugged into userbase's storage and rules.

Authlib validates the authorization request (client, exact redirect URI, response type,
scope, `prompt`, `nonce`), the PKCE challenge and verifier (rfc7636.CodeChallenge) and the
code exchange (rfc6749.AuthorizationCodeGrant), and builds the ID token (oidc.core.OpenIDCode,
signed by joserfc). userbase supplies the storage (codes, sign-ins, tokens of
userbase/tokens/), the client registry, the keys, and its policy: PKCE with S256 for every
client, `openid` required, codes single use for 60 seconds.

One server per request: it works in that request's unit of work (the Session of get_db).
"""

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidRequestError,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin, OpenIDCode, UserInfo
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from userbase import audit, auth
from userbase.audit import EventKind, RequestContext
from userbase.config import get_settings
from userbase.models import AuthorizationCode, BrowserSignIn, Token, utcnow
from userbase.oidc.browser import BrowserUser, acr_of
from userbase.oidc.scopes import SCOPES, user_claims
from userbase.security import TOKEN_PATTERN, new_token, token_digest
from userbase.tokens import access_tokens, clients, grants
from userbase.tokens.keys import RING
from userbase.users import Account

# RFC 6749 section 4.1.2 asks for at most 10 minutes; a browser redirect takes seconds.
CODE_SECONDS = 60
ID_TOKEN_ALGORITHM = "RS256"  # OpenID Connect Core 1.0 section 15.1: every OP supports it
NONCE_MAX = 255
_CODE_SHAPE = re.compile(TOKEN_PATTERN)  # new_token()'s: 256 random bits, base64url


class Payload(OAuth2Payload):
    """The parameters of a request (query or form), every value of each kept."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class Request(OAuth2Request):
    """An authorization or token request, as Authlib reads it. `uri` is the public URL of the
    endpoint (Authlib refuses plain http but to loopback: USERBASE_PUBLIC_URL must be https)."""

    def __init__(self, method: str, path: str, pairs: list[tuple[str, str]]) -> None:
        super().__init__(method, access_tokens.issuer() + path)
        self.payload = Payload(pairs)

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data


class Client(ClientMixin):
    """A registered client as Authlib asks about it."""

    def __init__(self, row: clients.ClientRow) -> None:
        self.row = row

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # OpenID Connect: redirect_uri is always sent, and matched exactly

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The scopes asked for that userbase knows (others are ignored, Core 1.0 section
        3.1.2.1); None (invalid_scope) without `openid`."""
        asked = list(dict.fromkeys((scope or "").split()))
        if "openid" not in asked:
            return None
        known = set(SCOPES) | set(self.row.scope.split())
        return " ".join(token for token in asked if token in known)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return clients.redirect_uri_allowed(self.row, redirect_uri)

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.check_grant_type("authorization_code")

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in clients.grants_of(self.row)


@dataclass(frozen=True, slots=True)
class Code(AuthorizationCodeMixin):
    """A stored code with what its ID token needs of the browser sign-in it came from."""

    row: AuthorizationCode
    auth_time: int
    amr: list[str]

    @property
    def code_challenge(self) -> str:
        return self.row.code_challenge

    @property
    def code_challenge_method(self) -> str:
        return self.row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str:
        return acr_of(" ".join(self.amr))

    def get_amr(self) -> list[str]:
        return self.amr


class RequireS256(CodeChallenge):
    """PKCE for every client, with S256 only (OAuth 2.1; RFC 9700 section 2.1.1). Authlib's
    CodeChallenge checks and compares; this only refuses what it would let through."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 (Authlib's class attribute)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256).")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class IDTokens(OpenIDCode):
    """The ID token: RS256 with the current key, our issuer and clock, `sid` and the claims
    the scope releases; `nonce`, `auth_time`, `amr` and `at_hash` are Authlib's."""

    def __init__(self, session: Session) -> None:
        super().__init__(require_nonce=False)
        self.session = session
        self._key: ECKey | RSAKey | None = None

    def _signing_key(self) -> ECKey | RSAKey:
        if self._key is None:  # one key for the header's kid and the signature
            self._key = RING.signing_key(ID_TOKEN_ALGORITHM)
        return self._key

    def resolve_client_private_key(self, client: Client) -> ECKey | RSAKey:
        return self._signing_key()

    def get_client_algorithm(self, client: Client) -> str:
        return ID_TOKEN_ALGORITHM

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": ID_TOKEN_ALGORITHM, "kid": str(self._signing_key().kid), "typ": "JWT"}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        now = int(utcnow().timestamp())
        ttl = get_settings().access_token_ttl_seconds
        return {
            "iss": access_tokens.issuer(),
            "aud": client.get_client_id(),
            "iat": now,
            "exp": now + ttl,
        }

    def get_authorization_code_claims(self, authorization_code: Code) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
        claims["sid"] = str(authorization_code.row.browser_sign_in_id)
        return claims

    def exists_nonce(self, nonce: str, request: Request) -> bool:
        """A nonce already in a code of this client (Authlib then refuses the replay)."""
        if len(nonce) > NONCE_MAX or not nonce.isprintable():
            raise InvalidRequestError(f"nonce must be 1-{NONCE_MAX} printable characters.")
        return (
            self.session.scalar(
                select(AuthorizationCode.id)
                .where(
                    AuthorizationCode.client_id == request.client.row.id,
                    AuthorizationCode.nonce == nonce,
                )
                .limit(1)
            )
            is not None
        )

    def generate_user_info(self, user: Account, scope: str) -> UserInfo:
        return UserInfo(user_claims(user, scope))


class CodeGrant(AuthorizationCodeGrant):
    """The authorization code grant on userbase's tables."""

    server: "Server"
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]  # noqa: RUF012

    def authenticate_token_endpoint_client(self) -> Client:
        """The client the token endpoint authenticated (tokens/clients.py: one way for every
        grant); Authlib only learns how."""
        client = self.server.token_client
        if client is None:
            raise RuntimeError("the token endpoint authenticates the client first")
        self.request.auth_method = "none" if client.row.is_public else "client_secret_basic"
        return client

    def generate_authorization_code(self) -> str:
        return new_token()[0]

    def save_authorization_code(self, code: str, request: Request) -> None:
        browser = self.server.browser
        if browser is None:
            raise RuntimeError("a code is issued to a signed-in browser only")
        now = utcnow()
        data = request.payload.data
        self.server.session.add(
            AuthorizationCode(
                code_hash=token_digest(code),
                client_id=request.client.row.id,
                browser_sign_in_id=browser.sign_in_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                nonce=data.get("nonce") or None,
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                created_at=now,
                expires_at=now + timedelta(seconds=CODE_SECONDS),
            )
        )
        self.server.session.flush()

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        """Spend the code: the first use wins (one UPDATE decides, as for refresh tokens);
        a second use ends the sign-in the first one made (RFC 6749 section 4.1.2)."""
        session = self.server.session
        if not _CODE_SHAPE.match(code):
            return None
        now = utcnow()
        digest = token_digest(code)
        won = session.execute(
            update(AuthorizationCode)
            .where(
                AuthorizationCode.code_hash == digest,
                AuthorizationCode.client_id == client.row.id,
                AuthorizationCode.used_at.is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        # A locking read: on MariaDB it sees what a concurrent first use committed.
        row = session.scalars(
            select(AuthorizationCode)
            .where(AuthorizationCode.code_hash == digest)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()
        if row is None or row.client_id != client.row.id:
            return None
        if won.rowcount != 1:  # type: ignore[attr-defined]
            self._reused(row, client)
            return None
        if row.expires_at <= now:
            return None
        browser = session.get(BrowserSignIn, row.browser_sign_in_id)
        if browser is None:  # signed out since: the code went with it (foreign key)
            return None
        return Code(row, int(browser.authenticated_at.timestamp()), browser.methods.split())

    def _reused(self, row: AuthorizationCode, client: Client) -> None:
        session = self.server.session
        user_id = session.scalar(select(Token.user_id).where(Token.id == row.browser_sign_in_id))
        if row.issued_sign_in_id is not None:
            auth.revoke_token(session, row.issued_sign_in_id)
        audit.record(
            session,
            EventKind.AUTHORIZATION_CODE_REUSED,
            self.server.context,
            user_id=user_id,
            detail=f"client={client.row.client_id}",
        )

    def delete_authorization_code(self, authorization_code: Code) -> None:
        """Nothing: the code was spent when it was read, and is kept to recognise a reuse."""

    def authenticate_user(self, authorization_code: Code) -> Account | None:
        sign_in_id = authorization_code.row.browser_sign_in_id
        return grants.live_sign_in_owner(self.server.session, sign_in_id, utcnow())

    def generate_token(
        self,
        user: Account | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        """A client sign-in through the browser sign-in, and its first tokens."""
        if user is None or scope is None:
            raise RuntimeError("Authlib hands a user and a scope")
        session, code = self.server.session, self.request.authorization_code.row
        client = self.request.client.row
        context = self.server.context
        made = auth.issue_token(
            session,
            user.id,
            client_address=context.client_address,
            user_agent=context.user_agent,
            client_id=client.id,
        )
        sign_in = session.get(Token, made.token_id)
        browser = session.get(Token, code.browser_sign_in_id)
        if sign_in is None or browser is None:
            raise LookupError("a sign-in of this unit of work vanished")
        sign_in.browser_sign_in_id = browser.id
        sign_in.expires_at = min(sign_in.expires_at, browser.expires_at)
        code.issued_sign_in_id = sign_in.id
        issued = grants.issue_tokens(session, client, grants.SignIn.of(sign_in), scope, utcnow())
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": issued.access_token,
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        }
        if issued.refresh_token is not None:
            token["refresh_token"] = issued.refresh_token
        return token


class Server(AuthorizationServer):
    """Authlib's AuthorizationServer for one request, in its unit of work."""

    def __init__(
        self,
        session: Session,
        context: RequestContext,
        *,
        browser: BrowserUser | None = None,
        token_client: clients.ClientRow | None = None,
    ) -> None:
        super().__init__(scopes_supported=None)
        self.session = session
        self.context = context
        self.browser = browser
        self.token_client = Client(token_client) if token_client is not None else None
        self.register_grant(CodeGrant, [RequireS256(required=True), IDTokens(session)])

    def query_client(self, client_id: str) -> Client | None:
        row = clients.find_client(self.session, client_id)
        return Client(row) if row is not None else None

    def save_token(self, token: dict[str, Any], request: Request) -> None:
        """Nothing: CodeGrant.generate_token stored the sign-in and its refresh token."""

    def create_oauth2_request(self, request: Request) -> Request:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib's signals: userbase's audit trail is written by the domain instead."""


def exchange_code(
    session: Session,
    client: clients.ClientRow,
    pairs: list[tuple[str, str]],
    context: RequestContext,
) -> tuple[int, dict[str, Any]]:
    """The token endpoint's authorization_code grant for a client it authenticated: the
    status and body of Authlib's answer (tokens, or an RFC 6749 error)."""
    server = Server(session, context, token_client=client)
    status, body, _headers = server.create_token_response(Request("POST", "/oauth/token", pairs))
    return int(status), dict(body)

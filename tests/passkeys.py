"""A passkey authenticator in software, for the API tests: an ES256 key, user verification, a
signature counter, and what a browser adds around it (clientDataJSON with an origin). It makes
real WebAuthn answers, which py_webauthn on the server checks as it checks a browser's; the
e2e tests use Chromium's own virtual authenticator instead (e2e/test_passkeys_in_chromium.py).
"""

import hashlib
import json
import os
import struct
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import bytes_to_base64url as b64

from tests.accounts import PASSWORD, bearer
from tests.oidc import ISSUER

ORIGIN = ISSUER  # USERBASE_PUBLIC_URL's default: its origin is the one accepted
RP_ID = "localhost"
# Authenticator data flags (WebAuthn 6.1): user present, user verified, attested data.
_UP, _UV, _AT = 0x01, 0x04, 0x40


class SoftAuthenticator:
    """One discoverable credential, as a platform authenticator keeps it."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.counter = 0
        self.user_handle: str | None = None

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        # RFC 9053: EC2 key (kty 2), ES256 (alg -7), P-256 (crv 1), x, y.
        return cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def _authenticator_data(self, rp_id: str, flags: int, *, attested: bool = False) -> bytes:
        data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags])
        data += struct.pack(">I", self.counter)
        if attested:
            data += bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id
            data += self._cose_key()
        return data

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
        ).encode()

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str = ORIGIN,
        rp_id: str | None = None,
        verified: bool = True,
    ) -> dict[str, Any]:
        """The answer to navigator.credentials.create(options), attestation "none"."""
        self.user_handle = options["user"]["id"]
        flags = _UP | _AT | (_UV if verified else 0)
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        authenticator_data = self._authenticator_data(
            rp_id or options["rp"]["id"], flags, attested=True
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": authenticator_data})
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data),
                "attestationObject": b64(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str = ORIGIN,
        rp_id: str | None = None,
        verified: bool = True,
        counter: int | None = None,
    ) -> dict[str, Any]:
        """The answer to navigator.credentials.get(options): the counter moves on by one
        (or to `counter`), and the key signs authenticatorData + SHA-256(clientDataJSON)."""
        self.counter = self.counter + 1 if counter is None else counter
        authenticator_data = self._authenticator_data(
            rp_id or options["rpId"], _UP | (_UV if verified else 0)
        )
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signed = authenticator_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data),
                "authenticatorData": b64(authenticator_data),
                "signature": b64(signature),
                "userHandle": self.user_handle,
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }


def registration_options(client: Any, token: str) -> dict[str, Any]:
    response = client.post(
        "/users/me/mfa/passkeys/registration",
        json={"current_password": PASSWORD},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    options: dict[str, Any] = response.json()
    return options


def register(
    client: Any, token: str, name: str = "Laptop"
) -> tuple[SoftAuthenticator, dict[str, Any]]:
    """A new passkey of the token's user: its authenticator and the API's view of it."""
    authenticator = SoftAuthenticator()
    credential = authenticator.create(registration_options(client, token))
    response = client.post(
        "/users/me/mfa/passkeys",
        json={"name": name, "credential": credential},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return authenticator, body


def second_factor_options(client: Any, mfa_token: str) -> dict[str, Any]:
    response = client.post("/auth/token/mfa/passkey", json={"mfa_token": mfa_token})
    assert response.status_code == 200, response.text
    options: dict[str, Any] = response.json()
    return options

"""What the signing algorithms cost: JWTs signed and verified per second, in one process.

The same joserfc calls userbase makes (access_tokens.mint and the check behind verify), with
claims shaped like an access token's, on the core the server is pinned to; keys made as
keys.py makes them (ES256 on P-256, RS256 with 2,048 bits). `python -m bench.signing` prints
them alone; `make bench` measures them before the token cases.
"""

import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from userbase.tokens.keys import RSA_BITS

ALGORITHMS = ("ES256", "RS256")


@dataclass(frozen=True)
class SigningCost:
    alg: str
    sign_per_s: float
    verify_per_s: float

    @property
    def sign_us(self) -> float:
        return 1e6 / self.sign_per_s

    @property
    def verify_us(self) -> float:
        return 1e6 / self.verify_per_s


def _key(alg: str) -> ECKey | RSAKey:
    parameters: Any = {"use": "sig", "alg": alg}
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=parameters, auto_kid=True)
    return RSAKey.generate_key(RSA_BITS, parameters=parameters, auto_kid=True)


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "http://localhost:8000",
        "sub": "12345",
        "aud": "http://localhost:8000",
        "client_id": secrets.token_urlsafe(18),
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(16),
        "scope": "read write",
        "sid": "67890",
    }


def _rate(call: Callable[[], object], seconds: float) -> float:
    """Calls per second of CPU time, over at least `seconds` of it (after 20 unmeasured)."""
    for _ in range(20):
        call()
    count, started = 0, time.thread_time()
    while (spent := time.thread_time() - started) < seconds:
        for _ in range(50):
            call()
        count += 50
    return count / spent


def measure_signing(cpu: int, seconds: float = 1.0) -> list[SigningCost]:
    """Sign and verify rates of each algorithm on core `cpu`, `seconds` of CPU each."""
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        costs = []
        for alg in ALGORITHMS:
            key = _key(alg)
            header = {"alg": alg, "kid": key.kid, "typ": "at+jwt"}
            claims = _claims()
            token = jwt.encode(header, claims, key, algorithms=[alg])

            def sign(
                key: ECKey | RSAKey = key,
                header: dict[str, str] = header,
                claims: dict[str, Any] = claims,
            ) -> object:
                return jwt.encode(header, claims, key, algorithms=[header["alg"]])

            def verify(key: ECKey | RSAKey = key, token: str = token, alg: str = alg) -> object:
                return jwt.decode(token, key, algorithms=[alg])

            costs.append(SigningCost(alg, _rate(sign, seconds), _rate(verify, seconds)))
        return costs
    finally:
        os.sched_setaffinity(0, affinity)


def main() -> int:
    for cost in measure_signing(cpu=0):
        print(
            f"{cost.alg}: sign {cost.sign_per_s:,.0f}/s ({cost.sign_us:.0f} µs), "
            f"verify {cost.verify_per_s:,.0f}/s ({cost.verify_us:.0f} µs) of CPU on core 0"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

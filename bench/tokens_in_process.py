"""CPU per request of the token paths, userbase's ASGI app called in this process (no HTTP).

`python -m bench.tokens_in_process` (after `make bench` installed the tools), ~1 minute: as
`bench.in_process`, on a fresh database of 10,000 users, this process on core 0, 10 requests at
a time: GET /users/me with an opaque token and with a JWT access token, the refresh grant (ten
clients, each spending the refresh token its last answer brought), and introspection of a JWT.
CPU time per request, the best of three rounds. `--profile CASE` prints cProfile's heaviest
functions for one case instead. Steadier than wrk on a shared machine for an A/B of two commits.

`--ratios` measures each case against `GET /users/me` (opaque) instead: blocks of 200 requests
of the two in turn, twelve pairs, the median of the pairs' ratios. A machine whose speed
drifts from minute to minute (this one's does, 2x within an hour) moves both of a pair alike,
so the ratio is what to compare between two commits, run one after the other.
"""

import argparse
import asyncio
import base64
import cProfile
import json
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from bench.hashing import PASSWORD
from bench.in_process import CONCURRENCY, on_loaded_database

CASES = ("me_opaque", "me_jwt", "refresh", "introspect")

Call = Callable[[int], Awaitable[None]]  # one request of client number n


async def _request(
    app: Any, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + ([(b"content-length", str(len(body)).encode())] if body else []),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status: list[int] = []
    chunks: list[bytes] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # the client stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status[0], b"".join(chunks)


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def _post_form(app: Any, path: str, auth: str, form: dict[str, str]) -> dict[str, Any]:
    headers = {"authorization": auth, "content-type": "application/x-www-form-urlencoded"}
    status, body = await _request(app, "POST", path, headers, urlencode(form).encode())
    if status != 200:
        raise RuntimeError(f"POST {path} answered {status}: {body[:200]!r}")
    answer: dict[str, Any] = json.loads(body)
    return answer


async def _cases(app: Any) -> dict[str, Call]:
    from userbase import audit
    from userbase.database import SessionLocal
    from userbase.tokens import clients

    with SessionLocal.begin() as session:
        made = clients.create_client(
            session, name="bench app", redirect_uris=[], public=False, first_party=True,
            grant_types=["password", "refresh_token"], scope="", actor_id=None,
            context=audit.CLI,
        )  # fmt: skip
        checker = clients.create_client(
            session, name="bench resource server", redirect_uris=[], public=False,
            first_party=True, grant_types=["client_credentials"], scope="", actor_id=None,
            context=audit.CLI,
        )  # fmt: skip
        app_auth = _basic(made.client.client_id, made.client_secret or "")
        checker_auth = _basic(checker.client.client_id, checker.client_secret or "")
    sign_in = {"grant_type": "password", "username": "user1", "password": PASSWORD}
    first = await _post_form(app, "/oauth/token", app_auth, sign_in)
    form = {"username": "user1", "password": PASSWORD}
    _status, body = await _request(
        app, "POST", "/auth/token", {"content-type": "application/x-www-form-urlencoded"},
        urlencode(form).encode(),
    )  # fmt: skip
    opaque = json.loads(body)["access_token"]
    chains = [
        (await _post_form(app, "/oauth/token", app_auth, sign_in))["refresh_token"]
        for _ in range(CONCURRENCY)
    ]

    async def get_me(token: str) -> None:
        status, body = await _request(app, "GET", "/users/me", {"authorization": f"Bearer {token}"})
        if status != 200:
            raise RuntimeError(f"GET /users/me answered {status}: {body[:200]!r}")

    async def refresh(n: int) -> None:
        form = {"grant_type": "refresh_token", "refresh_token": chains[n]}
        chains[n] = (await _post_form(app, "/oauth/token", app_auth, form))["refresh_token"]

    async def introspect(_n: int) -> None:
        answer = await _post_form(
            app, "/oauth/introspect", checker_auth, {"token": first["access_token"]}
        )
        if not answer["active"]:
            raise RuntimeError("introspection: the token is not active")

    return {
        "me_opaque": lambda _n: get_me(opaque),
        "me_jwt": lambda _n: get_me(first["access_token"]),
        "refresh": refresh,
        "introspect": introspect,
    }


async def cpu_per_request(call: Call, requests: int) -> float:
    async def client(n: int, count: int) -> None:
        for _ in range(count):
            await call(n)

    await asyncio.gather(*(client(n, 30) for n in range(CONCURRENCY)))  # warm-up
    started = time.process_time()
    await asyncio.gather(*(client(n, requests // CONCURRENCY) for n in range(CONCURRENCY)))
    return (time.process_time() - started) / requests * 1e6


RATIO_BLOCK = 200
RATIO_PAIRS = 12


async def _ratios(cases: dict[str, Call], names: list[str]) -> None:
    reference = cases["me_opaque"]
    for name in ["me_opaque", *names]:
        await cpu_per_request(cases[name], RATIO_BLOCK)  # warm
    for name in names:
        if name == "me_opaque":
            continue
        pairs = [
            (
                await cpu_per_request(reference, RATIO_BLOCK),
                await cpu_per_request(cases[name], RATIO_BLOCK),
            )
            for _ in range(RATIO_PAIRS)
        ]
        ratios = sorted(case / me for me, case in pairs)
        median = statistics.median(ratios)
        print(
            f"  {name:<12} {median:5.2f}x the CPU of GET /users/me (quartiles {ratios[3]:.2f}-"
            f"{ratios[-4]:.2f}; /users/me {statistics.median(me for me, _ in pairs):.0f} µs)",
            flush=True,
        )


async def _measure(names: list[str], requests: int, profile: str | None, ratios: bool) -> None:
    from userbase.app import create_app

    app = create_app()
    async with app.router.lifespan_context(app):
        cases = await _cases(app)
        if ratios:
            await _ratios(cases, names)
            return
        if profile:
            profiler = cProfile.Profile()
            await cpu_per_request(cases[profile], 30)
            profiler.enable()
            await cpu_per_request(cases[profile], requests)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
            return
        for name in names:
            best = min([await cpu_per_request(cases[name], requests) for _ in range(3)])
            print(f"  {name:<12} {best:7.1f} µs of CPU a request", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tokens_in_process", description=__doc__)
    parser.add_argument("cases", nargs="*", help=f"some of {', '.join(CASES)} (default: all)")
    parser.add_argument("--requests", type=int, default=2000, help="per round and case")
    parser.add_argument("--profile", choices=CASES, help="cProfile one case instead")
    parser.add_argument(
        "--ratios", action="store_true", help="each case's CPU against GET /users/me's instead"
    )
    args = parser.parse_args(argv)
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case {sorted(unknown)[0]!r}")
    how = "each against GET /users/me" if args.ratios else "best of 3 rounds"
    print(f"in one process on core 0, {CONCURRENCY} at a time, {how}:")
    names = args.cases or list(CASES)
    on_loaded_database(lambda: _measure(names, args.requests, args.profile, args.ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

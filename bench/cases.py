"""What is measured: each case is a request, a number of connections and the systems that run it."""

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from bench.tokens import Client, TokenSource

PAGE = 100
LIST = f"/users/?limit={PAGE}"
LIST_SYSTEMS = ("ceiling", "userbase", "tutorial", "drf")
ME = "/users/me"
ME_SYSTEMS = ("ceiling", "userbase")  # the peers have no accounts
# Concurrent POST /users/ requests: the target asks for zero errors at 64 connections.
POST_CONNECTIONS = 64
# The token cases (issue 17): 10 connections, as the reads; for the refresh grant, 10 clients.
TOKEN_CONNECTIONS = 10
RESOURCE_SERVER = "resource-server"
CACHED_RESOURCE_SERVER = "cached-resource-server"
# The examples of examples/ the bench serves: system name -> (module, title).
RESOURCE_SERVERS = {
    RESOURCE_SERVER: (
        "resource_server",
        "examples/resource_server.py (FastAPI, PyJWT on every request)",
    ),
    CACHED_RESOURCE_SERVER: (
        "cached_resource_server",
        "examples/cached_resource_server.py (plain ASGI, PyJWT, verified tokens kept until exp)",
    ),
}
RESOURCE_PATH = "/hello"


@dataclass(frozen=True)
class RunInputs:
    """What a case needs anew for each wrk run: more script arguments, more headers."""

    script_args: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    connections: int
    paths: Mapping[str, str]  # system name -> path; only these systems run the case
    script_args: tuple[str, ...] = ("get",)  # the mode of bench/wrk.lua and its parameters
    headers: Mapping[str, str] = field(default_factory=dict)
    # Measure argon2id's time just before this case: its target is a share of that bound.
    hashing_bound: bool = False
    # Systems compared by ratio run in rounds, in alternating order, and the fastest round
    # counts: on a shared machine other work only ever slows a run down.
    rounds: int = 1
    # Called before each wrk run (warm-up and measured), outside the measured CPU time: fresh
    # tokens for the cases whose tokens expire or are spent.
    per_run: Callable[[], RunInputs] | None = None

    def run_inputs(self) -> RunInputs:
        return self.per_run() if self.per_run else RunInputs()


def small_table_cases(users: int, rounds: int, me_token: str) -> list[Case]:
    """Cases on the table of `users` users (10,000 by default), in the order they run.

    `me_token` is a bearer token of a user the harness signed up, for GET /users/me.

    Each system's heaviest case comes last: the tutorial stalls at 100 connections (issue 6)
    and only recovers after its pool timeout.
    """
    return [
        Case(
            "list_c10",
            f"GET {LIST}, 10 conn",
            10,
            dict.fromkeys(LIST_SYSTEMS, LIST),
            rounds=rounds,
        ),
        Case(
            "list_all_c1",
            "GET /users/ (every row), 1 conn",
            1,
            {"tutorial-all": "/users/"},
        ),
        Case(
            "by_id_c10",
            "GET /users/{id}, 10 conn",
            10,
            dict.fromkeys(LIST_SYSTEMS, "/users/"),
            script_args=("by-id", str(users)),
            rounds=rounds,
        ),
        Case(
            "me_c10",
            "GET /users/me, 10 conn",
            10,
            dict.fromkeys(ME_SYSTEMS, ME),
            headers={"Authorization": f"Bearer {me_token}"},
            rounds=rounds,
        ),
        Case(
            "list_c100",
            f"GET {LIST}, 100 conn",
            100,
            dict.fromkeys(LIST_SYSTEMS, LIST),
            rounds=rounds,
        ),
        Case("list_c1000", f"GET {LIST}, 1000 conn", 1000, {"userbase": LIST}),
        Case(
            "create_c64",
            f"POST /users/, {POST_CONNECTIONS} conn",
            POST_CONNECTIONS,
            {"userbase": "/users/"},
            script_args=("post-users",),  # run.py appends a tag unique to each wrk run
            hashing_bound=True,
        ),
        Case(
            "token_c64",
            f"POST /auth/token, {POST_CONNECTIONS} conn",
            POST_CONNECTIONS,
            {"userbase": "/auth/token"},
            # Users the harness loaded, all with the bench's password: every sign-in succeeds,
            # and only failures count towards the login throttle.
            script_args=("post-token", str(users)),
            hashing_bound=True,
        ),
    ]


def big_table_cases(total: int, last_after: int) -> list[Case]:
    """The first and the last page of the big table (1,000,000 users by default)."""
    # DRF's cursor is base64 of "p=<position>": the id the page starts after.
    drf_cursor = quote(base64.b64encode(f"p={last_after}".encode()).decode())
    last = {
        "ceiling": f"{LIST}&after={last_after}",
        "userbase": f"{LIST}&after={last_after}",
        "tutorial": f"{LIST}&skip={total - PAGE}",
        "drf": f"{LIST}&cursor={drf_cursor}",
    }
    return [
        Case(
            "big_first_c10", f"{total:,} users: first page, 10 conn", 10, dict.fromkeys(last, LIST)
        ),
        Case("big_last_c10", f"{total:,} users: last page, 10 conn", 10, last),
    ]


def token_cases(
    rounds: int, opaque_token: str, tokens: TokenSource, resource_server: Client
) -> tuple[list[Case], list[Case]]:
    """Issue 17's cases: the pair compared with each other (GET /users/me with an opaque token
    and with a JWT access token, run in alternating rounds), then the others.

    Access tokens are fetched fresh before each wrk run (they live 5 minutes) and sent on every
    request of the run, as a client uses its token: after the first request, userbase's check
    of the signature is a cache hit (access_tokens.py); `bench.signing` measures a full one.
    """

    def bearer() -> RunInputs:
        return RunInputs(headers={"Authorization": f"Bearer {tokens.access_token()}"})

    def introspection() -> RunInputs:
        return RunInputs(script_args=(f"token={tokens.access_token()}",))

    def chains() -> RunInputs:
        return RunInputs(script_args=tokens.refresh_chains(TOKEN_CONNECTIONS))

    compared = [
        Case(
            "me_opaque_c10",
            f"GET /users/me, opaque token, {TOKEN_CONNECTIONS} conn",
            TOKEN_CONNECTIONS,
            {"userbase": ME},
            headers={"Authorization": f"Bearer {opaque_token}"},
            rounds=rounds,
        ),
        Case(
            "me_jwt_c10",
            f"GET /users/me, JWT access token, {TOKEN_CONNECTIONS} conn",
            TOKEN_CONNECTIONS,
            {"userbase": ME},
            per_run=bearer,
            rounds=rounds,
        ),
    ]
    others = [
        Case(
            "refresh_c10",
            f"POST /oauth/token refresh_token, {TOKEN_CONNECTIONS} conn",
            TOKEN_CONNECTIONS,
            {"userbase": "/oauth/token"},
            script_args=("refresh",),
            headers={"Authorization": tokens.app.basic},
            per_run=chains,
            rounds=rounds,
        ),
        Case(
            "introspect_c10",
            f"POST /oauth/introspect (a JWT), {TOKEN_CONNECTIONS} conn",
            TOKEN_CONNECTIONS,
            {"userbase": "/oauth/introspect"},
            script_args=("post-form",),
            headers={"Authorization": resource_server.basic},
            per_run=introspection,
            rounds=rounds,
        ),
        Case(
            "resource_c10",
            f"example resource servers GET {RESOURCE_PATH}, {TOKEN_CONNECTIONS} conn",
            TOKEN_CONNECTIONS,
            {RESOURCE_SERVER: RESOURCE_PATH, CACHED_RESOURCE_SERVER: RESOURCE_PATH},
            per_run=bearer,
            rounds=rounds,
        ),
    ]
    return compared, others

"""What is measured: each case is a request, a number of connections and the systems that run it."""

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

PAGE = 100
LIST = f"/users/?limit={PAGE}"
LIST_SYSTEMS = ("ceiling", "userbase", "tutorial", "drf")
ME = "/users/me"
ME_SYSTEMS = ("ceiling", "userbase")  # the peers have no accounts
# Concurrent POST /users/ requests: the target asks for zero errors at 64 connections.
POST_CONNECTIONS = 64


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

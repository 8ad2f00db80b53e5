"""/users/: create, read and page through users."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from userbase import users
from userbase.database import SessionDep
from userbase.responses import JSONBytes
from userbase.schemas import Problem, UserCreate, UserPrivate, UserPublic
from userbase.security import hash_password

router = APIRouter(prefix="/users", tags=["users"])

# ids are 32-bit integers on every engine; a larger one cannot name a user.
MAX_ID = 2_147_483_647
PAGE_LIMIT_MAX = 1000

_PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}


def _public(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "username": row.username,
        "display_name": row.display_name,
        "created_at": row.created_at,
    }


@router.post(
    "/",
    status_code=201,
    response_model=UserPrivate,
    responses={409: _PROBLEM, 413: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM},
    summary="Create a user",
)
@router.post("", status_code=201, include_in_schema=False)
def create_user(body: UserCreate, db: SessionDep) -> Response:
    """Create a user. The password is stored only as its argon2id hash."""
    # Hash before the first statement: the transaction (and SQLite's write lock) starts later.
    password_hash = hash_password(body.password)
    user = users.create_user(
        db,
        username=body.username,
        email=body.email,
        password_hash=password_hash,
        display_name=body.display_name,
    )
    content = {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "is_active": user.is_active,
        "created_at": user.created_at,
    }
    return JSONBytes(content, status_code=201, headers={"Location": f"/users/{user.id}"})


@router.get(
    "/",
    response_model=list[UserPublic],
    responses={422: _PROBLEM, 503: _PROBLEM},
    summary="List users, a keyset page at a time",
)
@router.get("", include_in_schema=False)
def list_users(
    request: Request,
    db: SessionDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="Only ids greater than this.")] = 0,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=32,
            pattern=r"^[A-Za-z0-9_.-]+$",
            description="Case-insensitive username prefix.",
        ),
    ] = None,
) -> Response:
    """Users ordered by id. A `Link: <...>; rel="next"` header points at the next page, if any."""
    # No id exceeds MAX_ID; PostgreSQL refuses a larger bind for the integer column.
    page = users.list_public_users(db, after=min(after, MAX_ID), limit=limit, username_prefix=q)
    headers = {}
    if page.next_after is not None:
        next_url = request.url.include_query_params(after=page.next_after, limit=limit)
        headers["Link"] = f'<{next_url}>; rel="next"'
    return JSONBytes([_public(row) for row in page.rows], headers=headers)


@router.get(
    "/{user_id}",
    response_model=UserPublic,
    responses={404: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM},
    summary="Read one user",
)
def read_user(user_id: int, db: SessionDep) -> Response:
    """The public view of one user."""
    if not 1 <= user_id <= MAX_ID:
        raise users.UserNotFound(user_id)
    return JSONBytes(_public(users.get_public_user(db, user_id)))

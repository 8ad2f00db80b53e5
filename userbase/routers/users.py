"""/users/: create, read, page through, change and delete users."""

import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Header, Query, Request
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from starlette.responses import Response

from userbase import accounts, lookalikes, users
from userbase.admission import HASHING_TURN
from userbase.config import get_settings
from userbase.database import SessionDep
from userbase.permissions import Forbidden
from userbase.problem import PROBLEM_RESPONSE as PROBLEM
from userbase.responses import JSONBytes
from userbase.routers.dependencies import (
    AdminDep,
    EnrollingPrincipalDep,
    OptionalPrincipalDep,
    PrincipalDep,
    RequestContextDep,
)
from userbase.routers.etags import etag_for, versions_in
from userbase.schemas import (
    BatchItemOut,
    BatchUserIn,
    PasswordChange,
    UserAccount,
    UserAdminView,
    UserCreate,
    UserPrivate,
    UserPublic,
    UserUpdate,
    shaped,
)
from userbase.security import hash_format

router = APIRouter(prefix="/users", tags=["users"])

PAGE_LIMIT_MAX = 1000
_CHECK_YOUR_MAIL = {"detail": "Check your mail to confirm your address and finish signing up."}


def _public_page(rows: Any) -> list[dict[str, Any]]:
    # Unpacking in one comprehension: measured ~2x faster than a call per row (bench/ab.py).
    return [
        {"id": user_id, "username": username, "display_name": display_name, "created_at": created}
        for user_id, username, display_name, created in rows
    ]


def _public(row: Any) -> dict[str, Any]:
    return _public_page((row[:4],))[0]


def _account(user: object) -> dict[str, Any]:
    return shaped(UserAccount, user)


@router.post(
    "/",
    status_code=201,
    response_model=UserPrivate,
    responses={
        202: {
            "description": "With USERBASE_REQUIRE_VERIFIED_EMAIL: the same answer whether the "
            "address is new or taken (its owner is mailed); finish by following the mail."
        },
        409: PROBLEM,
        413: PROBLEM,
        415: PROBLEM,
        422: PROBLEM,
        429: PROBLEM,
        503: PROBLEM,
    },
    summary="Create a user",
    dependencies=[HASHING_TURN],
)
@router.post("", status_code=201, include_in_schema=False, dependencies=[HASHING_TURN])
def create_user(body: UserCreate, db: SessionDep, context: RequestContextDep) -> Response:
    """Create a user and mail them a link to verify the address. The password is stored only
    as its argon2id hash."""
    user = accounts.register(
        db,
        username=body.username,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        context=context,
    )
    if user is None or get_settings().require_verified_email:
        # One answer for a new address and a taken one: the mail tells its owner which.
        return JSONBytes(_CHECK_YOUR_MAIL, status_code=202)
    return JSONBytes(
        shaped(UserPrivate, user), status_code=201, headers={"Location": f"/users/{user.id}"}
    )


_ISO_8601 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$"
)


def _iso_8601_only(value: object) -> object:
    # pydantic would also read "0.5" as a Unix timestamp; the API documents date-time strings.
    if isinstance(value, str) and not _ISO_8601.match(value):
        raise ValueError("expected an ISO 8601 date-time with a time zone, e.g. 2026-01-31T00:00Z")
    return value


IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_8601_only)]
# No control characters (PostgreSQL cannot even be sent a NUL).
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


class AdminFilterParams(BaseModel):
    """Filters of GET /users/ that only admins may use (403 for others)."""

    model_config = ConfigDict(extra="ignore")

    email: Annotated[
        str | None, Field(max_length=320, pattern=_PRINTABLE, description="Exact, any case.")
    ] = None
    email_prefix: Annotated[str | None, Field(min_length=1, max_length=320, pattern=_PRINTABLE)] = (
        None
    )
    is_active: bool | None = None
    is_admin: bool | None = None
    created_after: IsoDatetime | None = None
    created_before: IsoDatetime | None = None


@router.get(
    "/",
    response_model=list[UserPublic] | list[UserAccount],
    responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM, 503: PROBLEM},
    summary="List users, a keyset page at a time",
)
@router.get("", include_in_schema=False)
def list_users(
    request: Request,
    db: SessionDep,
    principal: OptionalPrincipalDep,
    filter_params: Annotated[AdminFilterParams, Query()],
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
    """Users ordered by id. A `Link: <...>; rel="next"` header points at the next page, if any.

    Admins get whole accounts and may also filter by email, email_prefix, is_active, is_admin,
    created_after and created_before (combined with AND).
    """
    is_admin = principal is not None and principal.user.is_admin
    filters = users.AdminFilters(**filter_params.model_dump())
    if filters.any() and not is_admin:
        raise Forbidden("Only an admin may filter users by these fields.")
    headers = {}
    if is_admin:
        found = users.search_users(db, after=after, limit=limit, username_prefix=q, filters=filters)
        content, next_after = [_account(user) for user in found.users], found.next_after
    else:
        page = users.list_public_users(db, after=after, limit=limit, username_prefix=q)
        content, next_after = _public_page(page.rows), page.next_after
    if next_after is not None:
        headers["Link"] = f'<{_next_page_url(request, next_after, limit)}>; rel="next"'
    return JSONBytes(content, headers=headers)


def _next_page_url(request: Request, after: int, limit: int) -> str:
    """This request's URL with `after` and `limit` set (Starlette's include_query_params, which
    costs several times this on every page)."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("after", "limit")]
    query += [("after", str(after)), ("limit", str(limit))]
    return str(request.url.replace(query=urlencode(query)))


BATCH_MAX = 1000


@router.post(
    "/batch",
    status_code=207,
    response_model=list[BatchItemOut],
    responses={401: PROBLEM, 403: PROBLEM, 413: PROBLEM, 422: PROBLEM, 503: PROBLEM},
    summary="Create up to 1,000 users at once (admins)",
    dependencies=[HASHING_TURN],
)
def create_users_batch(
    items: Annotated[list[dict[str, Any]], Body(min_length=1, max_length=BATCH_MAX)],
    admin: AdminDep,
    db: SessionDep,
    context: RequestContextDep,
) -> Response:
    """Each item is validated like POST /users/ and answered on its own: `{index, status, id}`
    (201) or `{index, status, error}` (409, 422). All the created users commit together."""
    results: dict[int, dict[str, Any]] = {}
    valid: list[tuple[int, BatchUserIn]] = []
    for index, raw in enumerate(items):
        try:
            item = _BATCH_ITEM.validate_python(raw)
        except ValidationError as exc:
            results[index] = _item_error(index, 422, "Invalid user.", exc.errors())
            continue
        if item.password_hash is not None and hash_format(item.password_hash) is None:
            results[index] = _item_error(index, 422, "Unknown password hash format.", None)
            continue
        valid.append((index, item))
    new_users = [
        accounts.NewUser(
            item.username,
            item.email,
            item.display_name,
            password=item.password,
            password_hash=item.password_hash,
        )
        for _, item in valid
    ]
    outcomes = accounts.register_many(db, new_users, actor=admin.user, context=context)
    for (index, _), outcome in zip(valid, outcomes, strict=True):
        if isinstance(outcome, users.UserExists):
            results[index] = _item_error(index, 409, str(outcome), None)
        else:
            results[index] = {"index": index, "status": 201, "id": outcome.id}
    return JSONBytes([results[index] for index in sorted(results)], status_code=207)


_BATCH_ITEM = TypeAdapter(BatchUserIn)


def _item_error(index: int, status: int, detail: str, errors: list[Any] | None) -> dict[str, Any]:
    error: dict[str, Any] = {"status": status, "detail": detail}
    if errors is not None:
        # Where and why only: the rejected values (passwords among them) are not echoed.
        error["errors"] = [
            {"field": ".".join(map(str, e["loc"])), "type": e["type"], "msg": e["msg"]}
            for e in errors
        ]
    return {"index": index, "status": status, "error": error}


# Declared before /users/{user_id}, which would otherwise try to read "me" as an id.
@router.get(
    "/me",
    response_model=UserAccount,
    responses={401: PROBLEM},
    summary="The signed-in user's own account",
)
async def read_me(principal: EnrollingPrincipalDep) -> Response:
    # async: the principal is already loaded; a thread hop would cost more than this does.
    user = principal.user
    return JSONBytes(_account(user), headers={"ETag": etag_for(user.version)})


@router.put(
    "/me/password",
    status_code=204,
    responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM, 429: PROBLEM, 503: PROBLEM},
    summary="Change your password; every token of yours is revoked",
    dependencies=[HASHING_TURN],
)
def change_password(
    body: PasswordChange, principal: PrincipalDep, db: SessionDep, context: RequestContextDep
) -> Response:
    accounts.change_password(
        db, principal.user, current=body.current_password, new=body.new_password, context=context
    )
    return Response(status_code=204)


@router.get(
    "/{user_id}",
    response_model=UserPublic | UserAdminView,
    responses={401: PROBLEM, 404: PROBLEM, 422: PROBLEM, 503: PROBLEM},
    summary="Read one user (admins see the private view)",
)
def read_user(user_id: int, db: SessionDep, principal: OptionalPrincipalDep) -> Response:
    """The public view of one user; for admins the account view, flagged when its address
    mixes scripts or looks like another user's. The ETag is its version."""
    if principal is not None and principal.user.is_admin:
        user = users.get_user(db, user_id)
        address = lookalikes.check_address(db, user.email, user_id=user.id)
        view = {
            **_account(user),
            "email_mixed_script": address.mixed_script,
            "email_lookalike_of": address.lookalike_of,
        }
        return JSONBytes(view, headers={"ETag": etag_for(user.version)})
    row = users.get_public_user(db, user_id)
    return JSONBytes(_public(row), headers={"ETag": etag_for(row.version)})


@router.patch(
    "/{user_id}",
    response_model=UserAccount,
    responses={
        401: PROBLEM,
        403: PROBLEM,
        404: PROBLEM,
        409: PROBLEM,
        412: PROBLEM,
        422: PROBLEM,
        429: PROBLEM,
        503: PROBLEM,
    },
    summary="Change a user (yourself, or anyone as an admin)",
)
def update_user(
    user_id: int,
    body: UserUpdate,
    principal: PrincipalDep,
    db: SessionDep,
    context: RequestContextDep,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Owners may change display_name and email; admins also is_active and is_admin.

    The owner changes the email address only with `current_password`; the old address is
    mailed a link that undoes the change, and the owner's other sessions end.

    With If-Match, the change applies only if the user is still at that ETag (else 412);
    without it, the change applies to whatever the current version is.
    """
    user = accounts.change_account(
        db,
        principal.user,
        user_id,
        body.changes(),
        versions=versions_in(if_match),
        context=context,
        current_password=body.current_password,
        current_token_id=principal.token_id,
    )
    return JSONBytes(_account(user), headers={"ETag": etag_for(user.version)})


@router.delete(
    "/{user_id}",
    status_code=204,
    responses={401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM, 412: PROBLEM},
    summary="Delete a user (yourself, or anyone as an admin)",
)
def delete_user(
    user_id: int,
    principal: PrincipalDep,
    db: SessionDep,
    context: RequestContextDep,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    accounts.delete_account(
        db, principal.user, user_id, versions=versions_in(if_match), context=context
    )
    return Response(status_code=204)

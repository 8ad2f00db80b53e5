"""/admin/: what only admins may see."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from userbase import audit
from userbase.audit import EventKind
from userbase.database import SessionDep
from userbase.problem import PROBLEM_RESPONSE as PROBLEM
from userbase.responses import JSONBytes
from userbase.routers.dependencies import AdminDep
from userbase.schemas import SecurityEventOut

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get(
    "/events",
    response_model=list[SecurityEventOut],
    responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM},
    summary="The audit trail, oldest first, a keyset page at a time",
)
def list_events(
    request: Request,
    _admin: AdminDep,
    db: SessionDep,
    user_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    kind: EventKind | None = None,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    page = audit.list_events(
        db, user_id=user_id, kind=kind.value if kind else None, after=after, limit=limit
    )
    headers = {}
    if page.next_after is not None:
        next_url = request.url.include_query_params(after=page.next_after, limit=limit)
        headers["Link"] = f'<{next_url}>; rel="next"'
    events = [
        {
            "id": event.id,
            "kind": event.kind,
            "user_id": event.user_id,
            "actor_id": event.actor_id,
            "client_address": event.client_address,
            "user_agent": event.user_agent,
            "request_id": event.request_id,
            "channel": event.channel,
            "detail": event.detail,
            "created_at": event.created_at,
        }
        for event in page.events
    ]
    return JSONBytes(events, headers=headers)

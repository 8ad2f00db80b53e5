"""/console/: the admins' console, read as a browser without JavaScript would (forms, links).

Each button calls the API's own workflow and leaves the same audit event; every form needs
the CSRF token of this browser sign-in; only a signed-in admin sees anything; the search is
users.search_users, the query of GET /users/."""

import html
import re
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.accounts import bearer, make_admin, token_for
from tests.mfa import enrol
from tests.oidc import submit_sign_in
from tests.tokens import create_user
from userbase import users
from userbase.config import get_settings
from userbase.database import SessionLocal, engine
from userbase.models import OAuthClient, OutboxMail, SecurityEvent, User
from userbase.routers import console_admin
from userbase.tokens import clients
from userbase.tokens.oauth_errors import InvalidClient

_FORM = re.compile(r'<form method="post" action="([^"]*)"[^>]*>(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def sign_in(client: Any, n: int) -> None:
    """The browser (the client's cookies) signs in as user{n} on the hosted page."""
    page = client.get("/oauth/sign-in?return_to=/console/")
    signed_in = submit_sign_in(client, page, f"user{n}")
    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["location"] == "/console/"


def forms(page: Any) -> list[tuple[str, dict[str, str]]]:
    """The page's POST forms: action and hidden fields, in order."""
    return [
        (html.unescape(action), dict(_HIDDEN.findall(body)))
        for action, body in _FORM.findall(page.text)
    ]


def form_to(page: Any, action: str) -> dict[str, str]:
    found = [fields for target, fields in forms(page) if target == action]
    assert found, f"no form to {action} in {[target for target, _ in forms(page)]}"
    return found[0]


def press(client: Any, user_id: int, action: str, **extra: str) -> Any:
    """Open the user's page (for "delete", its confirmation step) and press one of its
    buttons, as a browser would."""
    target = f"/console/users/{user_id}/{action}"
    page = client.get(target if action == "delete" else f"/console/users/{user_id}")
    assert page.status_code == 200, page.text
    return client.post(target, data={**form_to(page, target), **extra}, follow_redirects=False)


def events(kind: str, user_id: int | None = None) -> list[SecurityEvent]:
    with SessionLocal() as session:
        statement = select(SecurityEvent).where(SecurityEvent.kind == kind)
        if user_id is not None:
            statement = statement.where(SecurityEvent.user_id == user_id)
        return list(session.scalars(statement.order_by(SecurityEvent.id)).all())


def account(user_id: int) -> User | None:
    with SessionLocal() as session:
        return session.get(User, user_id)


@pytest.fixture
def admin(client: Any) -> int:
    """user1, an admin, signed in on the client's browser."""
    admin_id = create_user(1)
    make_admin(admin_id)
    sign_in(client, 1)
    return admin_id


def test_not_signed_in_is_sent_to_sign_in_and_back(client: Any) -> None:
    for path in ("/console/", "/console/users/5?x=1", "/console/audit", "/console/clients"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        location = answer.headers["location"]
        assert location.startswith("/oauth/sign-in?return_to=%2Fconsole%2F"), location
    posted = client.post("/console/users/1/deactivate", data={}, follow_redirects=False)
    assert posted.status_code == 303
    assert posted.headers["location"] == "/oauth/sign-in?return_to=%2Fconsole%2F"


def test_signing_in_at_the_console_comes_back_to_it(client: Any, admin: int) -> None:
    page = client.get("/console/")
    assert page.status_code == 200
    assert "Signed in as <strong>user1@example.com</strong>" in page.text


def test_a_non_admin_is_kept_out_and_sees_no_one_else(client: Any) -> None:
    admin_id = create_user(1)
    make_admin(admin_id)
    other = create_user(3)
    create_user(2)
    sign_in(client, 2)
    for path in (
        "/console/",
        "/console/?q=user",
        f"/console/users/{admin_id}",
        f"/console/users/{other}",
        f"/console/users/{other}/delete",
        f"/console/audit?user_id={admin_id}",
        "/console/clients",
    ):
        page = client.get(path)
        assert page.status_code == 403, path
        for someone_else in ("user1", "user3"):
            assert someone_else not in page.text, path
        assert "Not for this account" in page.text
    # Nor may it act: there is no token to be had, and an admin's would not be its.
    refused = client.post(f"/console/users/{other}/deactivate", data={"csrf_token": "x"})
    assert refused.status_code == 403
    assert account(other).is_active  # type: ignore[union-attr]
    assert "user3" not in refused.text


def test_an_admin_demoted_meanwhile_loses_the_console_at_once(client: Any, admin: int) -> None:
    other = create_user(2)
    page = client.get(f"/console/users/{other}")
    assert page.status_code == 200
    token = form_to(page, f"/console/users/{other}/deactivate")
    with engine.begin() as connection:
        connection.execute(update(User).where(User.id == admin).values(is_admin=False))
    assert client.get(f"/console/users/{other}").status_code == 403
    posted = client.post(f"/console/users/{other}/deactivate", data=token)
    assert posted.status_code == 403
    assert account(other).is_active  # type: ignore[union-attr]
    assert events("activation_changed") == []


@pytest.mark.parametrize("csrf", ["missing", "wrong", "another sign-in's"])
def test_a_form_without_this_sign_ins_csrf_token_is_refused(
    client: Any, admin: int, csrf: str
) -> None:
    other = create_user(2)
    fields = form_to(client.get(f"/console/users/{other}"), f"/console/users/{other}/deactivate")
    if csrf == "missing":
        del fields["csrf_token"]
    elif csrf == "wrong":
        fields["csrf_token"] = "0" * 64
    else:
        # The same browser signs in again: the token of its former sign-in serves no more.
        client.cookies.delete("userbase_sso")
        sign_in(client, 1)
    refused = client.post(f"/console/users/{other}/deactivate", data=fields)
    assert refused.status_code == 403
    assert "This form expired" in refused.text
    assert account(other).is_active  # type: ignore[union-attr]
    assert events("activation_changed") == []


def test_deactivate_ends_the_users_tokens_and_activate_brings_the_account_back(
    client: Any, admin: int
) -> None:
    other = create_user(2)
    token = token_for(client, "user2")
    done = press(client, other, "deactivate")
    assert done.status_code == 303
    assert done.headers["location"] == f"/console/users/{other}?done=deactivated"
    assert "The account is deactivated" in client.get(done.headers["location"]).text
    assert client.get("/users/me", headers=bearer(token)).status_code == 401
    [event] = events("activation_changed", other)
    assert (event.actor_id, event.detail, event.channel) == (admin, "is_active=False", "api")

    assert press(client, other, "activate").status_code == 303
    assert account(other).is_active  # type: ignore[union-attr]
    assert [e.detail for e in events("activation_changed", other)][-1] == "is_active=True"
    assert client.get("/users/me", headers=bearer(token_for(client, "user2"))).status_code == 200


def test_make_and_remove_admin_are_role_changes(client: Any, admin: int) -> None:
    other = create_user(2)
    assert press(client, other, "make-admin").status_code == 303
    assert account(other).is_admin  # type: ignore[union-attr]
    assert press(client, other, "remove-admin").status_code == 303
    assert not account(other).is_admin  # type: ignore[union-attr]
    assert [(e.detail, e.actor_id) for e in events("role_changed", other)] == [
        ("is_admin=True", admin),
        ("is_admin=False", admin),
    ]


@pytest.mark.parametrize("action", ["remove-admin", "deactivate", "delete"])
def test_the_last_admin_cannot_step_down_and_the_page_says_why(
    client: Any, admin: int, action: str
) -> None:
    refused = press(client, admin, action)
    assert refused.status_code == 409
    assert "This is the last active admin" in refused.text
    assert 'role="alert"' in refused.text
    still = account(admin)
    assert still is not None
    assert still.is_admin
    assert still.is_active
    assert events("role_changed", admin) == events("activation_changed", admin) == []


def test_a_click_on_a_page_older_than_the_account_is_refused(client: Any, admin: int) -> None:
    other = create_user(2)
    page = client.get(f"/console/users/{other}")
    press(client, other, "make-admin")
    stale = client.post(
        f"/console/users/{other}/deactivate",
        data=form_to(page, f"/console/users/{other}/deactivate"),
    )
    assert stale.status_code == 409
    assert "changed since you read it" in stale.text
    assert account(other).is_active  # type: ignore[union-attr]


def test_unlock_is_recorded(client: Any, admin: int) -> None:
    other = create_user(2)
    assert press(client, other, "unlock").status_code == 303
    [event] = events("account_unlocked", other)
    assert event.actor_id == admin


def test_end_one_sign_in_then_all(client: Any, admin: int) -> None:
    other = create_user(2)
    first, second = token_for(client, "user2"), token_for(client, "user2")
    page = client.get(f"/console/users/{other}")
    ends = [fields for action, fields in forms(page) if action.endswith("/end-session")]
    assert len(ends) == 2  # newest first: the second token's sign-in
    done = client.post(f"/console/users/{other}/end-session", data=ends[0], follow_redirects=False)
    assert done.status_code == 303
    assert client.get("/users/me", headers=bearer(second)).status_code == 401
    assert client.get("/users/me", headers=bearer(first)).status_code == 200
    assert press(client, other, "end-sessions").status_code == 303
    assert client.get("/users/me", headers=bearer(first)).status_code == 401
    assert [(e.detail, e.actor_id) for e in events("session_revoked", other)] == [
        (f"session={ends[0]['session_id']}", admin),
        ("all", admin),
    ]


def test_ending_every_sign_in_of_ones_own_account_keeps_this_browser(
    client: Any, admin: int
) -> None:
    token = token_for(client, "user1")
    assert press(client, admin, "end-sessions").status_code == 303
    assert client.get("/users/me", headers=bearer(token)).status_code == 401
    assert client.get("/console/").status_code == 200


def test_reset_second_factors_removes_the_authenticator(client: Any, admin: int) -> None:
    other = create_user(2)
    enrol(client, token_for(client, "user2"))
    assert "An authenticator app is active" in client.get(f"/console/users/{other}").text
    done = press(client, other, "reset-mfa")
    assert done.headers["location"].endswith("done=mfa-reset")
    assert "None: the password alone signs in" in client.get(f"/console/users/{other}").text
    [event] = events("mfa_reset", other)
    assert (event.actor_id, event.detail) == (admin, "removed")


def test_send_a_reset_link_mails_the_user(client: Any, admin: int) -> None:
    other = create_user(2)
    with SessionLocal() as session:
        before = len(session.scalars(select(OutboxMail.id)).all())
    assert press(client, other, "send-reset-link").status_code == 303
    with SessionLocal() as session:
        assert len(session.scalars(select(OutboxMail.id)).all()) == before + 1
    [event] = events("password_reset_requested", other)
    assert event.actor_id == admin


def test_no_reset_link_to_a_deactivated_account(client: Any, admin: int) -> None:
    other = create_user(2)
    press(client, other, "deactivate")
    refused = press(client, other, "send-reset-link")
    assert refused.status_code == 409
    assert "deactivated" in refused.text
    assert events("password_reset_requested", other) == []


def test_delete_asks_first_then_deletes(client: Any, admin: int) -> None:
    other = create_user(2)
    user_page = client.get(f"/console/users/{other}")
    assert f'href="/console/users/{other}/delete"' in user_page.text
    confirm = client.get(f"/console/users/{other}/delete")
    assert confirm.status_code == 200
    assert "Delete user2?" in confirm.text
    fields = form_to(confirm, f"/console/users/{other}/delete")
    done = client.post(f"/console/users/{other}/delete", data=fields, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == "/console/?done=deleted"
    assert account(other) is None
    [event] = events("user_deleted", other)
    assert event.actor_id == admin
    assert client.get(f"/console/users/{other}").status_code == 404


def test_the_search_is_the_apis_query_with_the_same_results_and_pages(
    client: Any, admin: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(2, 9):
        create_user(n)
    with engine.begin() as connection:
        connection.execute(
            update(User).where(User.username.in_(["user3", "user5"])).values(is_active=False)
        )
    calls: list[dict[str, Any]] = []
    real = users.search_users

    def recorded(session: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(session, **kwargs)

    monkeypatch.setattr(users, "search_users", recorded)
    monkeypatch.setattr(console_admin, "USERS_PAGE", 2)
    api_token = token_for(client, "user1")
    cases = [
        ("", ""),
        ("q=USER", "q=USER"),
        ("q=user4%40EXAMPLE.com", "email_prefix=user4%40EXAMPLE.com"),
        ("q=user%40", "email_prefix=user%40"),
        ("active=no", "is_active=false"),
        ("admin=yes", "is_admin=true"),
        (
            "active=yes&admin=no&created_from=2000-01-01",
            "is_active=true&is_admin=false&created_after=2000-01-01T00:00Z",
        ),
        ("created_before=2000-01-01", "created_before=2000-01-01T00:00Z"),
    ]
    for console_query, api_query in cases:
        console_ids, api_ids = [], []
        url: str | None = f"/console/?{console_query}"
        while url:
            calls.clear()
            page = client.get(url)
            assert page.status_code == 200, page.text
            console_call = calls[-1]
            console_ids.append(
                [int(i) for i in re.findall(r'<a href="/console/users/(\d+)">', page.text)]
            )
            found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
            url = html.unescape(found.group(1)) if found else None
            calls.clear()
            api = client.get(
                f"/users/?{api_query}&limit=2&after={console_call['after']}",
                headers=bearer(api_token),
            )
            assert api.status_code == 200, api.text
            assert calls == [console_call], (console_query, calls, console_call)
            api_ids.append([user["id"] for user in api.json()])
            assert ("link" in api.headers) == (url is not None)
        assert console_ids == api_ids, console_query
    # A whole address finds its user alone.
    page = client.get("/console/?q=User4%40Example.com").text
    assert re.findall(r'<a href="/console/users/\d+">([^<]+)</a>', page) == ["user4"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("q=no%20spaces", "q"),
        ("active=maybe", "active"),
        ("created_from=31.01.2026", "created_from"),
        ("created_before=2026-02-30", "created_before"),
    ],
)
def test_a_bad_search_field_is_told_at_the_field(
    client: Any, admin: int, query: str, field: str
) -> None:
    page = client.get(f"/console/?{query}")
    assert page.status_code == 422
    assert f'id="{field}-error"' in page.text
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', page.text)


def test_the_users_page_has_a_search_box_and_its_script_from_this_origin(
    client: Any, admin: int
) -> None:
    page = client.get("/console/")
    assert re.search(r'<input id="q" name="q" type="search"', page.text)
    assert '<script src="/console/static/console.js" defer></script>' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    script = client.get("/console/static/console.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    # The other pages have no script at all.
    assert "script-src" not in client.get("/console/audit").headers["content-security-policy"]


def test_the_audit_trail_filters_by_user_and_kind_and_pages_as_the_api(
    client: Any, admin: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = create_user(2)
    for action in ("make-admin", "remove-admin", "make-admin", "unlock"):
        press(client, other, action)
    monkeypatch.setattr(console_admin, "EVENTS_PAGE", 2)
    api_token = token_for(client, "user1")
    url: str | None = f"/console/audit?user_id={other}&kind=role_changed"
    seen = []
    while url:
        page = client.get(url)
        assert page.status_code == 200
        seen += [int(i) for i in re.findall(r"<tr>\s*<td>(\d+)</td>", page.text)]
        found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        url = html.unescape(found.group(1)) if found else None
    api = client.get(f"/admin/events?user_id={other}&kind=role_changed", headers=bearer(api_token))
    assert seen == [event["id"] for event in api.json()]
    assert len(seen) == 3
    refused = client.get("/console/audit?user_id=x&kind=nope")
    assert refused.status_code == 422
    assert 'id="user_id-error"' in refused.text
    assert 'id="kind-error"' in refused.text


def test_the_user_page_shows_recent_events_newest_first(client: Any, admin: int) -> None:
    other = create_user(2)
    press(client, other, "unlock")
    press(client, other, "make-admin")
    page = client.get(f"/console/users/{other}").text
    recent = page[page.index('id="events"') :]
    assert (
        recent.index("role_changed")
        < recent.index("account_unlocked")
        < recent.index("user_created")
    )


def test_clients_create_with_the_secret_once_rotate_and_delete(client: Any, admin: int) -> None:
    page = client.get("/console/clients")
    fields = form_to(page, "/console/clients")
    created = client.post(
        "/console/clients",
        data={
            **fields,
            "name": "Notes",
            "redirect_uris": "https://notes.example/callback\nhttps://notes.example/cb2",
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "notes",
        },
    )
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    client_id = re.search(r"Client id</dt><dd><code>([^<]+)</code>", created.text).group(1)  # type: ignore[union-attr]
    secret = re.search(r'<code class="secret">([^<]+)</code>', created.text).group(1)  # type: ignore[union-attr]
    with SessionLocal() as session:
        assert clients.authenticate(session, client_id, secret).name == "Notes"
    listed = client.get("/console/clients").text
    assert client_id in listed
    assert secret not in listed
    [event] = events("client_created")
    assert (event.actor_id, event.detail) == (admin, f"client={client_id}")

    rotate = f"/console/clients/{client_id}/secret"
    rotated = client.post(rotate, data=form_to(client.get("/console/clients"), rotate))
    assert rotated.status_code == 200
    new_secret = re.search(r'<code class="secret">([^<]+)</code>', rotated.text).group(1)  # type: ignore[union-attr]
    with SessionLocal() as session:
        clients.authenticate(session, client_id, new_secret)
        with pytest.raises(InvalidClient):
            clients.authenticate(session, client_id, secret)
    assert events("client_secret_rotated")[0].actor_id == admin

    confirm = client.get(f"/console/clients/{client_id}/delete")
    assert confirm.status_code == 200
    assert "Delete the client Notes?" in confirm.text
    target = f"/console/clients/{client_id}/delete"
    deleted = client.post(target, data=form_to(confirm, target), follow_redirects=False)
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/console/clients?done=client-deleted"
    with SessionLocal() as session:
        assert session.scalars(select(OAuthClient)).all() == []
    assert events("client_deleted")[0].actor_id == admin


def test_a_public_client_has_no_secret_to_show(client: Any, admin: int) -> None:
    fields = form_to(client.get("/console/clients"), "/console/clients")
    created = client.post(
        "/console/clients",
        data={
            **fields,
            "name": "SPA",
            "redirect_uris": "https://spa.example/",
            "public": "on",
            "grant_types": ["authorization_code"],
        },
        follow_redirects=False,
    )
    assert created.status_code == 303
    assert created.headers["location"] == "/console/clients?done=client-created"
    page = client.get("/console/clients").text
    assert "SPA" in page
    assert "New secret" not in page


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"name": " "}, "name"),
        ({"redirect_uris": "not-a-uri"}, "redirect_uris"),
        ({"post_logout_redirect_uris": "https://x.example/#f"}, "post_logout_redirect_uris"),
        ({"public": "on", "grant_types": ["client_credentials"]}, "grant_types"),
        ({"scope": 'a"b'}, "scope"),
    ],
)
def test_a_refused_client_is_told_at_the_field(
    client: Any, admin: int, over: dict[str, Any], field: str
) -> None:
    fields = form_to(client.get("/console/clients"), "/console/clients")
    data = {**fields, "name": "App", "redirect_uris": "https://app.example/cb", **over}
    refused = client.post("/console/clients", data=data)
    assert refused.status_code == 422
    assert f'id="{field}-error"' in refused.text
    with SessionLocal() as session:
        assert session.scalars(select(OAuthClient)).all() == []
    assert events("client_created") == []


def test_client_forms_need_the_csrf_token_too(client: Any, admin: int) -> None:
    refused = client.post(
        "/console/clients", data={"name": "App", "redirect_uris": "https://app.example/cb"}
    )
    assert refused.status_code == 403
    with SessionLocal() as session:
        assert session.scalars(select(OAuthClient)).all() == []


def test_with_second_factors_required_an_admin_without_one_is_kept_out(
    client: Any, admin: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "require_mfa_for_admins", True)
    other = create_user(2)
    kept_out = client.get(f"/console/users/{other}")
    assert kept_out.status_code == 403
    assert "second factor" in kept_out.text
    assert "user2" not in kept_out.text
    enrol(client, token_for(client, "user1"))
    assert client.get(f"/console/users/{other}").status_code == 200


def test_an_unknown_user_or_action_is_a_404_page(client: Any, admin: int) -> None:
    for path in ("/console/users/999999", "/console/users/0", "/console/users/999999/delete"):
        missing = client.get(path)
        assert missing.status_code == 404, path
        assert "Not found" in missing.text
    fields = form_to(client.get(f"/console/users/{admin}"), f"/console/users/{admin}/unlock")
    assert client.post(f"/console/users/{admin}/explode", data=fields).status_code == 404
    assert client.post("/console/users/999999/unlock", data=fields).status_code == 404
    assert events("account_unlocked") == []

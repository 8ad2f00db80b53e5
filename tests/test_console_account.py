"""/account/: every user's own account in the browser, read as a browser without JavaScript
would (forms and links). Each action does what the API's does (its audit event, throttle and
refusals), only with the browser's own sign-in and a CSRF token of that sign-in."""

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.accounts import PASSWORD, bearer, make_admin, token_for
from tests.mfa import StepClock, code
from tests.oidc import submit_sign_in
from tests.tokens import create_user
from userbase.config import get_settings
from userbase.console import user_agents
from userbase.database import SessionLocal
from userbase.models import MfaFactor, OutboxMail, SecurityEvent, Token, User

SIGN_IN = "/oauth/sign-in?return_to=/account/"
PAGES = ("/account/", "/account/password", "/account/sessions", "/account/two-factor")
PAGES += ("/account/delete",)


def sign_in(client: Any, n: int | str = 1, *, new: bool = True) -> int | None:
    """Sign the browser in as user n (made first, unless `new` is False), the way a person
    reaches /account/: sent to the sign-in page, and back."""
    user_id = create_user(n) if new else None
    sent = client.get("/account/", follow_redirects=False)
    assert sent.status_code == 303
    assert sent.headers["location"] == SIGN_IN
    back = submit_sign_in(client, client.get(SIGN_IN), f"user{n}")
    assert back.status_code == 303, back.text
    assert back.headers["location"] == "/account/"
    return user_id


def hidden_fields(page: Any, action: str) -> dict[str, str]:
    """The hidden fields of the page's form that posts to `action`."""
    forms = re.findall(r'<form method="post" action="([^"]*)"[^>]*>(.*?)</form>', page.text, re.S)
    for form_action, body in forms:
        if html.unescape(form_action) == action:
            fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', body)
            return {name: html.unescape(value) for name, value in fields}
    raise AssertionError(f"no form posts to {action}")


def submit(client: Any, page_path: str, action: str, **data: str) -> Any:
    """Open the page and send its form for `action`, filled in with `data`."""
    page = client.get(page_path)
    assert page.status_code == 200, page.text
    return client.post(action, data={**hidden_fields(page, action), **data}, follow_redirects=False)


def events(user_id: int) -> list[tuple[str, str | None]]:
    with SessionLocal() as session:
        return [
            (kind, detail)
            for kind, detail in session.execute(
                select(SecurityEvent.kind, SecurityEvent.detail)
                .where(SecurityEvent.user_id == user_id)
                .order_by(SecurityEvent.id)
            )
        ]


def kinds(user_id: int) -> list[str]:
    return [kind for kind, _ in events(user_id)]


def user_row(user_id: int) -> User | None:
    with SessionLocal() as session:
        return session.get(User, user_id)


def error_at(page: Any, field: str) -> str:
    """The error tied to a field: its text, after checking the input points at it."""
    assert re.search(
        rf'<input id="{field}"[^>]*aria-invalid="true"[^>]*aria-describedby="{field}-error',
        page.text,
    ), page.text
    found = re.search(rf'<p id="{field}-error" class="error">([^<]*)</p>', page.text)
    assert found is not None
    return html.unescape(found.group(1))


def form_error(page: Any) -> str:
    found = re.search(r'<p id="form-error" class="error" role="alert">([^<]*)</p>', page.text)
    assert found is not None, page.text
    return html.unescape(found.group(1))


# Signed out.


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_signed_out_browser_to_sign_in_and_back(client: Any, path: str) -> None:
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == SIGN_IN


def test_a_signed_out_form_changes_nothing(client: Any) -> None:
    user_id = create_user(1)
    sign_in(client, 1, new=False)
    page = client.get("/account/")
    fields = hidden_fields(page, "/account/name")
    client.post("/oauth/logout", data=hidden_fields(page, "/oauth/logout"))
    answer = client.post(
        "/account/name", data={**fields, "display_name": "Mallory"}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == SIGN_IN
    row = user_row(user_id)
    assert row is not None
    assert row.display_name is None


def test_the_page_shows_who_is_signed_in_and_the_address_is_not_verified(client: Any) -> None:
    sign_in(client)
    page = client.get("/account/")
    assert page.status_code == 200
    assert "Signed in as <strong>user1@example.com</strong>" in page.text
    assert "Not yet" in page.text
    assert "no-store" in page.headers["cache-control"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "script-src" not in page.headers["content-security-policy"]
    assert 'aria-current="page"' in page.text


def test_the_notice_after_an_action_is_a_fixed_text_never_the_querys(client: Any) -> None:
    sign_in(client)
    page = client.get("/account/", params={"done": "<script>alert(1)</script>"})
    assert page.status_code == 200
    assert "alert(1)" not in page.text
    assert 'role="status"' not in page.text


# CSRF.


@pytest.mark.parametrize("token", [None, "", "0" * 64])
def test_a_form_without_this_sign_ins_token_changes_nothing(client: Any, token: str | None) -> None:
    user_id = sign_in(client)
    assert user_id is not None
    data = {"display_name": "Mallory"}
    if token is not None:
        data["csrf_token"] = token
    answer = client.post("/account/name", data=data, follow_redirects=False)
    assert answer.status_code == 403
    assert "Nothing changed" in form_error(answer)
    row = user_row(user_id)
    assert row is not None
    assert row.display_name is None


def test_another_sign_ins_token_is_refused_even_with_the_same_csrf_cookie(client: Any) -> None:
    """The token names the sign-in: one copied from another browser's page (sharing, say, the
    CSRF cookie of a shared computer) does not pass."""
    from userbase.app import app

    user_id = sign_in(client)
    assert user_id is not None
    theirs = hidden_fields(client.get("/account/"), "/account/name")
    with TestClient(app) as other:
        other.cookies.set("userbase_csrf", client.cookies.get("userbase_csrf"))
        sign_in(other, 1, new=False)
        answer = other.post(
            "/account/name", data={**theirs, "display_name": "Mallory"}, follow_redirects=False
        )
        assert answer.status_code == 403
        # The same form from its own page passes.
        assert submit(other, "/account/", "/account/name", display_name="Ada").status_code == 303
    row = user_row(user_id)
    assert row is not None
    assert row.display_name == "Ada"


# Display name and address.


def test_changing_the_display_name(client: Any) -> None:
    user_id = sign_in(client)
    assert user_id is not None
    answer = submit(client, "/account/", "/account/name", display_name="Ada Lovelace")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/account/?done=name"
    page = client.get(answer.headers["location"])
    assert 'value="Ada Lovelace"' in page.text
    assert "Your display name is saved." in page.text
    # An empty name clears it.
    assert submit(client, "/account/", "/account/name", display_name="").status_code == 303
    row = user_row(user_id)
    assert row is not None
    assert row.display_name is None


def test_a_display_name_with_hidden_characters_is_refused_at_its_field(client: Any) -> None:
    user_id = sign_in(client)
    assert user_id is not None
    answer = submit(client, "/account/", "/account/name", display_name="Ada\u202egnirts")
    assert answer.status_code == 422
    assert "U+202E" in error_at(answer, "display_name")
    row = user_row(user_id)
    assert row is not None
    assert row.display_name is None


def test_changing_the_address_with_the_password(client: Any) -> None:
    user_id = sign_in(client)
    assert user_id is not None
    api_token = token_for(client, "user1")
    answer = submit(
        client,
        "/account/",
        "/account/email",
        email="ada@example.org",
        current_password=PASSWORD,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/account/?done=email"
    row = user_row(user_id)
    assert row is not None
    assert row.email == "ada@example.org"
    assert not row.email_verified
    assert "email_changed" in kinds(user_id)
    # This browser stays signed in; the other sign-ins end (the hardening issue's rule).
    page = client.get("/account/")
    assert page.status_code == 200
    assert "ada@example.org" in page.text
    assert client.get("/users/me", headers=bearer(api_token)).status_code == 401
    with SessionLocal() as session:
        sent = session.scalars(select(OutboxMail.recipient).order_by(OutboxMail.id)).all()
    assert {"ada@example.org", "user1@example.com"} <= set(sent)


def test_a_wrong_password_changes_no_address_and_counts_as_a_failure(client: Any) -> None:
    user_id = sign_in(client)
    assert user_id is not None
    answer = submit(
        client, "/account/", "/account/email", email="ada@example.org", current_password="nope"
    )
    assert answer.status_code == 403
    assert error_at(answer, "current_password") == "The current password is not correct."
    assert 'value="ada@example.org"' in answer.text  # what was typed stays
    row = user_row(user_id)
    assert row is not None
    assert row.email == "user1@example.com"
    assert ("login_failed", "wrong_current_password") in events(user_id)
    assert "email_changed" not in kinds(user_id)


def test_a_taken_address_is_refused_at_its_field_and_changes_nothing(client: Any) -> None:
    create_user(2)
    user_id = sign_in(client)
    assert user_id is not None
    answer = submit(
        client,
        "/account/",
        "/account/email",
        email="USER2@example.com",
        current_password=PASSWORD,
    )
    assert answer.status_code == 409
    assert "already exists" in error_at(answer, "email")
    row = user_row(user_id)
    assert row is not None
    assert row.email == "user1@example.com"
    assert row.version == 1
    assert "email_changed" not in kinds(user_id)
    # The request's unit of work went on after the refusal, and the next one works.
    assert submit(client, "/account/", "/account/name", display_name="Ada").status_code == 303


def test_an_address_that_is_not_one_is_refused_at_its_field(client: Any) -> None:
    sign_in(client)
    answer = submit(client, "/account/", "/account/email", email="nope", current_password="")
    assert answer.status_code == 422
    assert "like name@example.com" in error_at(answer, "email")
    assert error_at(answer, "current_password") == "Enter your current password."


def test_resending_the_verification_link_is_throttled_as_over_the_api(client: Any) -> None:
    user_id = sign_in(client)
    assert user_id is not None

    def mails() -> int:
        with SessionLocal() as session:
            return session.scalar(select(func.count()).select_from(OutboxMail)) or 0

    before = mails()
    for _ in range(3):
        answer = submit(client, "/account/", "/account/verification")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/account/?done=verification"
    assert mails() == before + 3
    refused = submit(client, "/account/", "/account/verification")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "try again later" in form_error(refused)
    assert mails() == before + 3


# Password.


def test_changing_the_password_ends_every_sign_in_this_one_too(client: Any) -> None:
    user_id = sign_in(client)
    assert user_id is not None
    answer = submit(
        client,
        "/account/password",
        "/account/password",
        current_password=PASSWORD,
        new_password="a new passphrase",
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/account/password-changed"
    assert "userbase_sso=" in answer.headers["set-cookie"]  # deleted
    assert client.get("/account/password-changed").status_code == 200
    assert client.get("/account/", follow_redirects=False).headers["location"] == SIGN_IN
    assert "password_changed" in kinds(user_id)
    assert token_for(client, "user1", "a new passphrase")


def test_a_wrong_current_password_changes_no_password(client: Any) -> None:
    user_id = sign_in(client)
    assert user_id is not None
    answer = submit(
        client,
        "/account/password",
        "/account/password",
        current_password="not it",
        new_password="a new passphrase",
    )
    assert answer.status_code == 403
    assert error_at(answer, "current_password") == "The current password is not correct."
    assert "password_changed" not in kinds(user_id)
    assert token_for(client, "user1")  # the old one still works
    assert client.get("/account/").status_code == 200
    short = submit(
        client,
        "/account/password",
        "/account/password",
        current_password=PASSWORD,
        new_password="x",
    )
    assert short.status_code == 422
    assert "8 to 128" in error_at(short, "new_password")


def test_wrong_passwords_are_throttled_like_sign_ins(client: Any) -> None:
    """The sign-in throttle's account limit: past it, even the right password is refused."""
    user_id = sign_in(client)
    assert user_id is not None
    for _ in range(get_settings().login_account_limit):
        wrong = submit(client, "/account/delete", "/account/delete", current_password="guess")
        assert wrong.status_code == 403
    throttled = submit(client, "/account/delete", "/account/delete", current_password=PASSWORD)
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0
    assert "try again later" in error_at(throttled, "current_password")
    assert user_row(user_id) is not None
    assert "login_throttled" in kinds(user_id)


# Sign-ins.


def test_the_sign_ins_list_and_ending_one(client: Any) -> None:
    user_id = sign_in(client)
    assert user_id is not None
    api_token = token_for(client, "user1")
    page = client.get("/account/sessions")
    assert page.status_code == 200
    assert page.text.count('<li class="sign-in') == 2
    assert "(this browser)" in page.text
    assert "API token" in page.text
    assert "testclient" in page.text
    ends = re.findall(r'action="/account/sessions/(\d+)/end"', page.text)
    assert len(ends) == 1  # not this browser's own: "Sign out" does that
    answer = submit(client, "/account/sessions", f"/account/sessions/{ends[0]}/end")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/account/sessions?done=ended"
    assert client.get("/users/me", headers=bearer(api_token)).status_code == 401
    assert ("session_revoked", f"session={ends[0]}") in events(user_id)
    assert client.get("/account/sessions").text.count('<li class="sign-in') == 1


def test_ending_every_other_sign_in_keeps_this_browser(client: Any) -> None:
    user_id = sign_in(client)
    assert user_id is not None
    tokens = [token_for(client, "user1") for _ in range(2)]
    answer = submit(client, "/account/sessions", "/account/sessions/end-others")
    assert answer.status_code == 303
    for token in tokens:
        assert client.get("/users/me", headers=bearer(token)).status_code == 401
    assert client.get("/account/sessions").status_code == 200
    assert ("session_revoked", "all others") in events(user_id)


def test_no_one_can_end_another_users_sign_in(client: Any) -> None:
    victim_id = create_user(2)
    victims_token = token_for(client, "user2")
    with SessionLocal() as session:
        victims_sign_in = session.scalars(select(Token.id).where(Token.user_id == victim_id)).one()
    sign_in(client)
    fields = hidden_fields(client.get("/account/"), "/account/name")
    answer = client.post(
        f"/account/sessions/{victims_sign_in}/end", data=fields, follow_redirects=False
    )
    assert answer.status_code == 404
    assert "not one of yours" in form_error(answer)
    assert client.get("/users/me", headers=bearer(victims_token)).status_code == 200
    assert "session_revoked" not in kinds(victim_id)


# Second factors.


def test_enrolling_an_authenticator_app(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    StepClock(monkeypatch)
    user_id = sign_in(client)
    assert user_id is not None
    started = submit(
        client, "/account/two-factor", "/account/two-factor/start", current_password=PASSWORD
    )
    assert started.status_code == 200
    secret = hidden_fields(started, "/account/two-factor/confirm")["secret"]
    assert secret.replace(" ", "") in started.text.replace(" ", "")
    assert "otpauth://totp/" in started.text
    fields = hidden_fields(started, "/account/two-factor/confirm")
    wrong = client.post("/account/two-factor/confirm", data={**fields, "code": "000000"})
    if code(secret) != "000000":
        assert wrong.status_code == 400
        assert "not correct" in error_at(wrong, "code")
        assert secret in wrong.text  # shown again, to type in
        assert ("mfa_failed", "enrolment") in events(user_id)
    confirmed = client.post("/account/two-factor/confirm", data={**fields, "code": code(secret)})
    assert confirmed.status_code == 200, confirmed.text
    codes = re.findall(r"<li><code>([^<]+)</code></li>", confirmed.text)
    assert len(codes) == 10
    assert "mfa_enrolment_started" in kinds(user_id)
    assert ("mfa_enabled", "totp") in events(user_id)
    assert "Recovery codes left: 10 of 10." in client.get("/account/two-factor").text
    # New recovery codes, then the app removed; each with the password.
    renewed = submit(
        client,
        "/account/two-factor",
        "/account/two-factor/recovery-codes",
        current_password=PASSWORD,
    )
    assert renewed.status_code == 200
    new_codes = re.findall(r"<li><code>([^<]+)</code></li>", renewed.text)
    assert len(new_codes) == 10
    assert not set(new_codes) & set(codes)
    assert "recovery_codes_regenerated" in kinds(user_id)
    # Removing is the same form's other button (formaction), with the same password field.
    fields = hidden_fields(client.get("/account/two-factor"), "/account/two-factor/recovery-codes")
    assert 'formaction="/account/two-factor/remove"' in client.get("/account/two-factor").text
    kept = client.post("/account/two-factor/remove", data={**fields, "current_password": "nope"})
    assert kept.status_code == 403
    assert error_at(kept, "current_password") == "The current password is not correct."
    removed = client.post(
        "/account/two-factor/remove",
        data={**fields, "current_password": PASSWORD},
        follow_redirects=False,
    )
    assert removed.status_code == 303
    assert removed.headers["location"] == "/account/two-factor?done=totp-removed"
    assert ("mfa_removed", "totp") in events(user_id)
    with SessionLocal() as session:
        assert session.scalar(select(func.count()).select_from(MfaFactor)) == 0


def test_a_wrong_password_starts_no_enrolment(client: Any) -> None:
    user_id = sign_in(client)
    assert user_id is not None
    answer = submit(
        client, "/account/two-factor", "/account/two-factor/start", current_password="nope"
    )
    assert answer.status_code == 403
    assert error_at(answer, "current_password") == "The current password is not correct."
    assert "mfa_enrolment_started" not in kinds(user_id)
    empty = submit(client, "/account/two-factor", "/account/two-factor/start", current_password="")
    assert empty.status_code == 422
    assert error_at(empty, "current_password") == "Enter your current password."


def test_confirming_with_no_enrolment_waiting_is_refused(client: Any) -> None:
    sign_in(client)
    page = client.get("/account/two-factor")
    fields = hidden_fields(page, "/account/two-factor/start")
    answer = client.post("/account/two-factor/confirm", data={**fields, "code": "123456"})
    assert answer.status_code == 409
    assert "start again" in form_error(answer)


def test_an_admin_who_must_enrol_may_only_enrol(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """USERBASE_REQUIRE_MFA_FOR_ADMINS: as over the API, an admin without a second factor
    may set one up and do nothing else."""
    monkeypatch.setattr(get_settings(), "require_mfa_for_admins", True)
    user_id = create_user(1)
    make_admin(user_id)
    sign_in(client, 1, new=False)
    refused = submit(client, "/account/", "/account/name", display_name="Ada")
    assert refused.status_code == 403
    assert "Admins must have a second factor" in form_error(refused)
    started = submit(
        client, "/account/two-factor", "/account/two-factor/start", current_password=PASSWORD
    )
    assert started.status_code == 200


# Deleting the account.


def test_deleting_the_account_with_the_password(client: Any) -> None:
    user_id = sign_in(client)
    assert user_id is not None
    kept = submit(client, "/account/delete", "/account/delete", current_password="nope")
    assert kept.status_code == 403
    assert error_at(kept, "current_password") == "The current password is not correct."
    assert user_row(user_id) is not None
    answer = submit(client, "/account/delete", "/account/delete", current_password=PASSWORD)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/account/deleted"
    assert user_row(user_id) is None
    assert "user_deleted" in kinds(user_id)
    assert client.get("/account/deleted").status_code == 200
    assert client.get("/account/", follow_redirects=False).headers["location"] == SIGN_IN


def test_the_last_admin_cannot_delete_their_account(client: Any) -> None:
    user_id = create_user(1)
    make_admin(user_id)
    sign_in(client, 1, new=False)
    answer = submit(client, "/account/delete", "/account/delete", current_password=PASSWORD)
    assert answer.status_code == 409
    assert "last active admin" in form_error(answer)
    assert user_row(user_id) is not None
    assert "user_deleted" not in kinds(user_id)


@pytest.mark.parametrize(
    ("header", "device"),
    [
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36",
            "Chrome on Linux",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "Safari on iPhone",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (Android 15; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
            "Firefox on Android",
        ),
        ("curl/8.11.0", "curl"),
        ("testclient", "Unknown device"),
        (None, "Unknown device"),
    ],
)
def test_a_sign_ins_device_in_a_few_words(header: str | None, device: str) -> None:
    assert user_agents.describe(header) == device

"""Look-alike addresses: mixed scripts are flagged, and the user an address imitates is found."""

import unicodedata
from typing import Any

import pytest

from tests.accounts import bearer, sign_up, signed_in_user
from tests.conftest import new_user
from userbase.database import SessionLocal
from userbase.lookalikes import AddressCheck, check_address, confusable_key, is_mixed_script
from userbase.users import insert_user

CYRILLIC_A = "\u0430"
CYRILLIC_O = "\u043e"
GREEK_RHO = "\u03c1"


def add_user(n: str, email: str) -> int:
    with SessionLocal.begin() as db:
        return insert_user(
            db, username=new_user(n)["username"], email=email, password_hash="x", display_name=None
        ).id


def check(address: str, user_id: int | None = None) -> AddressCheck:
    with SessionLocal() as db:
        return check_address(db, address, user_id=user_id)


@pytest.mark.parametrize(
    "address",
    [
        f"p{CYRILLIC_A}ypal@example.com",
        f"{GREEK_RHO}aypal@example.com",
        f"ada@ex{CYRILLIC_A}mple.com",  # a domain label counts too
    ],
)
def test_an_address_mixing_latin_with_a_look_alike_script_is_mixed_script(address: str) -> None:
    assert is_mixed_script(address)


@pytest.mark.parametrize(
    "address",
    [
        "paypal@example.com",
        "o'brien.2024+news@example.com",  # digits and punctuation belong to every script
        "josé.müller@example.com",
        "дмитрий@example.com",  # Cyrillic throughout, at a Latin domain
        "山田たろう@example.jp",  # Han with Hiragana: one writing system (Japanese)
        "ελένη@example.gr",
    ],
)
def test_an_address_in_one_script_is_not_mixed_script(address: str) -> None:
    assert not is_mixed_script(address)


def test_look_alikes_share_a_key_whatever_their_letter_case() -> None:
    key = confusable_key("paypal@example.com")
    assert confusable_key(f"P{CYRILLIC_A}YPAL@EXAMPLE.COM") == key
    assert confusable_key("paypa1@example.com") == key  # digit one for l
    assert confusable_key("PAYPAI@example.com") == key  # capital I for l
    assert confusable_key("paypai@example.com") != key  # a small i is not an l


def test_the_key_is_its_own_key_for_every_character() -> None:
    # Skeleton and case folding together reach a fixed point: a stored key can be compared.
    for code_point in range(0x30000):
        character = chr(code_point)
        if unicodedata.category(character) == "Cs":
            continue
        key = confusable_key(character)
        assert confusable_key(key) == key, f"U+{code_point:04X}"


def test_an_impostor_with_a_cyrillic_letter_is_a_lookalike_of_the_original() -> None:
    original = add_user("orig", "paypal@example.com")
    impostor_address = f"p{CYRILLIC_A}yp{CYRILLIC_A}l@example.com"
    impostor = add_user("fake", impostor_address)

    assert check(impostor_address, impostor) == AddressCheck(
        mixed_script=True, lookalike_of=original
    )


def test_an_impostor_in_plain_ascii_is_found_too() -> None:
    original = add_user("orig", "Tom.Miller@example.com")
    impostor = add_user("fake", "tom.mi11er@example.com")

    assert check("tom.mi11er@example.com", impostor) == AddressCheck(False, original)
    # rn for m, the other way round: the original's side finds this one.
    rn = add_user("rn", "tom.rniller@example.com")
    assert check("Tom.Miller@example.com", original).lookalike_of in (impostor, rn)


def test_an_impostor_changing_a_long_address_in_one_place_is_found() -> None:
    # Many l, o and m: their ASCII spellings alone would pass the limit.
    address = "lol.molly.mallory.collins@example.com"
    original = add_user("orig", address)

    impostor = address.replace("mallory", f"mall{CYRILLIC_O}ry")
    assert check(impostor) == AddressCheck(True, original)


def test_an_address_is_not_its_own_lookalike_nor_one_of_a_different_word() -> None:
    ada = add_user("ada", "ada@example.com")
    add_user("bob", "bob@example.com")

    assert check("ada@example.com", ada) == AddressCheck(False, None)
    assert check("adam@example.com") == AddressCheck(False, None)
    assert check(f"{CYRILLIC_A}d{CYRILLIC_A}@example.org") == AddressCheck(True, None)


def test_an_admin_reading_an_impostor_sees_both_flags_and_others_see_neither(
    client: Any,
) -> None:
    original = sign_up(client, "orig", email="paypal@example.com")
    impostor = sign_up(client, "fake", email=f"p{CYRILLIC_A}ypal@example.com")
    _, admin = signed_in_user(client, "boss", admin=True)

    flagged = client.get(f"/users/{impostor['id']}", headers=bearer(admin)).json()
    plain = client.get(f"/users/{original['id']}", headers=bearer(admin)).json()
    public = client.get(f"/users/{impostor['id']}").json()

    assert (flagged["email_mixed_script"], flagged["email_lookalike_of"]) == (True, original["id"])
    assert (plain["email_mixed_script"], plain["email_lookalike_of"]) == (False, None)
    assert "email_mixed_script" not in public

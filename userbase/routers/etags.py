"""ETags from the row's version column, and If-Match preconditions (RFC 9110 section 13.1.1)."""

import re

_STRONG_TAG = re.compile(r'^"(\d{1,18})"$')


def etag_for(version: int) -> str:
    return f'"{version}"'


def versions_in(if_match: str | None) -> frozenset[int] | None:
    """The versions an If-Match header accepts, or None when any will do (absent, or `*`).

    If-Match uses the strong comparison: a weak validator (W/"...") never matches, nor does a
    tag that is not one of ours.
    """
    if if_match is None:
        return None
    candidates = [part.strip() for part in if_match.split(",")]
    if "*" in candidates:
        return None
    return frozenset(int(m.group(1)) for c in candidates if (m := _STRONG_TAG.match(c)))

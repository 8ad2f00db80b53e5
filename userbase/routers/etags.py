"""ETags from the row's version column, and If-Match preconditions (RFC 9110 section 13.1.1)."""


class PreconditionFailed(Exception):
    """If-Match named a version that is no longer current."""

    def __init__(self) -> None:
        super().__init__("The user was changed since you read it: fetch it again and retry.")


def etag_for(version: int) -> str:
    return f'"{version}"'


def ensure_if_match(header: str | None, version: int) -> None:
    """Raise PreconditionFailed unless If-Match is absent, `*`, or lists the current ETag.

    If-Match uses the strong comparison: a weak validator (W/"...") never matches.
    """
    if header is None:
        return
    candidates = [part.strip() for part in header.split(",")]
    if "*" in candidates or etag_for(version) in candidates:
        return
    raise PreconditionFailed

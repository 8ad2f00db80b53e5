"""Refusal: the base of domain refusals whose unit of work is still committed.

A wrong password, a throttled sign-in or a doomed sign-up is refused, but what the refusal
counted (a failure in the throttle) and recorded (an audit event) must outlive it: get_db
commits the request's unit of work, then lets the exception reach its error handler. It lives
apart, importing nothing, so the domain and database.py can both use it.
"""


class Refusal(Exception):
    """A refusal whose unit of work get_db still commits."""

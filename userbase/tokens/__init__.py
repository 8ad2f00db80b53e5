"""Tokens other services can check: signing keys, OAuth clients, JWT access tokens, refresh
tokens (docs/tokens.md). One module per idea, as django-allauth's subpackages are."""

"""Sign in with userbase: an OpenID Connect provider with hosted pages (docs/oidc.md).

Authlib's server classes validate the authorization request and the code grant (server.py);
userbase keeps its own rules in charge: the sign-in throttle and audit (auth.py), the unit of
work, the client registry and the tokens of userbase/tokens/. No HTTP here: routers/oidc.py
and routers/oidc_pages.py answer for these modules.
"""

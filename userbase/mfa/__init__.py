"""Second factors: TOTP authenticators (RFC 6238), passkeys (WebAuthn), recovery codes, and the
sign-in step that asks for one (docs/mfa.md). No HTTP here.

- totp.py: the secret, its otpauth:// URI, a code accepted at most once;
- recovery_codes.py: ten single-use codes, stored as digests;
- factors.py: the workflows on a user's factors (enrol, confirm, new codes, remove, an admin's
  reset) and the admins rule (USERBASE_REQUIRE_MFA_FOR_ADMINS);
- passkeys.py: passkeys (WebAuthn, py_webauthn), and passkey_challenges.py, their single-use
  challenges;
- challenges.py: a sign-in waiting for its second factor (the `mfa_token`).

auth.sign_in calls challenges.begin when the user has a factor and raises
challenges.SecondFactorRequired; auth.complete_sign_in finishes the sign-in with a code.
"""

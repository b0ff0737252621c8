"""Accounts: sign-in through OpenID Connect, roles, and who may do what."""

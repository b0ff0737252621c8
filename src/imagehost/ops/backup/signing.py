"""Telling a backup made here from one made by someone else: the manifest signed with BACKUP_SIGNING_KEY.

The manifest holds the SHA-256 of the dump and of every file, so its HMAC-SHA256 vouches for the
whole backup. The signature is a member of its own (`manifest.hmac`, just before the manifest).
Without the key nothing is signed or checked (as before). With it, a restore of a backup that is
unsigned (made before the key was set) or signed with another key is refused unless the operator
says `--trust`; so losing the key never makes a backup unrestorable.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE = "manifest.hmac"
# Bound to its purpose: the same key signing anything else never yields a manifest's signature.
_CONTEXT = b"imagehost-backup-manifest\0"

SIGNED, UNSIGNED, FOREIGN, NOT_CHECKED = "signed", "unsigned", "foreign", "not checked"


def sign(key: str, manifest: bytes) -> str:
    return hmac.new(key.encode(), _CONTEXT + manifest, hashlib.sha256).hexdigest()


def judge(key: str, manifest: bytes, signature: str | None) -> str:
    """SIGNED (by this key), UNSIGNED, FOREIGN (another key, or the manifest changed) or NOT_CHECKED (no key)."""
    if not key:
        return NOT_CHECKED
    if signature is None:
        return UNSIGNED
    return SIGNED if hmac.compare_digest(sign(key, manifest), signature.strip()) else FOREIGN


def describe(status: str, *, trusted: bool) -> str:
    """One line for the restore's report."""
    if status == SIGNED:
        return "signed with this installation's BACKUP_SIGNING_KEY"
    if status == NOT_CHECKED:
        return "not checked (BACKUP_SIGNING_KEY is not set)"
    what = "not signed" if status == UNSIGNED else "signed with another key (or its manifest was changed)"
    return f"{what}: restored because of --trust" if trusted else what

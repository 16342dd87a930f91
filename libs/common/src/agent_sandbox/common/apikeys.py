"""API keys: ``asb_`` + 40 hex characters, stored only as SHA-256 hashes.

The E2B SDK (some versions) checks that a key starts with ``e2b_``; the same
secret is therefore accepted as ``e2b_<hex>``. Hashing is over the 40-hex
secret alone, so both spellings map to the same stored hash. The hash prefix
(first 16 hex chars of the hash, as in the Secret name) names the key without revealing it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_PREFIX = "asb_"
E2B_KEY_PREFIX = "e2b_"
SECRET_HEX_LEN = 40
HASH_PREFIX_LEN = 16

_KEY_RE = re.compile(r"^(asb|e2b)_([0-9a-f]{40})$")


class InvalidApiKey(ValueError):
    """The string is not shaped like an API key."""


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_hex(SECRET_HEX_LEN // 2)


def key_secret(key: str) -> str:
    """The 40-hex secret of a key in either spelling; raises :class:`InvalidApiKey`."""
    m = _KEY_RE.match(key.strip().lower()) if isinstance(key, str) else None
    if not m:
        raise InvalidApiKey("API key must be 'asb_' (or 'e2b_') followed by 40 hex characters")
    return m.group(2)


def hash_api_key(key: str) -> str:
    """SHA-256 hex digest of the key's secret (prefix-independent)."""
    return hashlib.sha256(key_secret(key).encode()).hexdigest()


def hash_prefix(token_hash: str) -> str:
    return token_hash[:HASH_PREFIX_LEN]


def as_e2b_key(key: str) -> str:
    return E2B_KEY_PREFIX + key_secret(key)


def verify_api_key(key: str, token_hash: str) -> bool:
    try:
        candidate = hash_api_key(key)
    except InvalidApiKey:
        return False
    return hmac.compare_digest(candidate, token_hash)

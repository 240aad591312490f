"""API keys: high-entropy secrets shown once, stored and looked up by SHA-256.

A fast hash is right here (unlike passwords): the secret has 256 bits of entropy, so there is
nothing to brute-force, and the gateway looks keys up on every request.
"""

from __future__ import annotations

import hashlib
import secrets

API_KEY_PREFIX = "llm_"


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """How any such secret is stored (API keys, mailed single-use tokens)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_api_key(key: str) -> str:
    return hash_secret(key)


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(API_KEY_PREFIX)

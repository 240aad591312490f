"""Redis keys through which accounts revokes access and the gateway checks it per request.

The database stays the source of truth; these keys make a ban or a logout take effect at once
without a database query on every request.
"""

from __future__ import annotations


def banned_user_key(user_id: str) -> str:
    return f"llmnet:auth:banned:{user_id}"


def revoked_family_key(family_id: str) -> str:
    """Set when a login's token family is revoked (logout, refresh reuse); access tokens carry
    their family in the `fam` claim."""
    return f"llmnet:auth:revoked-family:{family_id}"


def api_key_cache_key(key_hash: str) -> str:
    return f"llmnet:auth:api-key:{key_hash}"

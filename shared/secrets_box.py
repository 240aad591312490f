"""Encrypting secrets at rest (provider API keys) with Fernet, with key rotation.

The setting holds one or more comma-separated Fernet keys. The first key encrypts; every key
decrypts. To rotate: generate a key (`SecretBox.generate_key()`), put it first and keep the
old ones after it; once `SecretBox.rotate` has re-encrypted the stored tokens (or they have
all been rewritten), drop the old keys.

Fernet is AES-128-CBC with HMAC-SHA256 authentication: a token encrypted under a key that
is not configured, or tampered with, fails to decrypt with `SecretUndecryptable`, which the
caller maps to its own error (the secret has to be entered again; it is a server fault, not
a client's). Neither keys nor plaintexts ever appear in messages or reprs.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = ["SecretBox", "SecretUndecryptable"]


class SecretUndecryptable(Exception):
    """A token none of the configured keys can decrypt (wrong or removed key, or tampering)."""


class SecretBox:
    """Encrypts with the first of its keys and decrypts with any of them."""

    def __init__(self, keys: Sequence[str | bytes], *, setting: str = "the secret keys") -> None:
        if isinstance(keys, str | bytes):
            raise TypeError("keys must be a sequence of keys; use SecretBox.from_setting")
        if not keys:
            raise ValueError(
                f"{setting} has no keys: set it to one or more comma-separated Fernet keys "
                "(generate one with SecretBox.generate_key())."
            )
        fernets: list[Fernet] = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip()))
            except (ValueError, TypeError):
                # The key itself stays out of the message: it is a secret.
                raise ValueError(
                    f"Key #{position} of {len(keys)} in {setting} is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes, as SecretBox.generate_key() makes)."
                ) from None
        self._box = MultiFernet(fernets)
        self.key_count = len(fernets)

    @classmethod
    def from_setting(cls, value: str, *, setting: str = "the secret keys") -> SecretBox:
        """Build from comma-separated keys (blanks ignored); `setting` names it in errors."""
        return cls([key for key in (k.strip() for k in value.split(",")) if key], setting=setting)

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode("ascii")

    def encrypt(self, plaintext: str) -> str:
        """A fresh token (random IV, timestamp) each call, even for the same plaintext."""
        return self._box.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._box.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise SecretUndecryptable(
                "The stored secret cannot be decrypted with any configured key (the key that "
                "encrypted it was changed or removed, or the token is corrupt)."
            ) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt a token under the first key (after a new key was put first)."""
        try:
            return self._box.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise SecretUndecryptable(
                "The stored secret cannot be re-encrypted: no configured key decrypts it."
            ) from None

    def __repr__(self) -> str:
        return f"SecretBox(keys={self.key_count})"

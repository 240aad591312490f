"""JWTs: the only module that creates or reads them.

RS256 only: `ALLOWED_ALGORITHMS` is passed on every decode, so `alg: none` and HS256 tokens
signed with the public key (key confusion) are rejected. exp, iat, sub, iss, aud and jti are
required, and `typ` separates access from refresh tokens.

Exports: TokenType, TokenClaims, TokenSigner (holds the private key; accounts only),
TokenVerifier (public keys from a JWKS), InvalidToken, UnknownSigningKey, public_jwk.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from jose import ExpiredSignatureError, JWTError, jwk, jwt
from jose.backends.base import Key

from shared.errors import Unauthorized

ALGORITHM = "RS256"
ALLOWED_ALGORITHMS = [ALGORITHM]
_REQUIRED = ("exp", "iat", "sub", "iss", "aud", "jti")


class TokenType(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


class InvalidToken(Unauthorized):
    code = "invalid_token"


class UnknownSigningKey(InvalidToken):
    """Signed with a key id this verifier does not have (perhaps newer than its JWKS)."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    token_id: str
    token_type: TokenType
    issued_at: int
    expires_at: int
    extra: dict[str, Any] = field(default_factory=dict)


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(public_key: RSAPublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    members = {"e": _b64(numbers.e), "kty": "RSA", "n": _b64(numbers.n)}
    # RFC 7638 thumbprint as the key id: stable for a key, different after rotation.
    thumbprint = hashlib.sha256(json.dumps(members, separators=(",", ":")).encode()).digest()
    kid = base64.urlsafe_b64encode(thumbprint).rstrip(b"=").decode()
    return {**members, "kid": kid, "alg": ALGORITHM, "use": "sig"}


class TokenSigner:
    """Issues tokens with the platform's private key."""

    def __init__(self, private_key_pem: bytes, *, issuer: str, audience: str) -> None:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("The JWT signing key must be an RSA private key.")
        # Parsed once: jose would re-parse (and re-validate) a PEM on every signature.
        self._signing_key = jwk.construct(private_key_pem.decode(), algorithm=ALGORITHM)
        self.jwk = public_jwk(key.public_key())
        self.issuer = issuer
        self.audience = audience
        self._verifier = TokenVerifier(self.jwks(), issuer=issuer, audience=audience)

    def issue(
        self,
        subject: str,
        token_type: TokenType,
        ttl_seconds: int,
        *,
        token_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[str, TokenClaims]:
        now = int(time.time())
        claims = TokenClaims(
            subject=subject,
            token_id=token_id or uuid.uuid4().hex,
            token_type=token_type,
            issued_at=now,
            expires_at=now + ttl_seconds,
            extra=dict(extra or {}),
        )
        payload = {
            **claims.extra,
            "sub": subject,
            "jti": claims.token_id,
            "typ": token_type.value,
            "iat": now,
            "exp": claims.expires_at,
            "iss": self.issuer,
            "aud": self.audience,
        }
        token = jwt.encode(
            payload, self._signing_key, algorithm=ALGORITHM, headers={"kid": self.jwk["kid"]}
        )
        return token, claims

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [self.jwk]}

    def verifier(self) -> TokenVerifier:
        return self._verifier


class TokenVerifier:
    """Verifies tokens against the public keys of a JWKS document."""

    def __init__(self, jwks: dict[str, Any], *, issuer: str, audience: str) -> None:
        self._keys: dict[str, Key] = {
            k["kid"]: jwk.construct(k, algorithm=ALGORITHM)
            for k in jwks.get("keys", [])
            if k.get("kty") == "RSA" and "kid" in k
        }
        self.issuer = issuer
        self.audience = audience

    def verify(self, token: str, expected_type: TokenType) -> TokenClaims:
        try:
            header = jwt.get_unverified_header(token)
        except JWTError as exc:
            raise InvalidToken("The token is malformed.") from exc
        key = self._keys.get(str(header.get("kid")))
        if key is None:
            raise UnknownSigningKey("The token was not signed by a key this platform knows.")
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=ALLOWED_ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={f"require_{name}": True for name in _REQUIRED},
            )
        except ExpiredSignatureError as exc:
            raise InvalidToken("The token has expired; refresh it.", code="token_expired") from exc
        except JWTError as exc:
            raise InvalidToken(f"The token is invalid: {exc}.") from exc
        if payload.get("typ") != expected_type.value:
            raise InvalidToken(f"Expected an {expected_type.value} token.", code="wrong_token_type")
        extra = {k: v for k, v in payload.items() if k not in {*_REQUIRED, "typ"}}
        return TokenClaims(
            subject=str(payload["sub"]),
            token_id=str(payload["jti"]),
            token_type=expected_type,
            issued_at=int(payload["iat"]),
            expires_at=int(payload["exp"]),
            extra=extra,
        )

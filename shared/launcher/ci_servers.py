"""Start embedded PostgreSQL and Redis for a test run on a machine that has neither.

`python -m shared.launcher.ci_servers DATA_DIR` prints shell `export` lines for
TEST_DATABASE_URL and TEST_REDIS_URL; the servers keep running after it exits.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from shared.launcher.embedded import start_postgres, start_redis

POSTGRES_PORT = 55433
REDIS_PORT = 56380


def main(data_dir: Path) -> None:
    postgres = start_postgres(data_dir, port=POSTGRES_PORT)
    redis_server = start_redis(data_dir, port=REDIS_PORT)
    admin_url = postgres.dsn.rsplit("/", 1)[0] + "/postgres"
    print(f"export TEST_DATABASE_URL={shlex.quote(admin_url)}")
    print(f"export TEST_REDIS_URL={shlex.quote(redis_server.url.rsplit('/', 1)[0] + '/15')}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

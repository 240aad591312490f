"""A real S3-compatible server on loopback for tests: moto's standalone server.

Exports moto_s3_server(), a context manager that starts moto.server.ThreadedMotoServer on
127.0.0.1 at a free port, yields its "host:port" endpoint, and stops it. moto keeps its state
in this process and accepts any credentials, so tests isolate themselves by using a fresh
bucket name each rather than by restarting the server.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from moto.server import ThreadedMotoServer

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"
REGION = "us-east-1"


@contextlib.contextmanager
def moto_s3_server() -> Iterator[str]:
    # Port 0: the OS picks a free port at bind time, so parallel runs never collide.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    # werkzeug logs every request to stderr; a failing test's report should show ours.
    access_log = logging.getLogger("werkzeug")
    level = access_log.level
    access_log.setLevel(logging.WARNING)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"{host}:{port}"
    finally:
        server.stop()
        access_log.setLevel(level)

"""`python -m tests.benchmarks`: run every benchmark and print its table and ratios."""

from __future__ import annotations

import sys

import uvloop

from tests.benchmarks import (
    chunked_prefill,
    conversations_list,
    conversations_stream,
    feed,
    fine_tune,
    gateway,
    inference,
    load,
    prefix_cache,
    upload,
)
from tests.benchmarks.harness import database_answers


async def main() -> int:
    if not await database_answers():
        print("benchmarks need PostgreSQL (TEST_DATABASE_URL) and Redis (TEST_REDIS_URL)")
        return 2
    for benchmark in (
        gateway,
        upload,
        inference,
        chunked_prefill,
        prefix_cache,
        conversations_list,
        conversations_stream,
        feed,
        fine_tune,
        load,
    ):
        print("\n".join(await benchmark.run()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(uvloop.run(main()))

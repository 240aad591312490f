"""`storable`: generated text that PostgreSQL would refuse is stored with U+FFFD in its place."""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.fields import storable

# What a random model or a provider's JSON may produce: a NUL, then half a surrogate pair.
GENERATED = "a\x00b \ud800c"


def test_what_postgresql_refuses_becomes_the_replacement_character() -> None:
    assert storable(GENERATED) == "a\ufffdb \ufffdc"
    assert storable("plain text, ünïcode, 🙂") == "plain text, ünïcode, 🙂"


async def test_the_result_is_stored_as_text_and_jsonb(engine: AsyncEngine) -> None:
    kept = storable(GENERATED)
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT CAST(:t AS text), CAST(:j AS jsonb)"),
                {"t": kept, "j": json.dumps({"text": kept})},
            )
        ).one()
    assert row[0] == kept
    assert row[1] == {"text": kept}

"""Dependencies of the accounts service, declared once.

`AccountsContext` bundles the per-process resources the domain services need (settings,
token signer, password hasher, Redis, a sessionmaker for work that must commit on its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.accounts.config import AccountsSettings
from shared.auth.passwords import PasswordHasher
from shared.auth.tokens import TokenSigner


@dataclass(frozen=True, slots=True)
class AccountsContext:
    settings: AccountsSettings
    signer: TokenSigner
    hasher: PasswordHasher
    redis: Redis
    sessionmaker: async_sessionmaker[AsyncSession]


async def _context(request: Request) -> AccountsContext:
    context: AccountsContext = request.app.state.accounts
    return context


ContextDep = Annotated[AccountsContext, Depends(_context)]

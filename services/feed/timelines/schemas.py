"""What the timeline endpoints answer."""

from __future__ import annotations

import uuid

from pydantic import BaseModel

from services.feed.posts.schemas import PostRead
from shared.pagination import Page

TimelinePage = Page[PostRead]


class PostCounts(BaseModel):
    """A live update of a post's counts (the live feed's `counts` event)."""

    post_id: uuid.UUID
    like_count: int
    reply_count: int


class PostRemoved(BaseModel):
    """A post on the home timeline was deleted (the live feed's `removed` event)."""

    post_id: uuid.UUID

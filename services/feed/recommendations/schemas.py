"""What the recommendations endpoints answer: each item with its score and a short reason."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from services.feed.posts.schemas import PostRead

Reason = Field(description="Why it is recommended, in a short plain-text sentence.")


class RecommendedModel(BaseModel):
    id: uuid.UUID
    ref: str
    owner: str
    score: float
    reason: str = Reason


class RecommendedPost(BaseModel):
    post: PostRead
    score: float
    reason: str = Reason


class RecommendedPerson(BaseModel):
    id: uuid.UUID
    username: str
    score: float
    reason: str = Reason


class Recommendations(BaseModel):
    models: list[RecommendedModel] = Field(description="Models to try.")
    people: list[RecommendedPerson] = Field(description="People to follow.")
    posts: list[RecommendedPost] = Field(description="Posts to read.")
    personalized: bool = Field(
        description="False when you have no likes, follows or usage yet: popular picks."
    )


class SimilarModels(BaseModel):
    items: list[RecommendedModel]


class SimilarPosts(BaseModel):
    items: list[RecommendedPost]

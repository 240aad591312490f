"""The feed's root router."""

from fastapi import APIRouter

from services.feed.likes.routes import router as likes_router
from services.feed.posts.routes import router as posts_router

router = APIRouter()
router.include_router(posts_router)
router.include_router(likes_router)

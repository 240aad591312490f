"""The feed's root router."""

from fastapi import APIRouter

from services.feed.follows.routes import router as follows_router
from services.feed.likes.routes import router as likes_router
from services.feed.notifications.routes import router as notifications_router
from services.feed.posts.routes import router as posts_router
from services.feed.recommendations.routes import router as recommendations_router
from services.feed.schedules.routes import router as schedules_router
from services.feed.timelines.routes import router as timelines_router
from services.feed.timelines.websocket import router as live_socket_router

router = APIRouter()
router.include_router(posts_router)
router.include_router(likes_router)
router.include_router(follows_router)
router.include_router(timelines_router)
router.include_router(live_socket_router)
router.include_router(schedules_router)
router.include_router(notifications_router)
router.include_router(recommendations_router)

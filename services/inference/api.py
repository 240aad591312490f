"""The inference service's root router."""

from fastapi import APIRouter

from services.inference.openai.routes import router as openai_router
from services.inference.usage.routes import router as usage_router

router = APIRouter()
router.include_router(openai_router)
router.include_router(usage_router)

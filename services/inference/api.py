"""The inference service's root router."""

from fastapi import APIRouter

from services.inference.activity.routes import admin_router as admin_activity_router
from services.inference.activity.routes import router as activity_router
from services.inference.attachments.routes import router as attachments_router
from services.inference.conversations.routes import router as conversations_router
from services.inference.engine_info.routes import router as engine_info_router
from services.inference.evaluations.internal_routes import router as evaluations_internal_router
from services.inference.evaluations.routes import router as evaluations_router
from services.inference.messages.routes import router as messages_router
from services.inference.moderation.routes import router as moderation_router
from services.inference.openai.routes import router as openai_router
from services.inference.prompt_lab.routes import router as prompt_lab_router
from services.inference.prompt_templates.routes import router as prompt_templates_router
from services.inference.usage.routes import router as usage_router

router = APIRouter()
router.include_router(openai_router)
router.include_router(usage_router)
# Before the conversations' routes: `/feedback/summary` is not a conversation id.
router.include_router(messages_router)
router.include_router(conversations_router)
router.include_router(attachments_router)
router.include_router(prompt_templates_router)
router.include_router(activity_router)
router.include_router(admin_activity_router)
router.include_router(moderation_router)
router.include_router(engine_info_router)
router.include_router(evaluations_router)
router.include_router(evaluations_internal_router)
router.include_router(prompt_lab_router)

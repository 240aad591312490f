"""The model hub's root router."""

from fastapi import APIRouter

from services.models_hub.catalog.routes import router as catalog_router
from services.models_hub.fine_tunes.routes import router as fine_tunes_router
from services.models_hub.internal.routes import router as internal_router
from services.models_hub.providers.routes import router as providers_router
from services.models_hub.versions.routes import router as versions_router

router = APIRouter()
router.include_router(catalog_router)
router.include_router(versions_router)
router.include_router(providers_router)
router.include_router(fine_tunes_router)
router.include_router(internal_router)

"""The accounts service's root router."""

from fastapi import APIRouter

from services.accounts.admin.routes import router as admin_router
from services.accounts.api_keys.routes import router as api_keys_router
from services.accounts.auth.routes import router as auth_router
from services.accounts.internal.routes import router as internal_router
from services.accounts.users.routes import router as users_router

router = APIRouter()
router.include_router(auth_router)
# Before users: /users/me/api-keys must not be taken for a username's sub-resource.
router.include_router(api_keys_router)
router.include_router(users_router)
router.include_router(admin_router)
router.include_router(internal_router)

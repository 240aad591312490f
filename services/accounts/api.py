"""The accounts service's root router."""

from fastapi import APIRouter, Depends

from services.accounts.admin.routes import router as admin_router
from services.accounts.api_keys.routes import router as api_keys_router
from services.accounts.auth.routes import router as auth_router
from services.accounts.internal.routes import router as internal_router
from services.accounts.recovery.routes import router as recovery_router
from services.accounts.recovery.verified import require_verified_email
from services.accounts.users.routes import router as users_router

# REQUIRE_VERIFIED_EMAIL: creating API keys and following people (each router's only POSTs).
_VERIFIED_POSTS = [Depends(require_verified_email("POST"))]

router = APIRouter()
router.include_router(auth_router)
router.include_router(recovery_router)
# Before users: /users/me/api-keys must not be taken for a username's sub-resource.
router.include_router(api_keys_router, dependencies=_VERIFIED_POSTS)
router.include_router(users_router, dependencies=_VERIFIED_POSTS)
router.include_router(admin_router)
router.include_router(internal_router)

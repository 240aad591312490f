"""Who may see, use and manage a model: the one rule every service applies.

Public and unlisted models can be seen and used by anyone (unlisted ones are just not
listed); private ones only by their owner, admins and users granted access. To everyone else
a private model does not exist: callers answer 404, never 403.
"""

from __future__ import annotations

from services.models_hub.models import GrantLevel, Model, ModelAccessGrant, Visibility
from shared.auth.identity import Identity


def can_use(model: Model, viewer: Identity | None, grant: ModelAccessGrant | None) -> bool:
    if model.visibility != Visibility.PRIVATE:
        return True
    if viewer is None:
        return False
    return viewer.is_admin or viewer.user_id == model.owner_id or grant is not None


def can_manage(model: Model, viewer: Identity | None, grant: ModelAccessGrant | None) -> bool:
    if viewer is None:
        return False
    if viewer.is_admin or viewer.user_id == model.owner_id:
        return True
    return grant is not None and grant.level == GrantLevel.MANAGE


def access_level(
    model: Model, viewer: Identity | None, grant: ModelAccessGrant | None
) -> GrantLevel | None:
    """What the viewer may do with the model (None: it does not exist for them)."""
    if can_manage(model, viewer, grant):
        return GrantLevel.MANAGE
    return GrantLevel.USE if can_use(model, viewer, grant) else None

"""Every write to teams, applications, memberships and invitations (one transaction each, one
audit row each). Import from here; the submodules are an implementation detail."""

from apps.teams.services.invitations import (
    INVITATION_PATH,
    CreatedInvitation,
    hash_invitation_token,
    invitation_accept,
    invitation_create,
    invitation_decline,
    invitation_revoke,
)
from apps.teams.services.members import (
    application_override_remove,
    application_override_set,
    member_leave,
    member_remove,
    member_role_change,
)
from apps.teams.services.teams import (
    application_create,
    application_delete,
    application_update,
    team_create,
    team_delete,
    team_update,
)

__all__ = [
    "INVITATION_PATH",
    "CreatedInvitation",
    "application_create",
    "application_delete",
    "application_override_remove",
    "application_override_set",
    "application_update",
    "hash_invitation_token",
    "invitation_accept",
    "invitation_create",
    "invitation_decline",
    "invitation_revoke",
    "member_leave",
    "member_remove",
    "member_role_change",
    "team_create",
    "team_delete",
    "team_update",
]

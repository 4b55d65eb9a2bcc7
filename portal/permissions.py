"""What each role may do in an organisation: the one table (action -> the least role allowed to do it).

viewer < developer < admin < owner. Viewers see but change nothing; developers manage keys and the signing
secret; admins also manage members and the organisation's settings; owners also manage billing and may delete
the organisation. Views ask `role_allows` (through portal.access.organization_view); nothing else decides.
"""

from __future__ import annotations

from enum import StrEnum

from tenants.models import Membership

Role = Membership.Role

# Lowest first.
ROLE_ORDER: tuple[str, ...] = (Role.VIEWER, Role.DEVELOPER, Role.ADMIN, Role.OWNER)


class Action(StrEnum):
    VIEW = "view"
    KEYS_MANAGE = "keys.manage"
    SIGNING_SECRET_REVEAL = "signing_secret.reveal"  # noqa: S105 - an action name
    SIGNING_SECRET_ROTATE = "signing_secret.rotate"  # noqa: S105 - an action name
    TEST_SEND = "test.send"
    SUBSCRIBERS_ERASE = "subscribers.erase"
    MEMBERS_MANAGE = "members.manage"
    SETTINGS_CHANGE = "settings.change"
    BILLING_MANAGE = "billing.manage"
    ORGANIZATION_DELETE = "organization.delete"


MINIMUM_ROLE: dict[Action, str] = {
    Action.VIEW: Role.VIEWER,
    Action.KEYS_MANAGE: Role.DEVELOPER,
    Action.SIGNING_SECRET_REVEAL: Role.DEVELOPER,
    Action.SIGNING_SECRET_ROTATE: Role.DEVELOPER,
    Action.TEST_SEND: Role.DEVELOPER,
    Action.SUBSCRIBERS_ERASE: Role.ADMIN,
    Action.MEMBERS_MANAGE: Role.ADMIN,
    Action.SETTINGS_CHANGE: Role.ADMIN,
    Action.BILLING_MANAGE: Role.OWNER,
    Action.ORGANIZATION_DELETE: Role.OWNER,
}


def role_rank(role: str) -> int:
    """The role's place in ROLE_ORDER; an unknown role ranks below every real one."""
    return ROLE_ORDER.index(role) if role in ROLE_ORDER else -1


def role_allows(role: str, action: Action) -> bool:
    """Whether `role` may do `action`."""
    return role_rank(role) >= role_rank(MINIMUM_ROLE[action])


def roles_assignable_by(role: str) -> list[str]:
    """The roles a member of `role` may give others: never above their own."""
    return [r for r in ROLE_ORDER if role_rank(r) <= role_rank(role)]


def may_manage_member(actor_role: str, target_role: str) -> bool:
    """Whether a member of `actor_role` may change or remove a member of `target_role` (never one above them)."""
    return role_allows(actor_role, Action.MEMBERS_MANAGE) and role_rank(target_role) <= role_rank(actor_role)

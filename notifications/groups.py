"""The one place channel-layer group names are built.

Names come from numeric ids only, so they are always valid for Channels
(ASCII letters, digits, `.`; far under 100 characters) whatever a customer
names its subscribers or topics, and every name is prefixed by its tenant.
"""

from __future__ import annotations


def subscriber_group(organization_id: int, subscriber_pk: int) -> str:
    return f"t{int(organization_id)}.s{int(subscriber_pk)}"


def topic_group(organization_id: int, topic_pk: int) -> str:
    return f"t{int(organization_id)}.topic{int(topic_pk)}"


def organization_group(organization_id: int) -> str:
    return f"t{int(organization_id)}.all"


def group_tenant(group: str) -> int:
    """The organisation id a group name belongs to."""
    prefix = group.split(".", 1)[0]
    if not prefix.startswith("t") or not prefix[1:].isdigit():
        raise ValueError(f"not a Herald group name: {group!r}")
    return int(prefix[1:])

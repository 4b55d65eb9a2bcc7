"""The hub (notifications.hub) subscribes its process to a group once: later sockets joining a group the process
already holds cost no channel-layer (Redis) call, so a reconnect storm of one organisation subscribes each
group once, not once per socket."""

from __future__ import annotations

import asyncio
from typing import Any

from channels.layers import get_channel_layer

from notifications.groups import organization_group, subscriber_group
from notifications.hub import Hub


class _Counting:
    """The real channel layer, its group_add calls counted."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.added: list[str] = []

    async def group_add(self, group: str, channel: str) -> None:
        self.added.append(group)
        await self.layer.group_add(group, channel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.layer, name)


class _Member:
    def __init__(self, organization_id: int) -> None:
        self.organization_id = organization_id


def test_a_group_the_process_holds_is_joined_without_a_subscribe() -> None:
    async def scenario() -> list[str]:
        layer = _Counting(get_channel_layer())
        the_hub = Hub(layer)
        members = [_Member(7) for _ in range(50)]
        try:
            # 50 sockets of organisation 7 at once: its group, and two subscribers' groups.
            await asyncio.gather(*(the_hub.join(organization_group(7), m) for m in members))  # type: ignore[arg-type]
            for index, member in enumerate(members):
                await the_hub.join(subscriber_group(7, index % 2), member)  # type: ignore[arg-type]
            assert len(the_hub.groups[organization_group(7)]) == 50
            return [group for group in layer.added if not group.startswith("herald.probe.")]
        finally:
            for task in (the_hub._task, the_hub._probe_task, the_hub._refresh_task):
                if task is not None:
                    task.cancel()
            for group in list(the_hub.groups):
                await layer.layer.group_discard(group, the_hub.channel_name)

    added = asyncio.run(scenario())
    assert sorted(added) == sorted([organization_group(7), subscriber_group(7, 0), subscriber_group(7, 1)])

"""Caps on sockets, counted by this process: per publishable key, per subscriber, unauthenticated per key and client
address, and a rate of new connections per client address. Over any of them the socket closes with 4429;
other keys, subscribers and addresses are unaffected. Each process counts its own sockets: with N processes
behind a balancer the caps are N times these (settings HERALD_WS_MAX_*)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Protocol

from django.conf import settings

from tenants.ratelimit import LocalBuckets


class SocketWatcher(Protocol):
    """Hears of authenticated sockets (billing records active subscribers and peak connections)."""

    def entered(self, organization_id: int, subscriber_pk: int, open_sockets: int) -> None:
        """A socket of the subscriber authenticated; the organisation has `open_sockets` in this process now."""


class SocketLimits:
    """The counters; touched only from the event loop, so plain dict operations."""

    def __init__(self) -> None:
        self.per_key: Counter[int] = Counter()
        self.per_subscriber: Counter[tuple[int, int]] = Counter()
        self.per_organization: Counter[int] = Counter()
        # plan code -> the most authenticated sockets an organisation on it may hold (None: no cap).
        self.organization_cap: Callable[[str], int | None] | None = None
        self.watchers: list[SocketWatcher] = []
        self.pending_per_client: Counter[tuple[int, str]] = Counter()  # (publishable key, address)
        self.connects = LocalBuckets()

    def connect_allowed(self, client: str) -> bool:
        """Take a token from the client address's bucket of new connections."""
        rate, burst = float(settings.HERALD_WS_CONNECT_RATE), int(settings.HERALD_WS_CONNECT_BURST)
        return self.connects.take(client, rate, burst)[0]

    def key_enter(self, api_key_id: int, client: str) -> bool:
        """Count a new, unauthenticated socket of the key from `client`; False (nothing counted) when over a cap."""
        if self.per_key[api_key_id] >= int(settings.HERALD_WS_MAX_PER_KEY):
            return False
        if self.pending_per_client[(api_key_id, client)] >= int(settings.HERALD_WS_MAX_UNAUTHENTICATED_PER_CLIENT):
            return False
        self.per_key[api_key_id] += 1
        self.pending_per_client[(api_key_id, client)] += 1
        return True

    def key_leave(self, api_key_id: int) -> None:
        _decrement(self.per_key, api_key_id)

    def pending_leave(self, api_key_id: int, client: str) -> None:
        _decrement(self.pending_per_client, (api_key_id, client))

    def subscriber_enter(self, organization_id: int, subscriber_pk: int, *, plan: str | None = None) -> bool:
        """Count an authenticated socket of the subscriber; False (nothing counted) when it or its organisation
        (by the `plan`'s cap) has its cap already."""
        name = (organization_id, subscriber_pk)
        if self.per_subscriber[name] >= int(settings.HERALD_WS_MAX_PER_SUBSCRIBER):
            return False
        cap = self.organization_cap(plan) if self.organization_cap is not None and plan is not None else None
        if cap is not None and self.per_organization[organization_id] >= cap:
            return False
        self.per_subscriber[name] += 1
        self.per_organization[organization_id] += 1
        for watcher in self.watchers:
            watcher.entered(organization_id, subscriber_pk, self.per_organization[organization_id])
        return True

    def subscriber_leave(self, organization_id: int, subscriber_pk: int) -> None:
        _decrement(self.per_subscriber, (organization_id, subscriber_pk))
        _decrement(self.per_organization, organization_id)


def _decrement(counter: Counter, name: object) -> None:  # type: ignore[type-arg]
    left = counter[name] - 1
    if left > 0:
        counter[name] = left
    else:
        counter.pop(name, None)


socket_limits = SocketLimits()

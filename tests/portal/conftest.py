"""Portal fixtures: the six personas of Acme (owner, admin, developer, viewer), Globex's member, and anonymous.

Each test client comes from its own made-up IP address, so allauth's per-IP rate limits (kept in Redis) of one
test never reach another.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tenants.models import Membership
from tests.conftest import Org, make_org

_addresses = itertools.count(1)


def client_ip() -> str:
    n = next(_addresses) + uuid.uuid4().int % 60000
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def portal_user(label: str) -> User:
    tag = uuid.uuid4().hex[:8]
    return User.objects.create_user(
        username=f"{label}-{tag}", email=f"{label}-{tag}@example.test", password="pw-" + uuid.uuid4().hex
    )


def client_for(user: User | None) -> Client:
    client = Client(REMOTE_ADDR=client_ip())
    if user is not None:
        client.force_login(user)
    return client


@dataclass
class Team:
    """Acme with a member of each role, and Globex with one member."""

    acme: Org
    globex: Org
    owner: User
    admin: User
    developer: User
    viewer: User
    globex_member: User

    def user(self, persona: str) -> User | None:
        return None if persona == "anonymous" else getattr(self, persona)

    def membership(self, user: User) -> Membership:
        return Membership.objects.get(organization=self.acme.organization, user=user)


@pytest.fixture
def team() -> Team:
    owner, admin, developer, viewer = (portal_user(r) for r in ("owner", "admin", "developer", "viewer"))
    acme = make_org("Acme", owner=owner)
    for user, role in ((admin, "admin"), (developer, "developer"), (viewer, "viewer")):
        Membership.objects.create(organization=acme.organization, user=user, role=role)
    globex_member = portal_user("globex")
    globex = make_org("Globex", owner=globex_member, origins=["http://app.globex.test"])
    return Team(
        acme=acme,
        globex=globex,
        owner=owner,
        admin=admin,
        developer=developer,
        viewer=viewer,
        globex_member=globex_member,
    )

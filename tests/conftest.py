"""Shared fixtures: real PostgreSQL schemas, real Redis, named personas.

Every test may use the database: data is committed for real (so a uvicorn
process started by a test sees it), and tests stay apart by creating their own
organisations with unique slugs rather than by rolling back.

Personas (CONVENTIONS.md): `owner` and `developer` of Acme, `member` of Globex,
and an `outsider` who belongs to no organisation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from django_tenants.utils import tenant_context

from tenants.models import Membership, Organization
from tenants.services import api_key_create, organization_create

if TYPE_CHECKING:
    from tests.servers import HeraldServer


@pytest.fixture(scope="session")
def django_db_setup(
    request: pytest.FixtureRequest, django_test_environment: None, django_db_blocker: Any
) -> Iterator[None]:
    """Create and migrate the test database once per run, for every test.

    pytest-django only creates it for tests marked django_db, and those run in
    a rolled-back transaction; Herald's tests commit for real instead.
    """
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        _close_leftover_sessions()
        teardown_databases(config, verbosity=0)


def _close_leftover_sessions() -> None:
    """End the test database's other sessions before it is dropped, naming them.

    Every server a test started is stopped by now; what is left is this process's own (the send engine's loop
    thread for sync callers, a receipts flush still in flight). Left open they make DROP DATABASE fail.
    """
    import warnings

    from django.db import connection

    # This process's own pool holds idle sessions of its own (one per connection it ever needed at once): not
    # leftovers. Closed first, so what the query sees is what something else left open.
    close_pool = getattr(connection, "close_pool", None)
    if close_pool is not None:
        close_pool()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name, state, left(query, 80) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        leftovers = cursor.fetchall()
        for pid, *_ in leftovers:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    if leftovers:
        warnings.warn(f"sessions still open on the test database at the end: {leftovers}", stacklevel=1)
    connection.close()
    if close_pool is not None:
        close_pool()


@pytest.fixture(autouse=True)
def _database(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> Iterator[None]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        yield


def unique_slug(prefix: str = "org") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Org:
    """An organisation with one live key of each kind, for tests."""

    organization: Organization
    secret_key: str
    publishable_key: str

    @property
    def schema_name(self) -> str:
        return self.organization.schema_name

    def activate(self) -> tenant_context:  # type: ignore[valid-type]
        return tenant_context(self.organization)


ALLOWED_ORIGIN = "http://app.acme.test"


def make_org(name: str, *, owner: User | None = None, origins: list[str] | None = None) -> Org:
    organization = organization_create(name=name, slug=unique_slug(name.lower()), owner=owner)
    secret = api_key_create(organization=organization, kind="secret", name="test").key
    publishable = api_key_create(
        organization=organization, kind="publishable", name="test", allowed_origins=origins or [ALLOWED_ORIGIN]
    ).key
    return Org(organization=organization, secret_key=secret, publishable_key=publishable)


def make_user(username: str) -> User:
    # No password (an unusable one): personas sign in with force_login. Hashing a random password nobody can
    # type cost a PBKDF2 round (~0.5 s here) per persona, seconds per test.
    return User.objects.create_user(username=f"{username}-{uuid.uuid4().hex[:6]}", password=None)


@pytest.fixture
def owner() -> User:
    return make_user("owner")


@pytest.fixture
def developer() -> User:
    return make_user("developer")


@pytest.fixture
def member() -> User:
    return make_user("member")


@pytest.fixture
def outsider() -> User:
    return make_user("outsider")


@pytest.fixture
def acme(owner: User, developer: User) -> Org:
    org = make_org("Acme", owner=owner)
    Membership.objects.create(organization=org.organization, user=developer, role=Membership.Role.DEVELOPER)
    return org


@pytest.fixture
def globex(member: User) -> Org:
    org = make_org("Globex", owner=make_user("globex-owner"), origins=["http://app.globex.test"])
    Membership.objects.create(organization=org.organization, user=member, role=Membership.Role.DEVELOPER)
    return org


@pytest.fixture(scope="session")
def herald_server(django_db_setup: None) -> Iterator[HeraldServer]:
    """One real uvicorn process serving Herald on the test database, for the whole run."""
    from tests.servers import HeraldServer

    with HeraldServer() as server:
        yield server

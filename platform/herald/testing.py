"""pytest plugin (loaded with `-p herald.testing`): services before settings.

pytest-django reads settings while pytest starts, before any conftest.py, so
the embedded PostgreSQL and Redis must be up by then. This plugin starts them
in a fresh folder per run (unless DATABASE_URL / REDIS_URL are set) and stops
them and removes the folder when the run ends.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from herald.devservices import EmbeddedServices, data_dir, reap_stale_test_services
from herald.env import redis_configured

_services: EmbeddedServices | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: Any, parser: Any, args: list[str]) -> None:
    global _services
    os.environ.setdefault("HERALD_ENV", "test")
    # No background refills racing the tests; tests/tenants fill the pool explicitly.
    os.environ.setdefault("HERALD_SPARE_SCHEMAS", "0")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "herald.settings")
    want_pg = not os.environ.get("DATABASE_URL")
    want_redis = not redis_configured()
    if want_pg or want_redis:
        # A run killed earlier left its servers behind: stop them before starting ours.
        reap_stale_test_services(data_dir())
        # A SIGTERM (CI timeout, `timeout`) unwinds like Ctrl-C, so the servers below are stopped.
        signal.signal(signal.SIGTERM, _interrupt)
        root = data_dir() / f"test-{os.getpid()}"
        _services = EmbeddedServices(root, ephemeral=True)
        os.environ.update(_services.start(postgres=want_pg, redis=want_redis))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: Any) -> None:
    global _services
    if _services is not None:
        _services.stop()
        _services = None

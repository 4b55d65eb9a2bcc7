"""Production never falls back to the embedded servers, and a bad setting is one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import servers
from tests.deploy.support import production_env


def herald(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "HERALD_ENV")}
    return subprocess.run(
        [sys.executable, "-m", "herald", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({}, "DATABASE_URL and REDIS_URL"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/herald"}, "REDIS_URL"),
    ],
)
@pytest.mark.parametrize("command", ["migrate_schemas", "serve"])
def test_production_without_service_urls_refuses_in_one_line(
    tmp_path: object, command: str, given: dict[str, str], named: str
) -> None:
    result = herald(command, env={**production_env(HERALD_DATA_DIR=str(tmp_path)), **given})
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"herald: {named} must be set when HERALD_ENV=production")
    assert "Traceback" not in result.stderr
    # Nothing embedded was started: no data folder appeared.
    assert list(os.scandir(str(tmp_path))) == []


def test_bad_production_setting_is_one_line_naming_the_variable(tmp_path: object) -> None:
    env = production_env(
        DATABASE_URL=servers.test_database_url(), REDIS_URL="redis://127.0.0.1:1/0", SECRET_KEY="short"
    )
    result = herald("check", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "herald: SECRET_KEY must be set to a random value of at least 32 characters in production"
    ]


def test_development_still_starts_embedded_services(tmp_path: object) -> None:
    """The refusal is production's: in development the same command starts its own servers."""
    result = herald("check", env={"HERALD_ENV": "development", "HERALD_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_multiprocessing_migrations_with_a_connection_pool_are_refused() -> None:
    """Forked workers inherit a psycopg pool without its threads and hang: refused in one line instead."""
    env = {"DATABASE_URL": servers.test_database_url(), "REDIS_URL": str(servers.settings.REDIS_URL)}
    result = herald("migrate_schemas", "--executor", "multiprocessing", env={**env, "DATABASE_POOL_SIZE": "4"})
    assert result.returncode != 0
    assert "--executor multiprocessing needs DATABASE_POOL_SIZE=0" in result.stderr
    assert "Traceback" not in result.stderr

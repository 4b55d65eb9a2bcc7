"""Settings read from the environment fail loudly, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

GOOD = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/herald",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}
PROBE = "import herald.settings as s; print(s.DEBUG, s.DATABASES['default']['HOST'], s.ALLOWED_HOSTS)"


def load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "HERALD_ENV")
    }
    return subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True)


def test_good_settings_load() -> None:
    result = load_settings(**GOOD, DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["True", "127.0.0.1"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "mysql://root@localhost/herald"),
        ("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/"),
        ("DATABASE_URL", "postgresql://postgres@127.0.0.1:99999/herald"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("HERALD_PUBLIC_URL", "ftp://example.com"),
        ("DATABASE_CONN_MAX_AGE", "soon"),
        ("HERALD_ENV", "staging"),
        ("STRIPE_SECRET_KEY", "pk_test_123"),
        ("STRIPE_WEBHOOK_SECRET", "secret"),
        ("DATABASE_PREPARED_STATEMENTS", "sometimes"),
        ("HERALD_INGEST_POOL_SIZE", "0"),
        ("HERALD_GC_FREEZE", "2"),
    ],
)
def test_bad_value_fails_naming_the_variable(variable: str, value: str) -> None:
    result = load_settings(**{**GOOD, variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("variable", ["DATABASE_URL", "REDIS_URL"])
def test_missing_service_url_fails_naming_the_variable(variable: str) -> None:
    env = dict(GOOD)
    del env[variable]
    result = load_settings(**env)
    assert result.returncode != 0
    assert variable in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "secret",
    [None, "", "herald-insecure-development-secret-key-do-not-use-in-production", "short"],
)
def test_production_refuses_a_missing_default_or_weak_secret(secret: str | None) -> None:
    env = {**GOOD, "HERALD_ENV": "production", "ALLOWED_HOSTS": "herald.example.com"}
    if secret is not None:
        env["SECRET_KEY"] = secret
    result = load_settings(**env)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr.strip().splitlines()[-1]


def test_production_starts_with_a_real_secret() -> None:
    env = {**GOOD, "HERALD_ENV": "production", "ALLOWED_HOSTS": "herald.example.com", "SECRET_KEY": "k" * 50}
    result = load_settings(**env)
    assert result.returncode == 0, result.stderr
    assert "herald.example.com" in result.stdout


def test_production_refuses_debug() -> None:
    env = {**GOOD, "HERALD_ENV": "production", "ALLOWED_HOSTS": "h", "SECRET_KEY": "k" * 50, "DEBUG": "1"}
    result = load_settings(**env)
    assert result.returncode != 0
    assert "DEBUG" in result.stderr.strip().splitlines()[-1]


def test_socket_database_url_puts_the_folder_in_host() -> None:
    result = load_settings(**{**GOOD, "DATABASE_URL": "postgresql://postgres@/herald?host=/tmp/pg"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1] == "/tmp/pg"

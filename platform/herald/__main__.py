"""The `herald` command: Django's manage.py with Herald's settings preset.

When DATABASE_URL / REDIS_URL are unset it starts (or joins) the embedded
PostgreSQL and Redis of this checkout before Django reads its settings, in
development and test only: elsewhere it refuses to start, naming what is missing.
"""

from __future__ import annotations

import os
import signal
import sys

EMBEDDED_ENVIRONMENTS = ("development", "test")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit runs atexit handlers, which stop the embedded servers.
    raise SystemExit(128 + signum)


def embedded_services_refusal() -> str | None:
    """Why embedded services must not start here (HERALD_ENV outside development/test), or None."""
    environment = os.environ.get("HERALD_ENV") or "development"
    if environment in EMBEDDED_ENVIRONMENTS:
        return None
    missing = [] if os.environ.get("DATABASE_URL") else ["DATABASE_URL"]
    if not (os.environ.get("REDIS_URL") or os.environ.get("HERALD_REDIS_SENTINELS")):
        missing.append("REDIS_URL")
    if not missing:
        return None
    return (
        f"herald: {' and '.join(missing)} must be set when HERALD_ENV={environment} "
        "(embedded PostgreSQL and Redis run only in development and test; Redis may also be named by "
        "HERALD_REDIS_SENTINELS)"
    )


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "herald.settings")
    refusal = embedded_services_refusal()
    if refusal:
        print(refusal, file=sys.stderr)
        sys.exit(2)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    from herald.devservices import ensure_services

    ensure_services()
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A bad setting (named by herald.settings) is an operator's mistake, not a crash: one line, no traceback.
        print(f"herald: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

"""The `herald` command: Django's manage.py with Herald's settings preset.

When DATABASE_URL / REDIS_URL are unset it starts (or joins) the embedded
PostgreSQL and Redis of this checkout before Django reads its settings.
"""

from __future__ import annotations

import os
import signal
import sys


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit runs atexit handlers, which stop the embedded servers.
    raise SystemExit(128 + signum)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "herald.settings")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    from herald.devservices import ensure_services

    ensure_services()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

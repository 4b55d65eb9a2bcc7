"""django-tenants' raw tenant commands, refused with a pointer to Herald's own.

They create, clone, rename or drop schemas without Herald's provisioning
(spare schemas, signing secret, slug rules, key cache), so an operator who
picks one by mistake leaves an organisation half made.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


def refused_command(name: str, instead: str) -> type[BaseCommand]:
    """A command `name` that takes any arguments and exits non-zero, naming what to run instead."""

    class Command(BaseCommand):
        help = f"Not available in Herald (django-tenants' raw command): use {instead}."

        def add_arguments(self, parser: CommandParser) -> None:
            parser.add_argument("args", nargs="*")

        def run_from_argv(self, argv: list[str]) -> None:
            # Refuse before parsing, so that django-tenants' own options give the same answer.
            self.stderr.write(f"CommandError: {self._message()}")
            raise SystemExit(1)

        def handle(self, *args: Any, **options: Any) -> None:
            raise CommandError(self._message())

        def _message(self) -> str:
            return f"`herald {name}` is django-tenants' raw command and bypasses Herald's provisioning: use {instead}"

    return Command

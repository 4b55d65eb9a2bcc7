"""`herald dev`: migrate, make sure the demo organisation exists, run a worker, serve on :8000."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from herald.devservices import data_dir


class Command(BaseCommand):
    help = "Run Herald for development: services, migrations, a demo organisation and the server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="prepare everything, then exit")
        parser.add_argument("--no-worker", action="store_true", help="serve without the background-jobs worker")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            # A demo organisation with a printed secret key has no place in production.
            raise CommandError("herald dev is for development; HERALD_ENV is production (run `herald serve`)")
        call_command("migrate_schemas", interactive=False, verbosity=0)
        demo = demo_ensure(port=options["port"])
        base = f"http://{options['host']}:{options['port']}"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "Herald is starting.",
                    f"  Readiness:        {base}/readyz",
                    f"  API docs:         {base}/v1/docs",
                    f"  Demo inbox:       {base}/demo/",
                    f"  Portal:           {base}/  (sign up; the confirmation e-mail is printed here)",
                    f"  Organisation:     {demo['slug']}",
                    f"  Secret key:       {demo['secret_key']}",
                    f"  Publishable key:  {demo['publishable_key']}",
                    f"  Demo subscriber:  {demo['subscriber_id']}",
                    "",
                    "Try:",
                    f"  curl -fsS {base}/readyz",
                    f"  curl -fsS -X POST {base}/v1/notifications -H 'Authorization: Bearer {demo['secret_key']}' "
                    f"-H 'Content-Type: application/json' "
                    f'-d \'{{"to": ["{demo["subscriber_id"]}"], "title": "Hello from Herald"}}\'',
                    "",
                ]
            )
        )
        self.stdout.flush()
        if options["no_serve"]:
            return
        import uvicorn

        from herald.management.commands.serve import keep_alive_seconds

        # The background jobs (herald worker) beside the server, so `make run` stays one command. It inherits
        # this process's environment, embedded services' URLs included, and stops with it.
        worker = None if options["no_worker"] else subprocess.Popen([sys.executable, "-m", "herald", "worker"])
        try:
            uvicorn.run(
                "herald.asgi:application",
                host=options["host"],
                port=options["port"],
                ws="websockets-sansio",
                lifespan="off",
                log_level="info",
                timeout_keep_alive=keep_alive_seconds(),
            )
        finally:
            if worker is not None:
                _stop(worker)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def demo_ensure(*, port: int = 8000) -> dict[str, str]:
    """The demo organisation, its keys and subscriber; created once, reused after."""
    from django_tenants.utils import tenant_context

    from notifications.models import Subscriber
    from tenants.keys import key_hash
    from tenants.models import ApiKey, Organization
    from tenants.resolve import api_key_cache_forget, api_key_resolve
    from tenants.services import api_key_create, organization_create

    state_file = data_dir() / "demo.json"
    state: dict[str, str] = {}
    if state_file.exists():
        state = json.loads(state_file.read_text())
    organization = organization_create(name="Demo", slug="demo")
    origins = sorted({str(settings.HERALD_PUBLIC_URL), f"http://127.0.0.1:{port}", f"http://localhost:{port}"})
    if not state.get("secret_key") or api_key_resolve(state["secret_key"]) is None:
        state["secret_key"] = api_key_create(organization=organization, kind="secret", name="demo").key
    if not state.get("publishable_key") or api_key_resolve(state["publishable_key"]) is None:
        state["publishable_key"] = api_key_create(
            organization=organization,
            kind="publishable",
            name="demo",
            allowed_origins=origins,
        ).key
    else:
        # `herald dev --port N` serves the demo page from another origin: allow it on the demo key.
        hashed = key_hash(state["publishable_key"])
        demo_key = ApiKey.objects.get(key_hash=hashed)
        if not set(origins) <= set(demo_key.allowed_origins):
            demo_key.allowed_origins = sorted(set(demo_key.allowed_origins) | set(origins))
            demo_key.save(update_fields=["allowed_origins"])
            api_key_cache_forget(hashed)
    with tenant_context(Organization.objects.get(pk=organization.pk)):
        Subscriber.objects.get_or_create(external_id="demo-user", defaults={"name": "Demo User"})
    state.update(slug=organization.slug, subscriber_id="demo-user")
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(state, indent=2))
    state_file.chmod(0o600)
    return state

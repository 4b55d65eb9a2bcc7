"""Every error answer of the server is a problem document, the bad-Host 400 and the 500 included; `herald dev`
refuses to run in production."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
from django.conf import settings
from django.test import RequestFactory
from django.urls import get_resolver

from herald.problems import PROBLEM_CONTENT_TYPE
from tenants.models import Organization
from tests.security.support import problem_of
from tests.servers import HeraldServer
from tests.servers import test_database_url as database_url


def test_a_host_the_server_does_not_serve_is_a_400_problem(herald_server: HeraldServer) -> None:
    # /healthz, /readyz and /metrics answer whatever the Host (kubelets call the pod IP): not checked here.
    for path in ("/", "/o/acme/", "/accounts/login/"):
        response = httpx.get(herald_server.url + path, headers={"Host": "evil.example"}, timeout=10)
        assert response.status_code == 400, (path, response.text[:200])
        assert problem_of(response) == "bad-request"


def test_the_500_handler_answers_a_problem_document() -> None:
    resolver = get_resolver()
    handler = resolver.resolve_error_handler(500)
    response = handler(RequestFactory().get("/o/acme/keys"))
    assert response.status_code == 500
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    body = json.loads(response.content)
    assert body["type"].endswith("/internal-error") and body["status"] == 500 and body["instance"] == "/o/acme/keys"


def test_herald_dev_refuses_in_production_without_a_demo_org_or_a_printed_secret() -> None:
    before = Organization.objects.filter(slug="demo").exists()
    env = {
        **os.environ,
        "HERALD_ENV": "production",
        "SECRET_KEY": "x" * 50,
        "ALLOWED_HOSTS": "herald.example",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
    }
    herald = os.path.join(os.path.dirname(sys.executable), "herald")
    done = subprocess.run(  # noqa: S603 - our own command
        [herald, "dev", "--no-serve"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0, done.stdout
    assert "sk_live_" not in done.stdout + done.stderr
    assert "herald dev is for development" in done.stderr
    assert Organization.objects.filter(slug="demo").exists() == before

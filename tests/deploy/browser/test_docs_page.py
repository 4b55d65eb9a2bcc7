"""/v1/docs in a real Chromium against `herald serve` in production: every asset 200, the operations shown."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Response

from tests import servers
from tests.deploy.support import ServeProcess, production_env


@pytest.fixture(scope="module")
def production_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    static_root = tmp_path_factory.mktemp("static")
    env = production_env(
        HERALD_STATIC_ROOT=str(static_root),
        DATABASE_URL=servers.test_database_url(),
        REDIS_URL=str(servers.settings.REDIS_URL),
    )
    collected = subprocess.run(
        [sys.executable, "-m", "herald", "collectstatic", "--noinput"],
        env={**servers.os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert collected.returncode == 0, collected.stderr
    assert (static_root / "staticfiles.json").exists()
    with ServeProcess(env=env) as server:
        yield server


@pytest.mark.browser
def test_api_docs_load_every_asset_and_show_the_operations(
    production_server: ServeProcess, context: BrowserContext
) -> None:
    responses: list[Response] = []
    failed: list[str] = []
    page = context.new_page()
    page.on("response", lambda response: responses.append(response))
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(production_server.url + "/v1/docs", wait_until="networkidle")
    page.wait_for_selector(".opblock", timeout=15_000)
    assert failed == []
    statuses = {response.url: response.status for response in responses}
    assert statuses and all(status == 200 for status in statuses.values()), statuses
    # The Swagger UI came from whitenoise under hashed names, and the spec it rendered from /v1/openapi.json.
    scripts = [url for url in statuses if re.search(r"/static/ninja/swagger-ui-bundle\.[0-9a-f]{12}\.js$", url)]
    assert scripts, statuses
    assert any(url.endswith("/v1/openapi.json") for url in statuses)
    operations = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/v1/notifications" in operations
    assert len(operations) >= 10


def test_hashed_static_files_are_compressed_and_cached_for_a_year(production_server: ServeProcess) -> None:
    manifest = (Path(production_server.env["HERALD_STATIC_ROOT"]) / "staticfiles.json").read_text()
    hashed = re.search(r'"ninja/swagger-ui-bundle\.js": "([^"]+)"', manifest)
    assert hashed
    response = httpx.get(f"{production_server.url}/static/{hashed.group(1)}", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert "immutable" in response.headers["cache-control"]
    assert "max-age=315360000" in response.headers["cache-control"]
    # The unhashed name still answers (whitenoise keeps it), but is not cached for ever.
    plain = httpx.get(f"{production_server.url}/static/ninja/swagger-ui-bundle.js")
    assert plain.status_code == 200
    assert "immutable" not in plain.headers.get("cache-control", "")
    assert httpx.get(f"{production_server.url}/static/ninja/missing.js").status_code == 404


def test_outside_production_static_files_come_from_the_apps_without_collectstatic(herald_server: object) -> None:
    """Development and test serve the apps' static folders directly (nothing collected first)."""
    url = herald_server.url  # type: ignore[attr-defined]
    response = httpx.get(f"{url}/static/ninja/swagger-ui.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "swagger-ui" in response.text

"""`herald serve` in a subprocess, as production runs it, and helpers to read what it logged and exposed."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import httpx

from tests.servers import HeraldServer

PRODUCTION_SECRET = "deploy-tests-" + "x" * 40


def production_env(**extra: str) -> dict[str, str]:
    """What HERALD_ENV=production requires, for a server on 127.0.0.1."""
    return {
        "HERALD_ENV": "production",
        "SECRET_KEY": PRODUCTION_SECRET,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        **extra,
    }


class ServeProcess(HeraldServer):
    """`herald serve --host 127.0.0.1 --port N`: the production command, on the test database."""

    # Several of these start in one test, on 2 cores shared with other work: importing Django alone can take
    # longer than the 30 s the single test server is given.
    start_timeout = 90.0

    def command(self) -> list[str]:
        return [sys.executable, "-m", "herald", "serve", "--host", "127.0.0.1", "--port", str(self.port)]

    def json_lines(self) -> list[dict[str, Any]]:
        """Every line of the output that is a JSON object (the structured log)."""
        lines = []
        for line in self.full_output().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def full_output(self) -> str:
        with open(self.log.name, errors="replace") as handle:
            return handle.read()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def scrape(server: HeraldServer) -> dict[str, float]:
    """GET /metrics: {'name{labels}': value} for every sample."""
    response = httpx.get(server.url + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for line in response.text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, line
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples

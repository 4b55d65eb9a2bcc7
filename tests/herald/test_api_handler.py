"""/v1/ through the server: Django's views without the portal's middleware, still host-checked and with the
security headers (the lean send path's answers too)."""

from __future__ import annotations

import httpx

from tests.conftest import Org
from tests.servers import HeraldServer


def test_api_answers_carry_security_headers_and_no_cookies(acme: Org, herald_server: HeraldServer) -> None:
    auth = {"Authorization": f"Bearer {acme.secret_key}"}
    for response in (
        httpx.get(herald_server.url + "/v1/subscribers/nobody", headers=auth, timeout=10),
        httpx.get(herald_server.url + "/v1/subscribers", headers=auth, timeout=10),
        httpx.get(herald_server.url + "/v1/openapi.json", timeout=10),
        httpx.get(herald_server.url + "/v1/no-such-thing", headers=auth, timeout=10),
        httpx.post(herald_server.url + "/v1/notifications", json={"to": ["a"], "title": "x"}, headers=auth),
        httpx.post(herald_server.url + "/v1/notifications", json={"to": ["a"]}, headers=auth),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff", response.url
        assert response.headers["X-Frame-Options"] == "DENY" and response.headers["Referrer-Policy"] == "same-origin"
        assert "set-cookie" not in response.headers
        assert response.headers["Content-Length"] == str(len(response.content)), response.url  # not chunked
    assert httpx.get(herald_server.url + "/v1/subscribers/nobody", headers=auth, timeout=10).status_code == 404
    assert (
        httpx.get(herald_server.url + "/v1/no-such-thing", headers=auth, timeout=10)
        .json()["type"]
        .endswith("/not-found")
    )


def test_a_host_not_allowed_is_400_on_the_api(acme: Org, herald_server: HeraldServer) -> None:
    auth = {"Authorization": f"Bearer {acme.secret_key}", "Host": "evil.test"}
    assert httpx.get(herald_server.url + "/v1/subscribers", headers=auth, timeout=10).status_code == 400
    assert httpx.get(herald_server.url + "/v1/openapi.json", headers={"Host": "evil.test"}).status_code == 400


def test_client_errors_are_not_logged_as_warnings(acme: Org, client: object, caplog: object) -> None:
    """settings.LOGGING: django.request logs errors only (it would log each 4xx as a warning)."""
    import logging

    import pytest

    assert isinstance(caplog, pytest.LogCaptureFixture)
    with caplog.at_level(logging.DEBUG, logger="django"):
        for path in ("/v1/subscribers/nobody", "/v1/no-such-thing"):
            assert client.get(path, HTTP_AUTHORIZATION=f"Bearer {acme.secret_key}").status_code == 404  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.name == "django.request"], caplog.records

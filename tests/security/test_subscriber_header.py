"""X-Herald-Subscriber carries the id as UTF-8 (raw, or RFC 8187 `UTF-8''` percent-encoded); the HMAC is over
the id's UTF-8, and no other reading of the header's bytes (Latin-1) names a subscriber."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

import httpx

from tests.conftest import ALLOWED_ORIGIN, Org
from tests.notifications.realtime_support import signing_secret
from tests.security.support import problem_of
from tests.servers import HeraldServer

ID = "jürgen-東京"


def _hmac(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def _unread(server: HeraldServer, org: Org, subscriber: bytes, proof: str) -> httpx.Response:
    headers = [
        (b"X-Herald-Publishable-Key", org.publishable_key.encode()),
        (b"Origin", ALLOWED_ORIGIN.encode()),
        (b"X-Herald-Subscriber", subscriber),
        (b"X-Herald-Subscriber-Hash", proof.encode()),
    ]
    return httpx.get(server.url + "/v1/inbox/unread-count", headers=headers, timeout=10)


def _send_to(server: HeraldServer, org: Org, subscriber_id: str) -> None:
    response = httpx.post(
        server.url + "/v1/notifications",
        json={"to": [subscriber_id], "title": "for " + subscriber_id},
        headers={"Authorization": f"Bearer {org.secret_key}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text


def test_the_hmac_over_the_utf8_id_passes_for_raw_utf8_and_rfc8187_forms(
    herald_server: HeraldServer, acme: Org
) -> None:
    secret = signing_secret(acme)
    _send_to(herald_server, acme, ID)
    proof = _hmac(secret, ID.encode())
    raw = _unread(herald_server, acme, ID.encode(), proof)
    assert raw.status_code == 200, raw.text
    assert raw.json() == {"count": 1}
    encoded = _unread(herald_server, acme, ("UTF-8''" + quote(ID)).encode(), proof)
    assert encoded.status_code == 200, encoded.text
    assert encoded.json() == {"count": 1}


def test_a_latin1_reading_of_the_bytes_never_names_another_subscriber(herald_server: HeraldServer, acme: Org) -> None:
    secret = signing_secret(acme)
    latin1_reading = ID.encode().decode("latin-1")
    refused = _unread(herald_server, acme, ID.encode(), _hmac(secret, latin1_reading.encode()))
    assert refused.status_code == 401, refused.text
    assert problem_of(refused) == "invalid-subscriber-proof"


def test_header_bytes_that_are_not_utf8_are_a_refused_proof(herald_server: HeraldServer, acme: Org) -> None:
    secret = signing_secret(acme)
    for value in (b"j\xfcrgen", b"\xff\xfe", b"UTF-8''%FF%FE", b"UTF-8''"):
        refused = _unread(herald_server, acme, value, _hmac(secret, value))
        assert refused.status_code == 401, (value, refused.text)
        assert problem_of(refused) == "invalid-subscriber-proof"

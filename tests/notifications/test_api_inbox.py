"""The widget API: publishable key + subscriber proof, CORS, inbox state, preferences."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from notifications.models import InboxItem, Preference
from notifications.proofs import signing_secrets_live
from tenants.services import signing_secret_rotate
from tests.conftest import ALLOWED_ORIGIN, Org
from tests.notifications.api_support import Api, problem_type, server_api, subscriber_hash_for, widget_api


def _send(org: Org, to: list[str], title: str = "x", **extra: object) -> str:
    response = server_api(org).post("/v1/notifications", {"to": to, "title": title, **extra})
    assert response.status_code == 202, response.content
    return str(response.json()["id"])


def _token(org: Org, subscriber_id: str, *, seconds: int = 60, secret: str | None = None) -> str:
    secret = secret or signing_secrets_live(org.organization.pk)[0]
    return jwt.encode({"sub": subscriber_id, "exp": datetime.now(tz=UTC) + timedelta(seconds=seconds)}, secret)


def test_inbox_lists_newest_first_with_unread_count(acme: Org) -> None:
    first = _send(acme, ["ada"], "first")
    second = _send(acme, ["ada"], "second", category="billing", data={"n": 2}, action_url="https://a.test/x")
    _send(acme, ["bob"], "not for ada")
    api = widget_api(acme, "ada")
    page = api.get("/v1/inbox/notifications").json()
    assert [item["id"] for item in page["items"]] == [second, first]
    item = page["items"][0]
    assert (item["title"], item["category"], item["data"], item["action_url"]) == (
        "second",
        "billing",
        {"n": 2},
        "https://a.test/x",
    )
    assert item["read"] is False and item["read_at"] is None and isinstance(item["seq"], int)
    assert api.get("/v1/inbox/unread-count").json() == {"count": 2}
    assert api.get("/v1/inbox/notifications?category=billing").json()["items"][0]["id"] == second


def test_read_unread_archive_and_filters(acme: Org) -> None:
    ids = [_send(acme, ["ada"], f"n{i}") for i in range(3)]
    api = widget_api(acme, "ada")
    read = api.post(f"/v1/inbox/notifications/{ids[0]}/read")
    assert read.status_code == 200 and read.json()["read"] is True and read.json()["seen"] is True
    assert api.get("/v1/inbox/unread-count").json() == {"count": 2}
    assert [i["id"] for i in api.get("/v1/inbox/notifications?read=true").json()["items"]] == [ids[0]]
    assert [i["id"] for i in api.get("/v1/inbox/notifications?read=false").json()["items"]] == [ids[2], ids[1]]
    unread = api.post(f"/v1/inbox/notifications/{ids[0]}/unread")
    assert unread.json()["read"] is False and unread.json()["seen"] is True
    archived = api.post(f"/v1/inbox/notifications/{ids[1]}/archive")
    assert archived.json()["archived"] is True
    assert [i["id"] for i in api.get("/v1/inbox/notifications").json()["items"]] == [ids[2], ids[0]]
    assert [i["id"] for i in api.get("/v1/inbox/notifications?archived=true").json()["items"]] == [ids[1]]
    assert api.get("/v1/inbox/unread-count").json() == {"count": 2}
    done = api.post("/v1/inbox/read-all")
    assert done.json() == {"marked": 3, "unread_count": 0}
    with acme.activate():
        assert not InboxItem.objects.filter(read_at__isnull=True).exists()


def test_inbox_pages_with_cursor(acme: Org) -> None:
    ids = [_send(acme, ["ada"], f"n{i}") for i in range(5)]
    api = widget_api(acme, "ada")
    page1 = api.get("/v1/inbox/notifications?limit=2").json()
    page2 = api.get(f"/v1/inbox/notifications?limit=2&cursor={page1['next_cursor']}").json()
    page3 = api.get(f"/v1/inbox/notifications?limit=2&cursor={page2['next_cursor']}").json()
    got = [i["id"] for p in (page1, page2, page3) for i in p["items"]]
    assert got == list(reversed(ids))
    assert page3["has_more"] is False and page3["next_cursor"] is None
    bad = api.get("/v1/inbox/notifications?cursor=" + page1["next_cursor"][:-3])
    assert bad.status_code == 400 and problem_type(bad) == "invalid-cursor"


def test_subscriber_a_cannot_read_or_change_subscriber_b(acme: Org) -> None:
    for_b = _send(acme, ["bob"], "private to bob")
    ada = widget_api(acme, "ada")
    _send(acme, ["ada"], "ada's")
    assert [i["title"] for i in ada.get("/v1/inbox/notifications").json()["items"]] == ["ada's"]
    for action in ("read", "unread", "archive"):
        response = ada.post(f"/v1/inbox/notifications/{for_b}/{action}")
        assert response.status_code == 404 and problem_type(response) == "not-found"
    ada.post("/v1/inbox/read-all")
    with acme.activate():
        assert InboxItem.objects.get(message_id=for_b).read_at is None
    # Claiming to be bob with ada's proof is refused.
    impostor = widget_api(acme, "ada")
    impostor.headers["X-Herald-Subscriber"] = "bob"
    response = impostor.get("/v1/inbox/notifications")
    assert response.status_code == 401 and problem_type(response) == "invalid-subscriber-proof"


@pytest.mark.parametrize(
    "proof", ["missing", "forged-hash", "other-org-hash", "forged-token", "expired-token", "other-sub-token"]
)
def test_bad_subscriber_proofs_are_401(acme: Org, globex: Org, proof: str) -> None:
    _send(acme, ["ada"])
    headers = {"X-Herald-Publishable-Key": acme.publishable_key, "Origin": ALLOWED_ORIGIN, "X-Herald-Subscriber": "ada"}
    if proof == "forged-hash":
        headers["X-Herald-Subscriber-Hash"] = "0" * 64
    elif proof == "other-org-hash":
        headers["X-Herald-Subscriber-Hash"] = subscriber_hash_for(globex, "ada")
    elif proof == "forged-token":
        headers["X-Herald-Subscriber-Token"] = _token(acme, "ada", secret="not-the-secret-" + "x" * 32)
    elif proof == "expired-token":
        headers["X-Herald-Subscriber-Token"] = _token(acme, "ada", seconds=-5)
    elif proof == "other-sub-token":
        headers["X-Herald-Subscriber-Token"] = _token(acme, "bob")
    response = Api(None, **headers).get("/v1/inbox/notifications")
    assert response.status_code == 401 and problem_type(response) == "invalid-subscriber-proof"
    assert response["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN  # the widget can read why


def test_token_proofs_work_in_header_or_authorization(acme: Org) -> None:
    _send(acme, ["ada"], "hello")
    token = _token(acme, "ada")
    by_header = Api(None, **{"X-Herald-Publishable-Key": acme.publishable_key, "X-Herald-Subscriber-Token": token})
    assert by_header.get("/v1/inbox/unread-count").json() == {"count": 1}
    by_bearer = Api(token, **{"X-Herald-Publishable-Key": acme.publishable_key})
    assert by_bearer.get("/v1/inbox/unread-count").json() == {"count": 1}
    by_query = Api(token)
    assert by_query.get(f"/v1/inbox/unread-count?pk={acme.publishable_key}").json() == {"count": 1}


def test_token_issued_by_the_server_api_opens_the_widget_and_expires(acme: Org) -> None:
    api = server_api(acme)
    assert api.post("/v1/subscribers/ada/tokens", {}).status_code == 404  # unknown subscriber
    api.put("/v1/subscribers/ada", {})
    issued = api.post("/v1/subscribers/ada/tokens", {"expires_in": 60})
    assert issued.status_code == 200, issued.content
    body = issued.json()
    claims = jwt.decode(body["token"], signing_secrets_live(acme.organization.pk)[0], algorithms=["HS256"])
    assert claims["sub"] == "ada" and 50 <= claims["exp"] - time.time() <= 61
    widget = Api(None, **{"X-Herald-Publishable-Key": acme.publishable_key, "X-Herald-Subscriber-Token": body["token"]})
    assert widget.get("/v1/inbox/unread-count").status_code == 200
    assert api.post("/v1/subscribers/ada/tokens", {"expires_in": 10}).status_code == 422
    assert api.post("/v1/subscribers/ada/tokens", {"expires_in": 86_401}).status_code == 422


def test_rotated_signing_secret_keeps_old_proofs_during_the_overlap(acme: Org) -> None:
    _send(acme, ["ada"])
    old_hash = subscriber_hash_for(acme, "ada")
    signing_secret_rotate(organization=acme.organization, overlap=timedelta(seconds=1))
    headers = {"X-Herald-Publishable-Key": acme.publishable_key, "X-Herald-Subscriber": "ada"}
    old = Api(None, **headers, **{"X-Herald-Subscriber-Hash": old_hash})
    assert old.get("/v1/inbox/unread-count").status_code == 200
    new = Api(None, **headers, **{"X-Herald-Subscriber-Hash": subscriber_hash_for(acme, "ada")})
    assert subscriber_hash_for(acme, "ada") != old_hash
    assert new.get("/v1/inbox/unread-count").status_code == 200
    time.sleep(1.1)
    assert old.get("/v1/inbox/unread-count").status_code == 401
    assert new.get("/v1/inbox/unread-count").status_code == 200


def test_publishable_key_of_another_org_sees_nothing_of_this_one(acme: Org, globex: Org) -> None:
    message = _send(acme, ["ada"], "acme only")
    api = widget_api(globex, "ada", origin="http://app.globex.test")
    assert api.get("/v1/inbox/notifications").json()["items"] == []
    assert api.get("/v1/inbox/unread-count").json() == {"count": 0}
    assert api.post(f"/v1/inbox/notifications/{message}/read").status_code == 404
    with acme.activate():
        assert InboxItem.objects.get(message_id=message).read_at is None


def test_origin_not_on_the_allow_list_is_403_without_cors_headers(acme: Org) -> None:
    api = widget_api(acme, "ada", origin="https://evil.test")
    response = api.get("/v1/inbox/notifications")
    assert response.status_code == 403 and problem_type(response) == "origin-not-allowed"
    assert "Access-Control-Allow-Origin" not in response
    allowed = widget_api(acme, "ada").get("/v1/inbox/notifications")
    assert allowed["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "RateLimit" in allowed["Access-Control-Expose-Headers"]
    assert widget_api(acme, "ada", origin=None).get("/v1/inbox/notifications").status_code == 200


def test_preflight_answers_only_allowed_origins(acme: Org) -> None:
    client = Api(None).client
    asks = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-herald-subscriber"}
    good = client.options("/v1/inbox/notifications/abc/read", headers={"Origin": ALLOWED_ORIGIN, **asks})
    assert good.status_code == 204 and good["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "X-Herald-Subscriber-Hash" in good["Access-Control-Allow-Headers"]
    bad = client.options("/v1/inbox/notifications", headers={"Origin": "https://evil.test", **asks})
    assert bad.status_code == 403 and "Access-Control-Allow-Origin" not in bad
    with_pk = client.options(
        f"/v1/inbox/preferences?pk={acme.publishable_key}", headers={"Origin": ALLOWED_ORIGIN, **asks}
    )
    assert with_pk.status_code == 204
    wrong_key = client.options(
        f"/v1/inbox/preferences?pk={acme.publishable_key}", headers={"Origin": "http://app.globex.test", **asks}
    )
    assert wrong_key.status_code == 403


def test_preferences_opt_out_is_respected_by_sends(acme: Org) -> None:
    api = widget_api(acme, "ada")
    assert api.get("/v1/inbox/preferences").json() == {"categories": {}}
    saved = api.put("/v1/inbox/preferences", {"categories": {"marketing": False, "billing": True}})
    assert saved.status_code == 200 and saved.json() == {"categories": {"billing": True, "marketing": False}}
    assert api.put("/v1/inbox/preferences", {"categories": {"billing": False}}).json()["categories"] == {
        "billing": False,
        "marketing": False,
    }
    response = server_api(acme).post("/v1/notifications", {"to": ["ada"], "title": "Sale", "category": "marketing"})
    assert response.json()["recipients"] == 0
    api.put("/v1/inbox/preferences", {"categories": {"marketing": True}})
    response = server_api(acme).post("/v1/notifications", {"to": ["ada"], "title": "Sale", "category": "marketing"})
    assert response.json()["recipients"] == 1
    with acme.activate():
        assert Preference.objects.filter(subscriber__external_id="ada").count() == 2
    bad = api.put("/v1/inbox/preferences", {"categories": {"bad key": False}})
    assert bad.status_code == 422


def test_widget_rejects_bad_json_and_oversized_bodies(acme: Org) -> None:
    api = widget_api(acme, "ada")
    bad = api.call("PUT", "/v1/inbox/preferences", raw=b"{nope")
    assert bad.status_code == 400 and problem_type(bad) == "invalid-json"
    big = api.call("PUT", "/v1/inbox/preferences", raw=b'{"categories": {"a": true}, "x": "' + b"y" * 300_000 + b'"}')
    assert big.status_code == 413 and problem_type(big) == "payload-too-large"


def test_preferences_take_booleans_only(acme: Org) -> None:
    api = widget_api(acme, "ada")
    for value in (0, "false", None):
        response = api.put("/v1/inbox/preferences", {"categories": {"promo": value}})
        assert response.status_code == 422, value
    assert api.get("/v1/inbox/preferences").json() == {"categories": {}}

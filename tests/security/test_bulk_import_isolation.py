"""A bulk import (POST /v1/subscribers/bulk) belongs to its organisation: another organisation's secret key can
neither read its results (not by replaying its Idempotency-Key, not by reading the ids it created) nor change
them, and bad input is refused whole with nothing written. Acme imports; Globex is the other organisation."""

from __future__ import annotations

import pytest

from notifications.models import Subscriber
from tests.conftest import Org
from tests.notifications.api_support import live_api, problem_type
from tests.servers import HeraldServer

IMPORT = {"subscribers": [{"id": "imp-1", "name": "Acme One", "email": "one@acme.test"}, {"id": "imp-2"}]}


def test_another_organisations_key_cannot_replay_read_or_change_an_import(
    acme: Org, globex: Org, herald_server: HeraldServer
) -> None:
    ours, theirs = live_api(acme, herald_server), live_api(globex, herald_server)
    first = ours.post("/v1/subscribers/bulk", IMPORT, **{"Idempotency-Key": "import-42"})
    assert first.status_code == 200, first.content
    assert [r["created"] for r in first.json()["results"]] == [True, True]

    # Globex with the same Idempotency-Key and body: its own first import, never Acme's stored answer.
    same = theirs.post("/v1/subscribers/bulk", IMPORT, **{"Idempotency-Key": "import-42"})
    assert same.status_code == 200, same.content
    assert "Idempotent-Replayed" not in same
    assert [r["created"] for r in same.json()["results"]] == [True, True]  # created in Globex, not found in Acme
    # The same key with another body is Globex's own replay question (422 there), not a view of Acme's.
    other_body = theirs.post("/v1/subscribers/bulk", {"subscribers": [{"id": "x"}]}, **{"Idempotency-Key": "import-42"})
    assert other_body.status_code == 422 and problem_type(other_body) == "idempotency-key-reused"

    # Globex changes "its" imp-1: Acme's row is untouched, and each reads only its own.
    changed = theirs.post("/v1/subscribers/bulk", {"subscribers": [{"id": "imp-1", "name": "Globex One"}]})
    assert changed.json()["results"] == [{"index": 0, "status": 200, "id": "imp-1", "created": False}]
    assert theirs.get("/v1/subscribers/imp-1").json()["name"] == "Globex One"
    acme_row = ours.get("/v1/subscribers/imp-1").json()
    assert (acme_row["name"], acme_row["email"]) == ("Acme One", "one@acme.test")

    # Acme's replay is still its own first answer, unchanged by anything Globex did.
    again = ours.post("/v1/subscribers/bulk", IMPORT, **{"Idempotency-Key": "import-42"})
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    with acme.activate():
        assert sorted(Subscriber.objects.values_list("external_id", "name")) == [("imp-1", "Acme One"), ("imp-2", "")]
    with globex.activate():
        assert sorted(Subscriber.objects.values_list("external_id", "name")) == [
            ("imp-1", "Globex One"),
            ("imp-2", ""),
        ]


def test_globex_ids_never_reach_acme_and_acme_reads_nothing_of_globex(
    acme: Org, globex: Org, herald_server: HeraldServer
) -> None:
    live_api(globex, herald_server).post("/v1/subscribers/bulk", {"subscribers": [{"id": "only-globex"}]})
    ours = live_api(acme, herald_server)
    assert ours.get("/v1/subscribers/only-globex").status_code == 404
    listed = ours.get("/v1/subscribers").json()
    assert all(item["id"] != "only-globex" for item in listed["items"]), listed
    assert listed["items"] == [], listed  # Acme imported nothing itself


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("publishable", "publishable-key-not-allowed"),  # Acme's own publishable key: the widget's, not the API's
        ("none", "authentication-required"),
        ("broken", "invalid-api-key"),
    ],
)
def test_an_import_without_a_secret_key_writes_nothing(
    acme: Org, herald_server: HeraldServer, key: str, expected: str
) -> None:
    api = live_api(acme, herald_server)
    headers = {
        "publishable": {"Authorization": f"Bearer {acme.publishable_key}"},
        "none": {"Authorization": ""},
        # Its last character changed (a key that happened to end in "x" was once "broken" into itself).
        "broken": {"Authorization": f"Bearer {acme.secret_key[:-1]}{'y' if acme.secret_key.endswith('x') else 'x'}"},
    }[key]
    refused = api.call("POST", "/v1/subscribers/bulk", IMPORT, **headers)
    assert refused.status_code == 401 and problem_type(refused) == expected
    with acme.activate():
        assert not Subscriber.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"subscribers": [{"id": "ok"}, {"id": "a/b"}]},  # one bad id: the whole import refused
        {"subscribers": [{"id": "ok"}, {"id": ""}]},
        {"subscribers": [{"id": "ok", "email": "not-an-email"}]},
        {"subscribers": [{"id": "ok", "unknown": 1}]},
        {"subscribers": [{"id": "x" * 256}]},
        {"subscribers": [{"id": "ok"}], "organization_id": 1},
        {"subscribers": "ok"},
    ],
)
def test_bad_imports_are_refused_whole_in_both_organisations(
    acme: Org, globex: Org, herald_server: HeraldServer, body: object
) -> None:
    for org in (acme, globex):
        refused = live_api(org, herald_server).post("/v1/subscribers/bulk", body)
        assert refused.status_code == 422 and problem_type(refused) == "validation-error", refused.content
    for org in (acme, globex):
        with org.activate():
            assert not Subscriber.objects.exists()

"""Per-send steps (notifications.sending.steps): a registered step sees every send before it is written and
after it committed; a step that refuses a send answers the client with its problem and nothing is written."""

from __future__ import annotations

import json
import time
from pathlib import Path

from notifications.models import IdempotencyRecord, Message
from tests.conftest import Org
from tests.notifications.api_support import live_api, problem_type
from tests.servers import HeraldServer

STEP = "tests.notifications.send_steps.RecordingStep"


def _entries(log: Path, count: int) -> list[dict]:
    """The step's log once it holds `count` entries (`committed` runs after the answer, so it may lag)."""
    deadline = time.monotonic() + 10
    while True:
        lines = log.read_text().splitlines() if log.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)


def test_a_registered_step_sees_each_send_and_its_refusal_writes_nothing(acme: Org, tmp_path: Path) -> None:
    log = tmp_path / "steps.log"
    with HeraldServer(env={"HERALD_SEND_STEPS": STEP, "HERALD_TEST_STEP_LOG": str(log)}) as server:
        api = live_api(acme, server)
        sent = api.post("/v1/notifications", {"to": ["ada"], "title": "hello"})
        assert sent.status_code == 202, sent.text
        entries = _entries(log, 2)
        org = acme.organization.pk
        assert entries == [
            {"step": "check", "organization_id": org, "batch": False, "titles": ["hello"]},
            {
                "step": "committed",
                "organization_id": org,
                "batch": False,
                "titles": ["hello"],
                "ids": [sent.json()["id"]],
            },
        ]

        refused = api.post("/v1/notifications", {"to": ["ada"], "title": "over quota"}, **{"Idempotency-Key": "q1"})
        assert refused.status_code == 429 and problem_type(refused) == "rate-limited"
        assert refused.json()["detail"] == "Monthly quota reached" and refused["Retry-After"] == "3600"
        assert "remaining=" in refused["RateLimit"]  # the front's headers too

        items = [{"to": ["ada"], "title": "fine"}, {"to": ["bob"], "title": "over quota"}]
        batch = api.post("/v1/notifications/batch", {"notifications": items})
        assert batch.status_code == 429 and problem_type(batch) == "rate-limited"  # the whole batch

        # A batch whose missing topic fails alone: the step sees only what will be written.
        ok_items = [{"to": ["cy"], "title": "one"}, {"topic": "missing", "title": "two"}]
        ok = api.post("/v1/notifications/batch", {"notifications": ok_items})
        assert [r["status"] for r in ok.json()["results"]] == [202, 404]
        entries = _entries(log, 6)
    assert entries[2:] == [
        {"step": "check", "organization_id": org, "batch": False, "titles": ["over quota"]},
        {"step": "check", "organization_id": org, "batch": True, "titles": ["fine", "over quota"]},
        {"step": "check", "organization_id": org, "batch": True, "titles": ["one"]},
        {
            "step": "committed",
            "organization_id": org,
            "batch": True,
            "titles": ["one"],
            "ids": [ok.json()["results"][0]["id"]],
        },
    ]
    with acme.activate():
        assert sorted(Message.objects.values_list("title", flat=True)) == ["hello", "one"]
        assert not IdempotencyRecord.objects.filter(key="q1").exists()  # a refused send keeps its key free


def test_a_replayed_send_is_not_checked_again(acme: Org, tmp_path: Path) -> None:
    log = tmp_path / "steps.log"
    with HeraldServer(env={"HERALD_SEND_STEPS": STEP, "HERALD_TEST_STEP_LOG": str(log)}) as server:
        api = live_api(acme, server)
        first = api.post("/v1/notifications", {"to": ["ada"], "title": "once"}, **{"Idempotency-Key": "r1"})
        again = api.post("/v1/notifications", {"to": ["ada"], "title": "once"}, **{"Idempotency-Key": "r1"})
        assert first.status_code == again.status_code == 202 and again["Idempotent-Replayed"] == "true"
        time.sleep(0.5)  # time for a wrong `committed` of the replay to show up
        entries = _entries(log, 2)
    assert [e["step"] for e in entries] == ["check", "committed"]

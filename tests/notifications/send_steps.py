"""A per-send step for tests (loaded by a test server through HERALD_SEND_STEPS): it writes what it was
shown to the file HERALD_TEST_STEP_LOG names, and refuses any send with a notification titled "over quota"."""

from __future__ import annotations

import json
import os

from herald.problems import Problem
from notifications.sending import SendCheck, SendCommitted


class RecordingStep:
    def _write(self, entry: dict[str, object]) -> None:
        with open(os.environ["HERALD_TEST_STEP_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    async def check(self, send: SendCheck) -> None:
        titles = [draft.title for draft in send.drafts]
        self._write({"step": "check", "organization_id": send.organization_id, "batch": send.batch, "titles": titles})
        if "over quota" in titles:
            raise Problem("rate-limited", "Monthly quota reached", headers={"Retry-After": "3600"})

    async def committed(self, sent: SendCommitted) -> None:
        self._write(
            {
                "step": "committed",
                "organization_id": sent.organization_id,
                "batch": sent.batch,
                "titles": [draft.title for draft in sent.drafts],
                "ids": [result.id for result in sent.results],
            }
        )

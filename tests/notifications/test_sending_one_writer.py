"""The send engine is the one place that writes messages and inbox items, and the one way to send."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("notifications", "tenants", "billing", "portal", "platform")
WRITES = re.compile(
    r"INSERT INTO \{T_(INBOX|MESSAGE)\}"
    r"|INSERT INTO \S*notifications_(message|inboxitem)\b"
    r"|\b(Message|InboxItem)\.objects\.(create|bulk_create|get_or_create|update_or_create)\b"
)


def _sources() -> list[Path]:
    return [
        p for app in APPS if (ROOT / app).exists() for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts
    ]


def test_only_the_send_engine_writes_messages_and_inbox_items() -> None:
    writers = {
        str(path.relative_to(ROOT)): sorted({m.group(0) for m in WRITES.finditer(path.read_text())})
        for path in _sources()
        if WRITES.search(path.read_text())
    }
    assert writers == {"notifications/sending.py": ["INSERT INTO {T_INBOX}", "INSERT INTO {T_MESSAGE}"]}


def test_there_is_one_send_engine_and_no_switch_to_another() -> None:
    text = {str(path.relative_to(ROOT)): path.read_text() for path in _sources()}
    assert not (ROOT / "notifications" / "ingest.py").exists()
    for name in ("notification_send_grouped", "notifications_send_grouped", "_messages_write", "HERALD_LEAN_INGEST"):
        assert not [path for path, source in text.items() if name in source], name
    assert "HERALD_LEAN_INGEST" not in (ROOT / "README.md").read_text()
